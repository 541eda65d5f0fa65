/**
 * The log-cleanup job (reference.md section 3): removes the folders of instances gone for N days, and old
 * `postgresql*.log` files and `rm_data_*` directories everywhere below the root. Pure decisions first
 * (`planCleanup`), a thin removal after, with safety nets: no folder removed when the active instances are
 * unknown, none when more than `--log-cleanup-max-folders` would go, and nothing that changed since the walk.
 */
import type { V1Pod } from "@kubernetes/client-node";
import type { FdStat } from "../host/dir_fd.ts";
import { emptyReport, removeEntry, type RemoveOptions, type RemoveReport, removeTree } from "../host/log_remove.ts";
import {
  closeLogRoot,
  type LogRoot,
  resolveLogRoot,
  type ResolveOptions,
  type WalkEntry,
  walkLogTree,
} from "../host/log_walk.ts";
import type { KubeClient } from "../k8s/client.ts";
import type { JobDeps } from "./deps.ts";
import type { Controller, JobCounter, RunContext, RunOutcome } from "../core/types.ts";

/** The pod label whose values name the active instances. */
export const INSTANCE_LABEL = "apsara.metric.ins_id";

const DAY_MS = 86_400_000;
const LIST_LIMIT = 100;

/** Age in whole days, rounded down, as GNU find counts it for `-mtime`. */
export function mtimeDays(mtimeMs: number, nowMs: number): number {
  return Math.floor((nowMs - mtimeMs) / DAY_MS);
}

/**
 * GNU find's `-mtime -N`: modified less than N days ago. find compares with `now - N days - 1 s` (its
 * reference for `-N` starts one second before the day), so an age of exactly N days still matches.
 */
export function mtimeMinus(mtimeMs: number, nowMs: number, days: number): boolean {
  return mtimeMs > nowMs - days * DAY_MS - 1000;
}

/** GNU find's `-mtime +N`: modified more than N whole days ago, i.e. more than (N+1) x 24 hours ago. */
export function mtimePlus(mtimeMs: number, nowMs: number, days: number): boolean {
  return mtimeMs < nowMs - (days + 1) * DAY_MS;
}

/** find's `-name '*.log'`. */
export function isLogName(name: string): boolean {
  return name.endsWith(".log");
}

/** find's `-name 'postgresql*.log'`. */
export function isPostgresLogName(name: string): boolean {
  return name.length >= "postgresql.log".length && name.startsWith("postgresql") && name.endsWith(".log");
}

/** find's `-name 'rm_data_*'`. */
export function isDataDirName(name: string): boolean {
  return name.startsWith("rm_data_");
}

/** An entry the plan removes. */
export interface PlannedRemoval {
  /** Absolute path. */
  readonly path: string;
  /** Its mtime at the walk. */
  readonly mtimeMs: number;
  /** Its size at the walk (a directory: the sizes of the files and links below it). */
  readonly bytes: number;
}

/** An instance folder the plan removes. */
export interface PlannedFolder {
  /** Absolute path. */
  readonly path: string;
  /** The folder's name: the instance id. */
  readonly name: string;
  /** The newest `*.log` mtime below it, or null when it has none. */
  readonly newestLogMs: number | null;
}

/** What one run will remove and why it keeps the rest. */
export interface CleanupPlan {
  /** Instance folders to remove whole. */
  readonly folders: PlannedFolder[];
  /** `postgresql*.log` entries (not directories) with `-mtime +N`, outside those folders. */
  readonly logFiles: PlannedRemoval[];
  /** `rm_data_*` directories with `-mtime +N`, outside those folders and outside each other. */
  readonly dataDirs: PlannedRemoval[];
  /** Every overdue folder (no recent `*.log`, fully seen), active or not, kept or not. */
  readonly overdue: PlannedFolder[];
  /** Overdue folders of inactive instances that were kept (limit exceeded or instances unknown). */
  readonly overdueKept: number;
  /** Whether the folder limit stopped every folder removal. */
  readonly folderLimitExceeded: boolean;
  /** Readable reasons for what was kept or not looked at. */
  readonly skipped: string[];
}

/** Inputs of the decision besides what the walk saw. */
export interface PlanOptions {
  /** The ins_id of every pod, or null when unknown (no folder is removed then, nor when the list is empty). */
  readonly activeInstances: readonly string[] | null;
  /** The time the ages are counted from. */
  readonly nowMs: number;
  /** N: `--ins-folder-overdue-days`. */
  readonly days: number;
  /** A plan that would remove more instance folders removes none. */
  readonly maxFolders: number;
}

