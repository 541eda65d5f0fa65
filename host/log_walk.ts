/**
 * The log folder on this host: resolving the root, walking it and removing entries, with Deno's file APIs only.
 *
 * Every stat is an lstat: a symbolic link is never followed, a linked directory is never entered, and a link
 * is removed as a link. The walk never leaves the root's file system. Names come from `Deno.readDir`, which
 * replaces bytes that are not UTF-8 with U+FFFD: such a name cannot be passed back to the kernel (lstat and
 * remove would name another path or none), so an entry whose name holds U+FFFD is reported, never touched.
 */

/** The default depth limit of the walk (levels below the root). */
export const DEFAULT_MAX_DEPTH = 64;

/** What an entry is, from its own lstat (or the directory listing when no lstat was needed). */
export type EntryKind = "file" | "dir" | "symlink" | "other";

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
  /** Modification time in ms (lstat), or null when the walk did not need it. */
  readonly mtimeMs: number | null;
  /** Size in bytes (lstat), or null when the walk did not need it. */
  readonly size: number | null;
  /** Why the entry was not looked at, or (a directory) not entered; null when all is well. */
  readonly problem: string | null;
}

/** The root of the log folders, resolved once. */
export interface LogRoot {
  /** The resolved absolute path (no symbolic link in it, no trailing slash). */
  readonly path: string;
  /** Its file system's device number: the walk stays on it. */
  readonly dev: number;
}

