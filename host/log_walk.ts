/**
 * The log folder on this host: the root, opened once, and a walk below it that holds every folder by its fd.
 *
 * The database user owns the instance folders and may be hostile: any folder can be swapped for a link, or a
 * bind mount put below the root, at any moment. So nothing below the root is ever reached by its path text again:
 * each folder is opened relative to its parent's fd (openat2 refusing links and mount crossings, or
 * `O_NOFOLLOW|O_DIRECTORY` and a mount check), and checked to be the very inode that was looked at. A folder that
 * changed in between is not entered, and is reported as replaced. Names that are not UTF-8 cannot be named in the
 * results: such an entry is reported, never touched.
 */
import { type DirFs, type DirFsOptions, type EntryKind, type FdStat, isSwapError, openDirFs } from "./dir_fd.ts";
import { readMountPointsBelow } from "./mount_points.ts";

export type { EntryKind } from "./dir_fd.ts";

/** The DaemonSet's volume that mounts the host's log root. */
export const LOG_ROOT_VOLUME = "dbcluster-log";

/** The default depth limit of the walk (levels below the root). */
export const DEFAULT_MAX_DEPTH = 64;

/** One entry seen by the walk. */
export interface WalkEntry {
  /** Absolute path (the resolved root, then names). */
  readonly path: string;
  /** The entry's name. */
  readonly name: string;
  /** Levels below the root: 1 for a top-level entry. */
  readonly depth: number;
  /** The name of the top-level entry this entry is in (its own name at depth 1). */
  readonly top: string;
  /** What it is. */
  readonly kind: EntryKind;
  /** Modification time in ms, or null when the walk did not need it. */
  readonly mtimeMs: number | null;
  /** Size in bytes, or null when the walk did not need it. */
  readonly size: number | null;
  /** Why the entry was not looked at, or (a directory) not entered; null when all is well. */
  readonly problem: string | null;
}

/** The root of the log folders, resolved and opened once per run. */
export interface LogRoot {
  /** The resolved absolute path (no symbolic link in it, no trailing slash). */
  readonly path: string;
  /** Its file system's device number: the walk stays on it. */
  readonly dev: number;
  /** Its mount id, when the kernel gives one: the walk stays on this mount. */
  readonly mountId: bigint | null;
  /** The open root directory. */
  readonly fd: number;
  /** The directory-fd calls. */
  readonly fs: DirFs;
  /** Mount points below the root (never entered). */
  readonly mountPoints: ReadonlySet<string>;
}

/** Options of `resolveLogRoot`. */
export interface ResolveOptions {
  /** Options of the directory-fd calls (tests force the fallbacks). */
  readonly dirFs?: DirFsOptions;
  /** Loads the directory-fd calls (default `openDirFs`); a loader that throws makes the root refused. */
  readonly openFs?: (options: DirFsOptions) => DirFs;
}

/** Resolves, checks and opens the root; throws when it is empty, missing, not a directory, `/`, or cannot be opened. */
export async function resolveLogRoot(dir: string, options: ResolveOptions = {}): Promise<LogRoot> {
  if (dir.trim() === "") throw new Error("Cannot clean logs: the log folder (--dbcluster-log-dir) is empty");
  let path: string;
  try {
    path = await Deno.realPath(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot clean logs in "${dir}": it does not exist (in a pod, mount the host's folder there: volume "${LOG_ROOT_VOLUME}")`,
      );
    }
    throw new Error(`Cannot clean logs in "${dir}": ${(error as Error).message}`);
  }
  if (path === "/") throw new Error(`Cannot clean logs in "${dir}": it is the root of the file system`);
  const info = await Deno.lstat(path);
  if (!info.isDirectory) throw new Error(`Cannot clean logs in "${dir}": it is not a directory`);
  let fs: DirFs;
  try {
    fs = (options.openFs ?? openDirFs)(options.dirFs ?? {});
  } catch (error) {
    throw new Error(`Cannot clean logs in "${dir}": ${(error as Error).message}; nothing is removed without them`);
  }
  let fd: number;
  try {
    fd = fs.openRoot(path);
  } catch (error) {
    throw new Error(`Cannot clean logs in "${dir}": cannot open "${path}": ${(error as Error).message}`);
  }
  const stat = fs.statAt(fd, null);
  return { path, dev: stat.dev, mountId: stat.mountId, fd, fs, mountPoints: readMountPointsBelow(path) };
}