/** An incremental planner: feed it the walk's entries in order, then finish. No I/O. */
export interface CleanupPlanner {
  /**
   * Whether the decision needs an entry that is not a directory (directories are always looked at): a
   * `*.log` once its folder is known to be recent is not needed, unless it is a `postgresql*.log`.
   */
  wants(name: string, top: string): boolean;
  /** Takes one entry of the walk (depth-first pre-order); true asks for everything below this directory. */
  visit(entry: WalkEntry): boolean;
  /** The plan. */
  finish(): CleanupPlan;
}

interface Match {
  readonly path: string;
  readonly mtimeMs: number;
  bytes: number;
  readonly top: string;
}

interface FolderState {
  readonly path: string;
  readonly name: string;
  newestLogMs: number | null;
  young: boolean;
  problem: string | null;
}

/**
 * Creates the planner. Memory: one small record per top-level folder, plus the matches; nothing per file.
 */
export function createCleanupPlanner(options: PlanOptions): CleanupPlanner {
  const { nowMs, days } = options;
  const folders = new Map<string, FolderState>();
  const logFiles: Match[] = [];
  const dataDirs: Match[] = [];
  const skipped = createBoundedList();
  // The last matched rm_data_* directory: what is below it goes with it (the walk is depth-first pre-order).
  let openDataDir: { prefix: string; match: Match } | null = null;

  return {
    wants(name, top) {
      if (isPostgresLogName(name) || isDataDirName(name)) return true;
      return isLogName(name) && folders.get(top)?.young !== true;
    },

    visit(entry) {
      if (entry.depth === 1 && entry.kind === "dir") {
        folders.set(entry.name, { path: entry.path, name: entry.name, newestLogMs: null, young: false, problem: null });
      }
      const folder = folders.get(entry.top);
      if (entry.problem !== null) {
        skipped.push(`Not looked at: "${entry.path}": ${entry.problem}`);
        if (folder !== undefined && !folder.problem) folder.problem = `"${entry.path}" ${entry.problem}`;
        return false;
      }
      // `find DIR -name '*.log' -mtime -N` counts any type, DIR itself included; an unknown mtime counts as new.
      if (folder !== undefined && isLogName(entry.name)) {
        if (entry.mtimeMs === null || mtimeMinus(entry.mtimeMs, nowMs, days)) folder.young = true;
        if (entry.mtimeMs !== null && (folder.newestLogMs === null || entry.mtimeMs > folder.newestLogMs)) {
          folder.newestLogMs = entry.mtimeMs;
        }
      }
      if (openDataDir !== null && entry.path.startsWith(openDataDir.prefix)) {
        if (entry.kind !== "dir") openDataDir.match.bytes += entry.size ?? 0;
        return false;
      }
      if (entry.mtimeMs === null || !mtimePlus(entry.mtimeMs, nowMs, days)) return false;
      // The original ran `rm` (no -r) on each match: a directory named postgresql*.log was never removed.
      if (isPostgresLogName(entry.name) && entry.kind !== "dir") {
        logFiles.push({ path: entry.path, mtimeMs: entry.mtimeMs, bytes: entry.size ?? 0, top: entry.top });
      } else if (isDataDirName(entry.name) && entry.kind === "dir") {
        const match = { path: entry.path, mtimeMs: entry.mtimeMs, bytes: 0, top: entry.top };
        dataDirs.push(match);
        openDataDir = { prefix: entry.path + "/", match };
        return true;
      }
      return false;
    },

    finish() {
      const overdue: PlannedFolder[] = [];
      for (const folder of folders.values()) {
        if (folder.young) continue;
        if (folder.problem) {
          skipped.push(`Instance folder kept: ${folder.problem}`);
          continue;
        }
        overdue.push({ path: folder.path, name: folder.name, newestLogMs: folder.newestLogMs });
      }
      const active = options.activeInstances;
      const inactive = active === null ? overdue : overdue.filter((folder) => !active.includes(folder.name));
      let chosen: PlannedFolder[] = [];
      let folderLimitExceeded = false;
      if (inactive.length > 0 && active === null) {
        skipped.push(`No instance folder removed: the active instances are unknown (${inactive.length} overdue kept)`);
      } else if (inactive.length > 0 && active!.length === 0) {
        skipped.push(
          `No instance folder removed: no pod has label ${INSTANCE_LABEL} (${inactive.length} overdue kept)`,
        );
      } else if (inactive.length > options.maxFolders) {
        folderLimitExceeded = true;
        skipped.push(
          `No instance folder removed: ${inactive.length} are overdue, more than --log-cleanup-max-folders=${options.maxFolders}`,
        );
      } else {
        chosen = inactive;
      }
      const gone = new Set(chosen.map((folder) => folder.name));
      const keep = (item: Match) => !gone.has(item.top);
      const strip = ({ path, mtimeMs, bytes }: Match) => ({ path, mtimeMs, bytes });
      return {
        folders: chosen,
        logFiles: logFiles.filter(keep).map(strip),
        dataDirs: dataDirs.filter(keep).map(strip),
        overdue,
        overdueKept: inactive.length - chosen.length,
        folderLimitExceeded,
        skipped: skipped.lines(),
      };
    },
  };
}

