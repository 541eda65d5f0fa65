/**
 * Removal below the log root, relative to open folder fds only: the parent is reached one component at a time
 * from the root's fd, the target is looked at with statx and removed with unlinkat on that parent. A folder is
 * emptied through its own fd and removed only when its parent still holds that very inode, so a folder swapped for
 * a link (or a bind mount) during the removal stops that subtree: what is in the swapped-in place is never touched.
 */
import { type EntryKind, FdCallError, type FdStat } from "./dir_fd.ts";
import { createPacer, DEFAULT_MAX_DEPTH, enterDir, isStrictlyInside, type LogRoot, NotEntered } from "./log_walk.ts";

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
  /** Right before the removal, with the target's statx: a reason to keep it, or null to go on. */
  readonly keep?: (stat: FdStat) => string | null;
}

/** What a removal did. */
export interface RemoveReport {
  /** Files, links and other non-directories removed. */
  files: number;
  /** Directories removed. */
  dirs: number;
  /** Sum of the sizes of the removed non-directories. */
  bytes: number;
  /** One line per path that could not be removed. */
  readonly errors: string[];
  /** Folders found replaced (by a link, a file, another folder or a mount) while they were worked on. */
  readonly replaced: string[];
  /** Why the target was kept without an error (`keep` said so, or it was already gone), else null. */
  kept: string | null;
}

/** An empty report. */
export function emptyReport(): RemoveReport {
  return { files: 0, dirs: 0, bytes: 0, errors: [], replaced: [], kept: null };
}

interface Parent {
  readonly fd: number;
  readonly name: Uint8Array;
}

/** Opens the folder that holds `path`, one component at a time from the root's fd. */
function openParent(root: LogRoot, path: string): Parent {
  if (!isStrictlyInside(root.path, path)) throw new Error("it is not strictly inside the root");
  const parts = path.slice(root.path.length + 1).split("/");
  const encoder = new TextEncoder();
  let fd = root.fd;
  let where = root.path;
  try {
    for (const part of parts.slice(0, -1)) {
      const name = encoder.encode(part);
      where = `${where}/${part}`;
      const seen = root.fs.statAt(fd, name);
      if (seen.kind !== "dir") {
        throw new NotEntered(`"${where}" was replaced while being worked on (a ${seen.kind})`, true);
      }
      const next = enterDir(root, fd, { name, path: where, seen });
      if (fd !== root.fd) root.fs.close(fd);
      fd = next;
    }
  } catch (error) {
    if (fd !== root.fd) root.fs.close(fd);
    if (error instanceof NotEntered && error.path === undefined) {
      throw new NotEntered(error.message, error.replaced, where);
    }
    throw error;
  }
  return { fd, name: encoder.encode(parts[parts.length - 1]) };
}

function closeParent(root: LogRoot, parent: Parent): void {
  if (parent.fd !== root.fd) root.fs.close(parent.fd);
}

/** Looks at the target; null (and `kept` set) when it is gone, or when `keep` or `kind` says to keep it. */
function lookAtTarget(
  parent: Parent,
  report: RemoveReport,
  options: RemoveOptions & { readonly wanted: (stat: FdStat) => string | null },
): FdStat | null {
  let stat: FdStat;
  try {
    stat = options.root.fs.statAt(parent.fd, parent.name);
  } catch (error) {
    if (error instanceof FdCallError && error.code === "ENOENT") {
      report.kept = "already gone";
      return null;
    }
    throw error;
  }
  report.kept = options.wanted(stat) ?? options.keep?.(stat) ?? null;
  return report.kept === null ? stat : null;
}

function failure(report: RemoveReport, path: string, error: unknown): void {
  report.errors.push(`Cannot remove "${path}": ${(error as Error).message ?? String(error)}`);
  const swapped = error instanceof FdCallError && (error.code === "ELOOP" || error.code === "ENOTDIR");
  if ((error instanceof NotEntered && error.replaced) || swapped) {
    report.replaced.push(error instanceof NotEntered ? error.path ?? path : path);
  }
}

