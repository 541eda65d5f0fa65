/** How full a file system is: `statvfs(3)` from libc through Deno's FFI, for the image store's root. */
import type { CommandRunner } from "./command.ts";
import { FdCallError } from "./dir_fd.ts";

/** The figures `df` shows for the file system holding a path. */
export interface FsFigures {
  /** The path asked about. */
  readonly path: string;
  /** Bytes in all (`f_blocks * f_frsize`). */
  readonly totalBytes: number;
  /** Bytes in use (`(f_blocks - f_bfree) * f_frsize`). */
  readonly usedBytes: number;
  /** Bytes free for an unprivileged writer (`f_bavail * f_frsize`). */
  readonly availableBytes: number;
}

const SYMBOLS = {
  statvfs: { parameters: ["buffer", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | null = null;

/** The figures of the file system that holds `path`; throws naming the path and the errno. */
export function statFs(path: string): FsFigures {
  try {
    lib ??= Deno.dlopen("libc.so.6", SYMBOLS);
  } catch (error) {
    throw new Error(`Cannot load statvfs from libc.so.6: ${(error as Error).message}`);
  }
  // struct statvfs on 64-bit Linux: 11 unsigned longs, then 6 spare ints (112 bytes).
  const buffer = new BigUint64Array(14);
  const name = new TextEncoder().encode(`${path}\0`);
  if (lib.symbols.statvfs(name, buffer) !== 0) {
    const errno = new Deno.UnsafePointerView(lib.symbols.__errno_location()!).getInt32();
    throw new FdCallError(`statvfs of ${path}`, errno);
  }
  const [, frsize, blocks, bfree, bavail] = buffer;
  return {
    path,
    totalBytes: Number(blocks * frsize),
    usedBytes: Number((blocks - bfree) * frsize),
    availableBytes: Number(bavail * frsize),
  };
}

/**
 * The same figures from `df` run through the command runner: with `--host-command-prefix` it runs in the host's mount
 * namespace, where the image store's root is (a container does not mount it).
 */
export async function dfFigures(runCommand: CommandRunner, path: string): Promise<FsFigures> {
  const result = await runCommand(["df", "-B1", "--output=size,used,avail", "--", path], { timeoutMs: 10_000 });
  const numbers = result.stdout.trim().split("\n").at(-1)?.trim().split(/\s+/).map(Number) ?? [];
  if (result.code !== 0 || numbers.length !== 3 || !numbers.every(Number.isFinite)) {
    const why = result.timedOut ? "timed out" : result.stderr.trim().split("\n").pop() || `exit code ${result.code}`;
    throw new Error(`Cannot read the free space of ${path} with df: ${why}`);
  }
  const [totalBytes, usedBytes, availableBytes] = numbers;
  return { path, totalBytes, usedBytes, availableBytes };
}
