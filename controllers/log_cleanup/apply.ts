/** Applies a log-cleanup plan: removes what it says, re-checking each path right before, relative to the root's fd. */
import type { FdStat } from "../../host/dir_fd.ts";
import { emptyReport, removeEntry, type RemoveOptions, type RemoveReport, removeTree } from "../../host/log_remove.ts";
import { type LogRoot, walkLogTree } from "../../host/log_walk.ts";
import type { Logger } from "../../core/types.ts";
import { type BoundedList, createBoundedList, LIST_LIMIT } from "./bounded_list.ts";
import { mtimePlus } from "./find_rules.ts";
import { createLogCleanupPlanner, type LogCleanupPlan, type PlannedFolder, type PlannedRemoval } from "./plan.ts";

/** What the removal did (or, in a dry run, would do). */
export interface AppliedCleanup {
  /** Instance folders removed. */
  readonly folders: string[];
  /** Log files removed. */
  readonly logFiles: string[];
  /** Data directories removed. */
  readonly dataDirs: string[];
  /** Files, directories, bytes and errors over all removals. */
  readonly totals: RemoveReport;
  /** What was kept at the last moment, and why. */
  readonly skipped: string[];
}

/** Where and how to apply a plan. */
export interface ApplyContext {
  /** The resolved root. */
  readonly root: LogRoot;
  /** N. */
  readonly days: number;
  /** The plan's time. */
  readonly nowMs: number;
  /**
   * Remove nothing: log files and data directories are reported with their sizes from the walk, and the
   * bytes of folders are counted by a removal walk that removes nothing.
   */
  readonly dryRun: boolean;
  /** Stops between paths. */
  readonly signal?: AbortSignal;
  /** The job's logger. */
  readonly log: Logger;
}

/** One application in progress: the context, the running totals and the helpers every step shares. */
interface Removal {
  readonly context: ApplyContext;
  readonly removeOptions: RemoveOptions;
  readonly totals: RemoveReport;
  readonly skipped: BoundedList;
  /** Adds a report to the totals; true when the path went whole. */
  add(report: RemoveReport): boolean;
  /** Notes a path kept at the last moment. */
  keptLine(what: string, path: string, report: RemoveReport): void;
  /** Logs a removal (a dry run's only at debug level: it can be thousands of lines). */
  note(message: string, properties: Record<string, unknown>): void;
  /** Right before a removal, with its parent held: still old enough, or it changed since the walk. */
  stillOld(stat: FdStat): string | null;
}

/** Removes what the plan says, re-checking each path right before; a failure on one path never stops the rest. */
export async function applyCleanup(plan: LogCleanupPlan, context: ApplyContext): Promise<AppliedCleanup> {
  const removal = createRemoval(context);
  const folders = await removeFolders(plan.folders, removal);
  const logFiles = await removeMatches(plan.logFiles, "Log file", removal);
  const dataDirs = await removeMatches(plan.dataDirs, "Data directory", removal);
  return { folders, logFiles, dataDirs, totals: removal.totals, skipped: removal.skipped.lines() };
}

/** The shared state and helpers of one application. */
function createRemoval(context: ApplyContext): Removal {
  const { days, nowMs, log, dryRun } = context;
  const totals = emptyReport();
  const skipped = createBoundedList();
  return {
    context,
    removeOptions: {
      root: context.root,
      dryRun,
      signal: context.signal,
      onRemoved: (path, kind, size) => log.debug("Removed {kind} {path} ({size} bytes)", { kind, path, size }),
    },
    totals,
    skipped,
    add(report) {
      totals.files += report.files;
      totals.dirs += report.dirs;
      totals.bytes += report.bytes;
      for (const error of report.errors) {
        if (totals.errors.length < LIST_LIMIT) totals.errors.push(error);
        log.error("{error}", { error });
      }
      for (const path of report.replaced) if (totals.replaced.length < LIST_LIMIT) totals.replaced.push(path);
      return report.errors.length === 0 && report.kept === null;
    },
    keptLine(what, path, report) {
      if (report.kept === null) return;
      skipped.push(
        report.kept === "already gone"
          ? `${what} already gone: "${path}"`
          : `${what} kept: "${path}" changed since the walk (${report.kept})`,
      );
    },
    note: (message, properties) => dryRun ? log.debug(message, properties) : log.info(message, properties),
    stillOld: (stat) => (mtimePlus(stat.mtimeMs, nowMs, days) ? null : "changed since the walk"),
  };
}