/** Removes one non-directory (a file, a link as a link, a socket...) through its parent's fd. */
export function removeEntry(path: string, options: RemoveOptions): RemoveReport {
  const report = emptyReport();
  let parent: Parent;
  try {
    parent = openParent(options.root, path);
  } catch (error) {
    failure(report, path, error);
    return report;
  }
  try {
    const wanted = (stat: FdStat) => (stat.kind === "dir" ? "it is a directory now" : null);
    const stat = lookAtTarget(parent, report, { ...options, wanted });
    if (stat === null) return report;
    if (!options.dryRun) options.root.fs.unlinkAt(parent.fd, parent.name, false);
    report.files++;
    report.bytes += stat.size;
    options.onRemoved?.(path, stat.kind, stat.size);
  } catch (error) {
    failure(report, path, error);
  } finally {
    closeParent(options.root, parent);
  }
  return report;
}

interface Frame {
  readonly fd: number;
  readonly parentFd: number;
  readonly name: Uint8Array;
  readonly path: string;
  readonly ino: bigint;
  readonly depth: number;
  readonly entries: { readonly bytes: Uint8Array; readonly text: string | null }[];
  index: number;
}

/**
 * Removes a directory and everything in it, depth-first through open fds: links inside are removed as links and
 * never followed, folders on another mount are not entered (so their parents stay), a folder replaced while it is
 * worked on is reported and kept, and a failure on one path is reported while the rest goes on.
 */
export async function removeTree(path: string, options: RemoveOptions): Promise<RemoveReport> {
  const { root } = options;
  const { fs } = root;
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  const report = emptyReport();
  const pacer = createPacer(options.signal);
  const stack: Frame[] = [];
  let parent: Parent;
  try {
    parent = openParent(root, path);
  } catch (error) {
    failure(report, path, error);
    return report;
  }

  const push = (parentFd: number, where: { name: Uint8Array; path: string; seen: FdStat; depth: number }) => {
    const fd = enterDir(root, parentFd, where);
    let entries: Frame["entries"];
    try {
      entries = fs.list(fd);
    } catch (error) {
      fs.close(fd);
      throw error;
    }
    stack.push({
      fd,
      parentFd,
      name: where.name,
      path: where.path,
      ino: where.seen.ino,
      depth: where.depth,
      entries,
      index: 0,
    });
  };

  try {
    const wanted = (stat: FdStat) => {
      if (stat.kind === "dir") return null;
      if (stat.kind === "symlink") failure(report, path, new NotEntered("it was replaced by a link: kept", true));
      return `it is a ${stat.kind} now`;
    };
    const seen = lookAtTarget(parent, report, { ...options, wanted });
    if (seen === null) return report;
    push(parent.fd, { name: parent.name, path, seen, depth: 0 });
    while (stack.length > 0) {
      await pacer();
      const frame = stack[stack.length - 1];
      if (frame.index >= frame.entries.length) {
        stack.pop();
        fs.close(frame.fd);
        removeEmptied(frame);
        continue;
      }
      const child = frame.entries[frame.index++];
      const childPath = `${frame.path}/${child.text ?? new TextDecoder().decode(child.bytes)}`;
      if (child.text === null) {
        failure(report, childPath, new Error("its name is not valid UTF-8 and cannot be addressed"));
        continue;
      }
      try {
        const stat = fs.statAt(frame.fd, child.bytes);
        if (stat.kind === "dir") {
          if (frame.depth + 1 > maxDepth) throw new Error(`it is deeper than ${maxDepth} levels`);
          push(frame.fd, { name: child.bytes, path: childPath, seen: stat, depth: frame.depth + 1 });
          continue;
        }
        if (!options.dryRun) fs.unlinkAt(frame.fd, child.bytes, false);
        report.files++;
        report.bytes += stat.size;
        options.onRemoved?.(childPath, stat.kind, stat.size);
      } catch (error) {
        if (error instanceof FdCallError && error.code === "ENOENT") continue;
        failure(report, childPath, error);
      }
    }
  } catch (error) {
    failure(report, path, error);
  } finally {
    for (const frame of stack) fs.close(frame.fd);
    closeParent(root, parent);
  }
  return report;

  function removeEmptied(frame: Frame): void {
    try {
      // The parent must still hold the folder that was emptied: a swap in between leaves both in place.
      const now = fs.statAt(frame.parentFd, frame.name);
      if (now.kind !== "dir" || now.ino !== frame.ino) {
        throw new NotEntered(`was replaced while being removed (a ${now.kind} now): kept`, true);
      }
      if (!options.dryRun) fs.unlinkAt(frame.parentFd, frame.name, true);
      report.dirs++;
      options.onRemoved?.(frame.path, "dir", 0);
    } catch (error) {
      failure(report, frame.path, error);
    }
  }
}