/** Resolves and checks the root; throws when it is empty, missing, not a directory or `/`. */
export async function resolveLogRoot(dir: string): Promise<LogRoot> {
  if (dir.trim() === "") throw new Error("Cannot clean logs: the log folder (--dbcluster-log-dir) is empty");
  let path: string;
  try {
    path = await Deno.realPath(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new Error(`Cannot clean logs in "${dir}": it does not exist`);
    throw new Error(`Cannot clean logs in "${dir}": ${(error as Error).message}`);
  }
  if (path === "/") throw new Error(`Cannot clean logs in "${dir}": it is the root of the file system`);
  const info = await Deno.lstat(path);
  if (!info.isDirectory) throw new Error(`Cannot clean logs in "${dir}": it is not a directory`);
  return { path, dev: info.dev };
}

/** Whether `path` is strictly below `root` by its text (both absolute, resolved). */
export function isStrictlyInside(root: string, path: string): boolean {
  if (!path.startsWith(root + "/") || path.length === root.length + 1) return false;
  return !path.slice(root.length + 1).split("/").some((part) => part === "" || part === "." || part === "..");
}

/** Whether a name cannot be given back to the kernel as a string (not UTF-8, shown with U+FFFD). */
export function isUnaddressableName(name: string): boolean {
  return name.includes("\uFFFD");
}

/** Options of the walk. */
export interface WalkOptions {
  /** Walk only this top-level entry (its own entry and everything below it). */
  readonly only?: string;
  /**
   * Whether an entry that is not a directory matters: it is then lstat'ed and reported. Other non-directories
   * are passed over without a system call, as find does for names its tests reject.
   */
  readonly wants: (name: string, top: string) => boolean;
  /**
   * Called for every directory, every wanted entry and every entry with a problem, in depth-first pre-order
   * (a directory before what is in it). Returning true for a directory makes the walk report everything
   * below it with its lstat (e.g. to count the bytes of a directory that will be removed).
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
  /** lstat calls made. */
  readonly lstats: number;
}

interface Frame {
  readonly path: string;
  readonly depth: number;
  readonly top: string;
  readonly all: boolean;
  readonly entries: Deno.DirEntry[];
  index: number;
}

/**
 * Walks the root depth-first with an explicit stack; memory holds one listing per open level, never the
 * whole tree. Sync calls are cheaper than async ones by a factor of five here, so the walk uses them and
 * gives the event loop a turn every 20 ms.
 */
export async function walkLogTree(root: LogRoot, options: WalkOptions): Promise<WalkReport> {
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  const stack: Frame[] = [];
  const pacer = createPacer(options.signal);
  let entries = 0;
  let lstats = 0;

  const visit = (frame: Frame | null, dirEntry: Deno.DirEntry | null, name: string) => {
    entries++;
    const parent = frame ? frame.path : root.path;
    const depth = frame ? frame.depth + 1 : 1;
    const top = depth === 1 ? name : frame!.top;
    const path = `${parent}/${name}`;
    const report = (kind: EntryKind, problem: string | null, info?: Deno.FileInfo) =>
      options.onEntry({
        path,
        name,
        depth,
        top,
        kind,
        mtimeMs: info?.mtime?.getTime() ?? null,
        size: info ? info.size : null,
        problem,
      }) === true;
    const listed: EntryKind = dirEntry ? kindOfEntry(dirEntry) : "other";
    if (isUnaddressableName(name)) {
      report(listed, "its name is not valid UTF-8 and cannot be addressed");
      return;
    }
    if (dirEntry && listed !== "dir" && !frame?.all && !options.wants(name, top)) return;
    let info: Deno.FileInfo;
    try {
      lstats++;
      info = Deno.lstatSync(path);
    } catch (error) {
      report(listed, `cannot be read: ${(error as Error).message}`);
      return;
    }
    const kind = kindOfInfo(info);
    if (kind !== "dir") {
      report(kind, null, info);
      return;
    }
    if (info.dev !== root.dev) {
      report(kind, "it is on another file system: not entered", info);
      return;
    }
    if (depth >= maxDepth) {
      report(kind, `it is deeper than ${maxDepth} levels: not entered`, info);
      return;
    }
    let listing: Deno.DirEntry[];
    try {
      listing = [...Deno.readDirSync(path)];
    } catch (error) {
      report(kind, `cannot be listed: ${(error as Error).message}`, info);
      return;
    }
    const all = report(kind, null, info) || (frame?.all ?? false);
    stack.push({ path, depth, top, all, entries: listing, index: 0 });
  };

  if (options.only !== undefined) {
    visit(null, null, options.only);
  } else {
    let listing: Deno.DirEntry[];
    try {
      listing = [...Deno.readDirSync(root.path)];
    } catch (error) {
      throw new Error(`Cannot list "${root.path}": ${(error as Error).message}`);
    }
    stack.push({ path: root.path, depth: 0, top: "", all: false, entries: listing, index: 0 });
  }
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (frame.index >= frame.entries.length) {
      stack.pop();
      continue;
    }
    const dirEntry = frame.entries[frame.index++];
    visit(frame, dirEntry, dirEntry.name);
    await pacer();
  }
  return { entries, lstats };
}

/** Options of a removal. */
export interface RemoveOptions {
  /** The root: nothing outside it, and not the root itself, is ever removed. */
  readonly root: LogRoot;
  /** Count what would be removed, remove nothing. */
  readonly dryRun: boolean;
  /** Called after each removal (or each would-be removal in a dry run). */
  readonly onRemoved?: (path: string, kind: EntryKind, size: number) => void;
  /** Levels below the removed directory that may be entered (default 64). */
  readonly maxDepth?: number;
  /** Stops the removal (it throws the signal's reason). */
  readonly signal?: AbortSignal;
}

/** What a removal did. */
export interface RemoveReport {
  /** Files, links and other non-directories removed. */
  files: number;
  /** Directories removed. */
  dirs: number;
  /** Sum of the lstat sizes of the removed non-directories. */
  bytes: number;
  /** One line per path that could not be removed. */
  readonly errors: string[];
}

/**
 * Checks that a directory's real path is the path itself: no component was swapped for a symbolic link
 * since the walk, so a removal below it stays inside the root.
 */
export async function assertResolvesToItself(root: LogRoot, dir: string): Promise<void> {
  if (dir !== root.path && !isStrictlyInside(root.path, dir)) {
    throw new Error(`Refusing to touch "${dir}": it is not inside "${root.path}"`);
  }
  const real = await Deno.realPath(dir);
  if (real !== dir) throw new Error(`Refusing to touch "${dir}": it now resolves to "${real}"`);
}