/** The whole decision over a finished walk: which folders, log files and data directories go. No I/O. */
export function planCleanup(entries: Iterable<WalkEntry>, options: PlanOptions): CleanupPlan {
  const planner = createCleanupPlanner(options);
  for (const entry of entries) planner.visit(entry);
  return planner.finish();
}

/** The result of one run: `once log-cleanup --json` and `GET /api/v1/log-cleanup`. */
export interface LogCleanupResult {
  /** The resolved root. */
  readonly root: string;
  /** N. */
  readonly days: number;
  /** Whether nothing was removed on purpose. */
  readonly dryRun: boolean;
  /** The ins_id values of the pods, or null when unknown (local mode, failed listing). */
  readonly activeInstances: string[] | null;
  /** Instance folders removed (or that would be, in a dry run). */
  readonly instanceFolders: string[];
  /** `postgresql*.log` entries removed. */
  readonly logFiles: string[];
  /** `rm_data_*` directories removed. */
  readonly removedDataDirs: string[];
  /** Bytes freed (sum of the sizes of the removed files and links). */
  readonly bytes: number;
  /** What was kept or not looked at, and why. */
  readonly skipped: string[];
  /** Paths that could not be removed, and why. */
  readonly errors: string[];
  /** Counts for metrics. */
  readonly counts: LogCleanupCounts;
}

/** Per-run counts (for metrics). */
export interface LogCleanupCounts {
  /** Instance folders removed. */
  readonly instanceFolders: number;
  /** Log files removed. */
  readonly logFiles: number;
  /** Data directories removed. */
  readonly dataDirs: number;
  /** Every file and link removed (inside folders and data directories too). */
  readonly filesRemoved: number;
  /** Every directory removed. */
  readonly dirsRemoved: number;
  /** Paths that failed. */
  readonly errors: number;
  /** 1 when the folder limit stopped folder removal, else 0. */
  readonly folderLimitExceeded: number;
  /** Overdue folders of inactive instances kept by a safety net. */
  readonly overdueKept: number;
}

/** Hooks for tests. */
export interface ApplyOptions {
  /** Called after the plan is made and before anything is removed. */
  readonly beforeRemove?: (plan: CleanupPlan) => void | Promise<void>;
  /** How the root is opened (tests force the fallbacks of the directory-fd calls). */
  readonly resolve?: ResolveOptions;
}

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
  readonly log: JobDeps["log"];
}