/** Removes the instance folders that are still overdue; returns the paths that went whole. */
async function removeFolders(planned: readonly PlannedFolder[], removal: Removal): Promise<string[]> {
  const { context } = removal;
  const verb = context.dryRun ? "Would remove" : "Removed";
  const folders: string[] = [];
  for (const folder of planned) {
    context.signal?.throwIfAborted();
    if (!context.dryRun && !(await stillOverdue(folder, removal))) {
      removal.skipped.push(`Instance folder kept: "${folder.path}" changed since the walk`);
      continue;
    }
    const report = await removeTree(folder.path, removal.removeOptions);
    removal.keptLine("Instance folder", folder.path, report);
    if (removal.add(report)) folders.push(folder.path);
    removal.note(`${verb} instance folder {path}: {files} files, {bytes} bytes`, { path: folder.path, ...report });
  }
  return folders;
}

/** Walks the folder again: a log written since the first walk keeps it, and so does a swap for a link. */
async function stillOverdue(folder: PlannedFolder, removal: Removal): Promise<boolean> {
  const { root, nowMs, days, signal } = removal.context;
  const again = createLogCleanupPlanner({ activeInstances: null, nowMs }, { days, maxFolders: 0 });
  let linked = false;
  const walked = await walkLogTree(root, {
    only: folder.name,
    wants: again.wants,
    onEntry: (entry) => {
      // The folder the first walk saw is a link now: it was swapped.
      if (entry.depth === 1 && entry.kind === "symlink") linked = true;
      return again.visit(entry);
    },
    signal,
  });
  const replaced = linked ? [...walked.replaced, folder.path] : walked.replaced;
  removal.add({
    ...emptyReport(),
    replaced,
    errors: linked ? [`Cannot remove "${folder.path}": it was replaced by a link since the walk: kept`] : [],
  });
  return again.finish().overdue.some((f) => f.path === folder.path);
}

/**
 * Each kind of `-mtime +N` match: its log line after the verb, what a dry run counts, its removal, and whether
 * a removal is logged also when it failed on some path below (a data directory is then partly gone).
 */
const MATCH_KINDS = {
  "Log file": { line: "log file {path} ({bytes} bytes)", dry: { files: 1 }, remove: removeEntry, partial: false },
  "Data directory": {
    line: "data directory {path}: {bytes} bytes",
    dry: { dirs: 1 },
    remove: removeTree,
    partial: true,
  },
} as const;

/** Removes the `-mtime +N` matches of one kind; returns the paths that went whole. */
async function removeMatches(
  planned: readonly PlannedRemoval[],
  what: keyof typeof MATCH_KINDS,
  removal: Removal,
): Promise<string[]> {
  const { context } = removal;
  const kind = MATCH_KINDS[what];
  const verb = context.dryRun ? "Would remove" : "Removed";
  const removed: string[] = [];
  for (const match of planned) {
    context.signal?.throwIfAborted();
    const report = context.dryRun
      ? { ...emptyReport(), ...kind.dry, bytes: match.bytes }
      : await kind.remove(match.path, { ...removal.removeOptions, keep: removal.stillOld });
    removal.keptLine(what, match.path, report);
    if (removal.add(report)) removed.push(match.path);
    if (report.kept === null && (kind.partial || report.errors.length === 0)) {
      removal.note(`${verb} ${kind.line}`, { path: match.path, bytes: report.bytes });
    }
  }
  return removed;
}