/** Removes one non-directory (a file, a link as a link, a socket...): checks, lstat, unlink. */
export async function removeEntry(path: string, options: RemoveOptions): Promise<RemoveReport> {
  const report: RemoveReport = { files: 0, dirs: 0, bytes: 0, errors: [] };
  try {
    if (!isStrictlyInside(options.root.path, path)) throw new Error("it is not strictly inside the root");
    await assertResolvesToItself(options.root, parentOf(path));
    const info = await Deno.lstat(path);
    const kind = kindOfInfo(info);
    if (kind === "dir") throw new Error("it is a directory");
    if (!options.dryRun) await Deno.remove(path);
    report.files++;
    report.bytes += info.size;
    options.onRemoved?.(path, kind, info.size);
  } catch (error) {
    report.errors.push(`Cannot remove "${path}": ${(error as Error).message}`);
  }
  return report;
}

/**
 * Removes a directory and everything in it, depth-first with lstat: links inside are removed as links and
 * never followed, directories on another file system are not entered (so their parents stay), and a failure
 * on one path is reported while the rest goes on.
 */
export async function removeTree(path: string, options: RemoveOptions): Promise<RemoveReport> {
  const { root } = options;
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  const report: RemoveReport = { files: 0, dirs: 0, bytes: 0, errors: [] };
  const fail = (where: string, error: unknown) =>
    report.errors.push(`Cannot remove "${where}": ${(error as Error).message ?? String(error)}`);
  const pacer = createPacer(options.signal);
  const stack: { path: string; depth: number; entries: Deno.DirEntry[]; index: number }[] = [];

  const open = async (dir: string, depth: number): Promise<void> => {
    try {
      if (!isStrictlyInside(root.path, dir)) throw new Error("it is not strictly inside the root");
      const info = Deno.lstatSync(dir);
      if (!info.isDirectory || info.isSymlink) throw new Error("it is no longer a directory");
      if (info.dev !== root.dev) throw new Error("it is on another file system");
      if (depth > maxDepth) throw new Error(`it is deeper than ${maxDepth} levels`);
      await assertResolvesToItself(root, dir);
      stack.push({ path: dir, depth, entries: [...Deno.readDirSync(dir)], index: 0 });
    } catch (error) {
      fail(dir, error);
    }
  };

  await open(path, 0);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (frame.index >= frame.entries.length) {
      stack.pop();
      try {
        if (!options.dryRun) await Deno.remove(frame.path);
        report.dirs++;
        options.onRemoved?.(frame.path, "dir", 0);
      } catch (error) {
        fail(frame.path, error);
      }
      continue;
    }
    const name = frame.entries[frame.index++].name;
    const child = `${frame.path}/${name}`;
    await pacer();
    if (isUnaddressableName(name)) {
      fail(child, new Error("its name is not valid UTF-8 and cannot be addressed"));
      continue;
    }
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(child);
    } catch (error) {
      fail(child, error);
      continue;
    }
    if (info.isDirectory) {
      await open(child, frame.depth + 1);
      continue;
    }
    try {
      if (!options.dryRun) Deno.removeSync(child);
      report.files++;
      report.bytes += info.size;
      options.onRemoved?.(child, kindOfInfo(info), info.size);
    } catch (error) {
      fail(child, error);
    }
  }
  return report;
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

function kindOfEntry(entry: Deno.DirEntry): EntryKind {
  if (entry.isSymlink) return "symlink";
  if (entry.isDirectory) return "dir";
  return entry.isFile ? "file" : "other";
}

function kindOfInfo(info: Deno.FileInfo): EntryKind {
  if (info.isSymlink) return "symlink";
  if (info.isDirectory) return "dir";
  return info.isFile ? "file" : "other";
}

/** Gives the event loop a turn every 20 ms of sync work, and stops when the signal is aborted. */
function createPacer(signal: AbortSignal | undefined): () => Promise<void> {
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