/** Removes what the plan says, re-checking each path right before; a failure on one path never stops the rest. */
export async function applyCleanup(plan: CleanupPlan, context: ApplyContext): Promise<AppliedCleanup> {
  const { root, days, nowMs, log, dryRun } = context;
  const totals = emptyReport();
  const skipped = createBoundedList();
  const removeOptions: RemoveOptions = {
    root,
    dryRun,
    signal: context.signal,
    onRemoved: (path, kind, size) => log.debug("Removed {kind} {path} ({size} bytes)", { kind, path, size }),
  };
  const add = (report: RemoveReport) => {
    totals.files += report.files;
    totals.dirs += report.dirs;
    totals.bytes += report.bytes;
    for (const error of report.errors) {
      if (totals.errors.length < LIST_LIMIT) totals.errors.push(error);
      log.error("{error}", { error });
    }
    for (const path of report.replaced) if (totals.replaced.length < LIST_LIMIT) totals.replaced.push(path);
    return report.errors.length === 0 && report.kept === null;
  };
  const verb = dryRun ? "Would remove" : "Removed";
  // Every removal is logged; what a dry run would remove only at debug level (it can be thousands of lines).
  const note = (message: string, properties: Record<string, unknown>) =>
    dryRun ? log.debug(message, properties) : log.info(message, properties);
  // Right before a removal, with its parent held: still old enough, or it changed since the walk.
  const stillOld = (stat: FdStat) => (mtimePlus(stat.mtimeMs, nowMs, days) ? null : "changed since the walk");
  const keptLine = (what: string, path: string, report: RemoveReport) => {
    if (report.kept === null) return;
    skipped.push(
      report.kept === "already gone"
        ? `${what} already gone: "${path}"`
        : `${what} kept: "${path}" changed since the walk (${report.kept})`,
    );
  };

  const folders: string[] = [];
  for (const folder of plan.folders) {
    context.signal?.throwIfAborted();
    if (!dryRun) {
      // Walk the folder again: a log written since the first walk keeps it.
      const again = createCleanupPlanner({ activeInstances: null, nowMs, days, maxFolders: 0 });
      let linked = false;
      const walked = await walkLogTree(root, {
        only: folder.name,
        wants: again.wants,
        onEntry: (entry) => {
          // The folder the first walk saw is a link now: it was swapped.
          if (entry.depth === 1 && entry.kind === "symlink") linked = true;
          return again.visit(entry);
        },
        signal: context.signal,
      });
      const replaced = linked ? [...walked.replaced, folder.path] : walked.replaced;
      add({
        ...emptyReport(),
        replaced,
        errors: linked ? [`Cannot remove "${folder.path}": it was replaced by a link since the walk: kept`] : [],
      });
      if (!again.finish().overdue.some((f) => f.path === folder.path)) {
        skipped.push(`Instance folder kept: "${folder.path}" changed since the walk`);
        continue;
      }
    }
    const report = await removeTree(folder.path, removeOptions);
    keptLine("Instance folder", folder.path, report);
    if (add(report)) folders.push(folder.path);
    note(`${verb} instance folder {path}: {files} files, {bytes} bytes`, { path: folder.path, ...report });
  }

  const logFiles: string[] = [];
  for (const file of plan.logFiles) {
    context.signal?.throwIfAborted();
    const report = dryRun
      ? { ...emptyReport(), files: 1, bytes: file.bytes }
      : removeEntry(file.path, { ...removeOptions, keep: stillOld });
    keptLine("Log file", file.path, report);
    if (add(report)) {
      logFiles.push(file.path);
      note(`${verb} log file {path} ({bytes} bytes)`, { path: file.path, bytes: report.bytes });
    }
  }

  const dataDirs: string[] = [];
  for (const dir of plan.dataDirs) {
    context.signal?.throwIfAborted();
    const report = dryRun
      ? { ...emptyReport(), dirs: 1, bytes: dir.bytes }
      : await removeTree(dir.path, { ...removeOptions, keep: stillOld });
    keptLine("Data directory", dir.path, report);
    if (add(report)) dataDirs.push(dir.path);
    if (report.kept === null) {
      note(`${verb} data directory {path}: {bytes} bytes`, { path: dir.path, bytes: report.bytes });
    }
  }
  return { folders, logFiles, dataDirs, totals, skipped: skipped.lines() };
}