/** Closes the root's fd. */
export function closeLogRoot(root: LogRoot): void {
  root.fs.close(root.fd);
}

/** Whether `path` is strictly below `root` by its text (both absolute, resolved). */
export function isStrictlyInside(root: string, path: string): boolean {
  if (!path.startsWith(root + "/") || path.length === root.length + 1) return false;
  return !path.slice(root.length + 1).split("/").some((part) => part === "" || part === "." || part === "..");
}

/** A folder that was not entered: why, whether it was replaced while the daemon worked on it, and which one. */
export class NotEntered extends Error {
  /** Builds the error; `path` names the folder when it is not the path being worked on. */
  constructor(message: string, readonly replaced: boolean, readonly path?: string) {
    super(path === undefined ? message : `"${path}" ${message}`);
    this.name = "NotEntered";
  }
}

/**
 * Opens the folder `name` inside `parentFd`, and checks it is the inode `seen` (from a statx an instant before),
 * on the root's mount. Throws NotEntered otherwise; the caller closes the fd it gets.
 */
export function enterDir(
  root: LogRoot,
  parentFd: number,
  where: { name: Uint8Array; path: string; seen: FdStat },
): number {
  if (root.mountPoints.has(where.path)) throw new NotEntered("it is a mount point: not entered", false);
  let fd: number;
  try {
    fd = root.fs.openAt(parentFd, where.name);
  } catch (error) {
    if (isSwapError(error) && (error as { code: string }).code === "EXDEV") {
      throw new NotEntered("it is a mount point: not entered", false);
    }
    if (isSwapError(error)) throw new NotEntered(`it was replaced while being worked on (${error})`, true);
    throw new NotEntered(`cannot be opened: ${(error as Error).message}`, false);
  }
  try {
    const now = root.fs.statAt(fd, null);
    if (now.ino !== where.seen.ino || now.dev !== where.seen.dev) {
      throw new NotEntered("it was replaced while being worked on (another inode)", true);
    }
    if (now.dev !== root.dev || (root.mountId !== null && now.mountId !== root.mountId)) {
      throw new NotEntered("it is on another file system or mount: not entered", false);
    }
    return fd;
  } catch (error) {
    root.fs.close(fd);
    throw error;
  }
}

/** Options of the walk. */
export interface WalkOptions {
  /** Walk only this top-level entry (its own entry and everything below it). */
  readonly only?: string;
  /**
   * Whether an entry that is not a directory matters: it is then looked at and reported. Other non-directories
   * are passed over without a system call, as find does for names its tests reject.
   */
  readonly wants: (name: string, top: string) => boolean;
  /**
   * Called for every directory, every wanted entry and every entry with a problem, in depth-first pre-order
   * (a directory before what is in it). Returning true for a directory makes the walk report everything
   * below it with its stat (e.g. to count the bytes of a directory that will be removed).
   */
  readonly onEntry: (entry: WalkEntry) => boolean | void;
  /** Levels below the root the walk may enter (default 64). */
  readonly maxDepth?: number;
  /** Stops the walk (it throws the signal's reason). */
  readonly signal?: AbortSignal;
}

/** What the walk did. */
export interface WalkReport {
  /** Entries seen. */
  readonly entries: number;
  /** statx calls made. */
  readonly stats: number;
  /** Folders that were replaced (by a link, a file or another folder) while the walk entered them. */
  readonly replaced: string[];
}

interface Frame {
  readonly fd: number;
  readonly path: string;
  readonly depth: number;
  readonly top: string;
  readonly all: boolean;
  readonly entries: {
    readonly bytes: Uint8Array;
    readonly name: string | null;
    readonly listed: EntryKind | "unknown";
  }[];
  index: number;
}

