/**
 * Directory-fd file calls through libc (Deno has no `*at` calls): open a directory relative to another one's fd,
 * look with `statx(..., AT_SYMLINK_NOFOLLOW)`, list with `getdents64`, remove with `unlinkat`. A path below an open
 * fd is never resolved again from its text, so a folder swapped for a link while it is worked on cannot redirect a
 * removal. Where the kernel has `openat2` (Linux 5.6), opening refuses every link and every mount crossing, bind
 * mounts included; below that, `openat(O_NOFOLLOW|O_DIRECTORY)` one component at a time.
 */

/** What an entry is, from its own statx (or the listing's d_type). */
export type EntryKind = "file" | "dir" | "symlink" | "other";

/** One entry of a directory listing. */
export interface DirName {
  /** The raw name, as the kernel gave it. */
  readonly bytes: Uint8Array;
  /** The name as text, or null when it is not valid UTF-8. */
  readonly text: string | null;
  /** The listing's idea of its kind ("unknown" when the file system does not say). */
  readonly kind: EntryKind | "unknown";
}

/** What statx said of one entry (never following a link). */
export interface FdStat {
  /** What it is. */
  readonly kind: EntryKind;
  /** Inode number. */
  readonly ino: bigint;
  /** Device of its file system. */
  readonly dev: number;
  /** Mount id (Linux 5.8), or null when the kernel does not give it. */
  readonly mountId: bigint | null;
  /** Modification time in ms. */
  readonly mtimeMs: number;
  /** Size in bytes. */
  readonly size: number;
}

/** A failed file call: `code` is the errno's name (`ELOOP`, `EXDEV`, ...). */
export class FdCallError extends Error {
  /** Builds the error. */
  constructor(readonly call: string, readonly errno: number) {
    const code = ERRNO_NAMES[errno] ?? `errno ${errno}`;
    super(`${call} failed: ${code}`);
    this.name = "FdCallError";
    this.code = code;
  }
  /** The errno's name. */
  readonly code: string;
}

/** Whether an error means the entry was replaced while the daemon worked on it (a link, a non-directory, a mount). */
export function isSwapError(error: unknown): boolean {
  return error instanceof FdCallError && (error.code === "ELOOP" || error.code === "ENOTDIR" || error.code === "EXDEV");
}

/** The directory-fd calls. Every name is one path component; no call follows a link. */
export interface DirFs {
  /** Whether `openAt` uses openat2 (links and mount crossings refused by the kernel). */
  readonly openat2: boolean;
  /** Opens a directory by absolute path (its last component must not be a link). */
  openRoot(path: string): number;
  /** Opens the directory `name` inside `dirFd`: ELOOP for a link, ENOTDIR for a non-directory, EXDEV for a mount. */
  openAt(dirFd: number, name: Uint8Array): number;
  /** statx of `name` inside `dirFd`, or of `dirFd` itself when `name` is null. */
  statAt(dirFd: number, name: Uint8Array | null): FdStat;
  /** Every entry of the directory but `.` and `..`. */
  list(dirFd: number): DirName[];
  /** unlinkat: a non-directory, or an empty directory with `dir`. */
  unlinkAt(dirFd: number, name: Uint8Array, dir: boolean): void;
  /** Closes an fd (errors ignored: the fd is gone either way). */
  close(fd: number): void;
}

/** Options of `openDirFs`. */
export interface DirFsOptions {
  /** Use openat2 when the kernel has it (default true); false forces the component-by-component fallback. */
  readonly openat2?: boolean;
  /** Ask statx for the mount id (default true); false leaves mount checks to the device and mountinfo. */
  readonly mountIds?: boolean;
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  11: "EAGAIN",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  24: "EMFILE",
  30: "EROFS",
  38: "ENOSYS",
  39: "ENOTEMPTY",
  40: "ELOOP",
};

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_REMOVEDIR = 0x200;
const AT_EMPTY_PATH = 0x1000;
const O_CLOEXEC = 0o2000000;
const SYS_OPENAT2 = 437n;
const RESOLVE_NO_XDEV = 0x01n;
const RESOLVE_NO_MAGICLINKS = 0x02n;
const RESOLVE_NO_SYMLINKS = 0x04n;
const RESOLVE_BENEATH = 0x08n;
const STATX_BASIC = 0x7ff;
const STATX_MNT_ID = 0x1000;
const S_IFMT = 0o170000;
const DT_KINDS: Record<number, EntryKind> = { 4: "dir", 8: "file", 10: "symlink" };
// The O_ flags that differ between the two architectures the daemon ships for.
const ARCH_FLAGS = Deno.build.arch === "aarch64"
  ? { O_DIRECTORY: 0o40000, O_NOFOLLOW: 0o100000 }
  : { O_DIRECTORY: 0o200000, O_NOFOLLOW: 0o400000 };
const OPEN_DIR = ARCH_FLAGS.O_DIRECTORY | ARCH_FLAGS.O_NOFOLLOW | O_CLOEXEC;