/** Creates the log-cleanup job: every 6 hours and at start. */
export function createLogCleanupController(
  deps: JobDeps,
  options: ApplyOptions = {},
): Controller<LogCleanupResult> {
  const { config, log, events } = deps;
  const job = "log-cleanup";
  const days = config.insFolderOverdueDays;

  async function activeInstances(api: KubeClient | null, skipped: string[]): Promise<string[] | null> {
    if (api === null) {
      skipped.push("No instance folder removed: local mode, the active instances cannot be known");
      return null;
    }
    let pods: V1Pod[];
    try {
      pods = await api.listPods({ labelSelector: INSTANCE_LABEL });
    } catch (error) {
      const message = `Cannot list pods with label ${INSTANCE_LABEL}: ${(error as Error).message}`;
      log.warn("{message}; no instance folder will be removed", { message });
      skipped.push(message);
      return null;
    }
    const ids = new Set<string>();
    for (const pod of pods) {
      const id = pod.metadata?.labels?.[INSTANCE_LABEL];
      if (id) ids.add(id);
    }
    return [...ids].sort();
  }

  return {
    name: job,
    schedule: { cron: "0 */6 * * *" },
    runAtStart: true,
    timeoutMs: 30 * 60_000,
    async run(ctx: RunContext): Promise<RunOutcome<LogCleanupResult>> {
      let root: LogRoot;
      try {
        root = await resolveLogRoot(config.dbclusterLogDir, options.resolve);
      } catch (error) {
        const message = (error as Error).message;
        events.record({ job, type: "Warning", reason: "LogCleanupRootInvalid", message });
        throw error;
      }
      try {
        return await cleanUnder(root, ctx);
      } finally {
        closeLogRoot(root);
      }
    },
  };

  async function cleanUnder(root: LogRoot, ctx: RunContext): Promise<RunOutcome<LogCleanupResult>> {
    const skipped: string[] = [];
    const active = await activeInstances(deps.kube?.withSignal(ctx.signal) ?? null, skipped);
    const nowMs = deps.clock.now().getTime();
    const planner = createCleanupPlanner({
      activeInstances: active,
      nowMs,
      days,
      maxFolders: config.logCleanupMaxFolders,
    });
    const walked = await walkLogTree(root, { wants: planner.wants, onEntry: planner.visit, signal: ctx.signal });
    const plan = planner.finish();
    if (plan.folderLimitExceeded) {
      const message = `Kept ${plan.overdueKept} overdue instance folders under "${root.path}": ` +
        `more than --log-cleanup-max-folders=${config.logCleanupMaxFolders} would be removed`;
      log.warn("{message}", { message });
      if (!ctx.dryRun) events.record({ job, type: "Warning", reason: "LogCleanupTooManyFolders", message });
    }
    await options.beforeRemove?.(plan);
    const done = await applyCleanup(plan, { root, days, nowMs, dryRun: ctx.dryRun, signal: ctx.signal, log });
    const replaced = [...new Set([...walked.replaced, ...done.totals.replaced])];
    const errors = [
      ...walked.replaced.map((path) => `Cannot look into "${path}": it was replaced while the cleanup walked it: kept`),
      ...done.totals.errors,
    ].slice(0, LIST_LIMIT);
    if (replaced.length > 0) {
      const message = `Kept ${replaced.length} paths under "${root.path}" that were replaced (by a link, a file, ` +
        `another folder or a mount) while the cleanup worked on them, nothing in them removed: ` +
        replaced.slice(0, 10).map((path) => `"${path}"`).join(", ");
      log.warn("{message}", { message });
      events.record({ job, type: "Warning", reason: "LogCleanupPathReplaced", message });
    }
    const result: LogCleanupResult = {
      root: root.path,
      days,
      dryRun: ctx.dryRun,
      activeInstances: active,
      instanceFolders: done.folders,
      logFiles: done.logFiles,
      removedDataDirs: done.dataDirs,
      bytes: done.totals.bytes,
      skipped: [...skipped, ...plan.skipped, ...done.skipped],
      errors,
      counts: {
        instanceFolders: done.folders.length,
        logFiles: done.logFiles.length,
        dataDirs: done.dataDirs.length,
        filesRemoved: done.totals.files,
        dirsRemoved: done.totals.dirs,
        errors: errors.length,
        folderLimitExceeded: plan.folderLimitExceeded ? 1 : 0,
        overdueKept: plan.overdueKept,
      },
    };
    const what = `${done.folders.length} instance folders, ${done.logFiles.length} log files and ` +
      `${done.dataDirs.length} data directories under "${root.path}" (${done.totals.bytes} bytes)`;
    const removedAny = done.totals.files + done.totals.dirs > 0;
    if (!ctx.dryRun && removedAny) {
      events.record({ job, type: "Normal", reason: "LogCleanupRemoved", message: `Removed ${what}` });
    }
    if (!ctx.dryRun && errors.length > 0) {
      events.record({
        job,
        type: "Warning",
        reason: "LogCleanupFailed",
        message: `Cannot remove ${errors.length} paths under "${root.path}", first: ${errors[0]}`,
      });
    }
    const summary = `${ctx.dryRun ? "Would remove" : "Removed"} ${what}` +
      (errors.length > 0 ? `, ${errors.length} errors` : "");
    const counters: JobCounter[] = [
      { name: "log_cleanup_bytes_freed_total", help: "Bytes freed by the log cleanup", value: result.bytes },
      ...(["instanceFolders", "logFiles", "dataDirs"] as const).map((kind) => ({
        name: "log_cleanup_removed_total",
        help: "Entries removed by the log cleanup",
        value: result.counts[kind],
        labels: { kind },
      })),
      { name: "log_cleanup_errors_total", help: "Paths the log cleanup failed to remove", value: errors.length },
      {
        name: "log_cleanup_folder_limit_exceeded_total",
        help: "Runs that removed no folder because too many were due",
        value: result.counts.folderLimitExceeded,
      },
    ];
    return { summary, result, counters: ctx.dryRun ? [] : counters };
  }
}

/** A list that keeps the first 100 lines and counts the rest, so a huge tree cannot grow the result. */
function createBoundedList(): { push(line: string): void; lines(): string[] } {
  const kept: string[] = [];
  let more = 0;
  return {
    push(line) {
      if (kept.length < LIST_LIMIT) kept.push(line);
      else more++;
    },
    lines: () => (more > 0 ? [...kept, `... and ${more} more`] : [...kept]),
  };
}