/**
 * Walks the root depth-first with an explicit stack of open folders; memory holds one listing per open level,
 * never the whole tree. The calls are synchronous (cheaper by far than async ones); the walk gives the event loop
 * a turn every 20 ms.
 */
export async function walkLogTree(root: LogRoot, options: WalkOptions): Promise<WalkReport> {
  const { fs } = root;
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  const stack: Frame[] = [];
  const pacer = createPacer(options.signal);
  const replaced: string[] = [];
  let entries = 0;
  let stats = 0;

  const visit = (parent: Frame | null, child: Frame["entries"][number]) => {
    entries++;
    const depth = parent ? parent.depth + 1 : 1;
    const name = child.name ?? new TextDecoder().decode(child.bytes);
    const top = depth === 1 ? name : parent!.top;
    const path = `${parent ? parent.path : root.path}/${name}`;
    const report = (kind: EntryKind, problem: string | null, info?: FdStat) =>
      options.onEntry({
        path,
        name,
        depth,
        top,
        kind,
        mtimeMs: info?.mtimeMs ?? null,
        size: info ? info.size : null,
        problem,
      }) === true;
    const listed: EntryKind = child.listed === "unknown" ? "other" : child.listed;
    if (child.name === null) {
      report(listed, "its name is not valid UTF-8 and cannot be addressed");
      return;
    }
    if (child.listed !== "dir" && child.listed !== "unknown" && !parent?.all && !options.wants(name, top)) return;
    const parentFd = parent ? parent.fd : root.fd;
    let info: FdStat;
    try {
      stats++;
      info = fs.statAt(parentFd, child.bytes);
    } catch (error) {
      report(listed, `cannot be read: ${(error as Error).message}`);
      return;
    }
    if (info.kind !== "dir") {
      if (child.listed === "dir" || parent?.all || options.wants(name, top)) report(info.kind, null, info);
      return;
    }
    if (depth >= maxDepth) {
      report("dir", `it is deeper than ${maxDepth} levels: not entered`, info);
      return;
    }
    let fd: number;
    try {
      fd = enterDir(root, parentFd, { name: child.bytes, path, seen: info });
    } catch (error) {
      if (error instanceof NotEntered && error.replaced) replaced.push(path);
      report("dir", error instanceof NotEntered ? error.message : String(error), info);
      return;
    }
    let listing: Frame["entries"];
    try {
      listing = fs.list(fd).map((entry) => ({ bytes: entry.bytes, name: entry.text, listed: entry.kind }));
    } catch (error) {
      fs.close(fd);
      report("dir", `cannot be listed: ${(error as Error).message}`, info);
      return;
    }
    const all = report("dir", null, info) || (parent?.all ?? false);
    stack.push({ fd, path, depth, top, all, entries: listing, index: 0 });
  };

  try {
    if (options.only !== undefined) {
      // The folder is named because it was a folder: whatever it is now is reported.
      visit(null, { bytes: new TextEncoder().encode(options.only), name: options.only, listed: "dir" });
    } else {
      let listing: Frame["entries"];
      try {
        listing = fs.list(root.fd).map((entry) => ({ bytes: entry.bytes, name: entry.text, listed: entry.kind }));
      } catch (error) {
        throw new Error(`Cannot list "${root.path}": ${(error as Error).message}`);
      }
      for (const child of listing) {
        visit(null, child);
        await drain();
      }
    }
    await drain();
  } finally {
    for (const frame of stack) fs.close(frame.fd);
  }
  return { entries, stats, replaced };

  async function drain(): Promise<void> {
    while (stack.length > 0) {
      const frame = stack[stack.length - 1];
      if (frame.index >= frame.entries.length) {
        stack.pop();
        fs.close(frame.fd);
        continue;
      }
      visit(frame, frame.entries[frame.index++]);
      await pacer();
    }
  }
}

/** Gives the event loop a turn every 20 ms of sync work, and stops when the signal is aborted. */
export function createPacer(signal: AbortSignal | undefined): () => Promise<void> {
  let last = performance.now();
  let calls = 0;
  return async () => {
    if ((++calls & 255) !== 0) return;
    signal?.throwIfAborted();
    if (performance.now() - last < 20) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
    last = performance.now();
  };
}