const SYMBOLS = {
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  openat2: { name: "syscall", parameters: ["i64", "i32", "buffer", "buffer", "usize"], result: "i64" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  errno: { name: "__errno_location", parameters: [], result: "pointer" },
} as const;

/**
 * Loads the calls from libc; throws (naming the cause) when FFI is not allowed or libc cannot be loaded, so that a
 * caller refuses to work rather than fall back to path-based removal.
 */
export function openDirFs(options: DirFsOptions = {}): DirFs {
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch (error) {
    throw new Error(`Cannot load the directory-fd file calls from libc.so.6: ${(error as Error).message}`);
  }
  const c = lib.symbols;
  const errno = () => new Deno.UnsafePointerView(c.errno()!).getInt32();
  const encoder = new TextEncoder();
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const statBuffer = new Uint8Array(256);
  const stat = new DataView(statBuffer.buffer);
  const listBuffer = new Uint8Array(64 * 1024);
  const list = new DataView(listBuffer.buffer);
  const how = new Uint8Array(24);
  const howView = new DataView(how.buffer);
  howView.setBigUint64(0, BigInt(OPEN_DIR), true);
  howView.setBigUint64(16, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS, true);
  const statMask = STATX_BASIC | (options.mountIds === false ? 0 : STATX_MNT_ID);
  const empty = new Uint8Array(1);

  // A name from `list` is a view whose next byte is the kernel's NUL: pass a view with it, copy nothing.
  const cString = (name: Uint8Array) => {
    const end = name.byteOffset + name.length;
    if (end < name.buffer.byteLength && new Uint8Array(name.buffer, end, 1)[0] === 0) {
      return new Uint8Array(name.buffer, name.byteOffset, name.length + 1);
    }
    const out = new Uint8Array(name.length + 1);
    out.set(name);
    return out;
  };
  // EINTR, and openat2's EAGAIN (a rename raced its resolution), ask for another try.
  const retrying = (call: string, attempt: () => number): number => {
    for (let tries = 1;; tries++) {
      const result = attempt();
      if (result >= 0) return result;
      const code = errno();
      if ((code !== 4 && code !== 11) || tries >= 100) throw new FdCallError(call, code);
    }
  };

  let useOpenat2 = options.openat2 !== false;
  if (useOpenat2) {
    // ENOSYS below Linux 5.6 (and under seccomp filters that do not know the call): fall back for good.
    const probe = Number(c.openat2(SYS_OPENAT2, AT_FDCWD, encoder.encode("/\0"), how, 24n));
    if (probe >= 0) c.close(probe);
    else if (errno() === 38 || errno() === 1) useOpenat2 = false;
  }

  return {
    openat2: useOpenat2,
    openRoot(path) {
      return retrying("open", () => c.openat(AT_FDCWD, encoder.encode(path + "\0"), OPEN_DIR, 0));
    },
    openAt(dirFd, name) {
      const path = cString(name);
      if (useOpenat2) {
        return retrying("openat2", () => Number(c.openat2(SYS_OPENAT2, dirFd, path, how, 24n)));
      }
      return retrying("openat", () => c.openat(dirFd, path, OPEN_DIR, 0));
    },
    statAt(dirFd, name) {
      const flags = AT_SYMLINK_NOFOLLOW | (name === null ? AT_EMPTY_PATH : 0);
      const path = name === null ? empty : cString(name);
      retrying("statx", () => c.statx(dirFd, path, flags, statMask, statBuffer));
      const mode = stat.getUint16(28, true) & S_IFMT;
      // The kernel fills the mount id whether asked or not: honour the option here.
      const gotMask = stat.getUint32(0, true) & statMask;
      return {
        kind: mode === 0o040000 ? "dir" : mode === 0o120000 ? "symlink" : mode === 0o100000 ? "file" : "other",
        ino: stat.getBigUint64(32, true),
        dev: stat.getUint32(136, true) * 0x100000 + stat.getUint32(140, true),
        mountId: (gotMask & STATX_MNT_ID) !== 0 ? stat.getBigUint64(144, true) : null,
        mtimeMs: Number(stat.getBigInt64(112, true)) * 1000 + Math.floor(stat.getUint32(120, true) / 1e6),
        size: Number(stat.getBigUint64(40, true)),
      };
    },
    list(dirFd) {
      const names: DirName[] = [];
      // From the start, however often the folder was listed before.
      if (Number(c.lseek(dirFd, 0n, 0)) < 0) throw new FdCallError("lseek", errno());
      for (;;) {
        const read = retrying("getdents64", () => Number(c.getdents64(dirFd, listBuffer, BigInt(listBuffer.length))));
        if (read === 0) return names;
        // One copy per read: each name is a view into it, followed by its NUL.
        const chunk = listBuffer.slice(0, read);
        for (let offset = 0; offset < read;) {
          const length = list.getUint16(offset + 16, true);
          const type = listBuffer[offset + 18];
          const start = offset + 19;
          const end = chunk.indexOf(0, start);
          offset += length;
          const bytes = chunk.subarray(start, end);
          if (bytes.length === 1 && bytes[0] === 0x2e) continue;
          if (bytes.length === 2 && bytes[0] === 0x2e && bytes[1] === 0x2e) continue;
          let text: string | null;
          try {
            text = utf8.decode(bytes);
          } catch {
            text = null;
          }
          names.push({ bytes, text, kind: DT_KINDS[type] ?? (type === 0 ? "unknown" : "other") });
        }
      }
    },
    unlinkAt(dirFd, name, dir) {
      const path = cString(name);
      retrying("unlinkat", () => c.unlinkat(dirFd, path, dir ? AT_REMOVEDIR : 0));
    },
    close(fd) {
      c.close(fd);
    },
  };
}
