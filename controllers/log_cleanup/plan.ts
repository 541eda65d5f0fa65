/**
 * The log-cleanup decision, pure: which instance folders, `postgresql*.log` files and `rm_data_*` directories
 * go, from what the walk saw, who is active and the time. The safety nets: no folder removed when the active
 * instances are unknown or none, and none when more than `--log-cleanup-max-folders` would go.
 */
import type { WalkEntry } from "../../host/log_walk.ts";
import { createBoundedList } from "./bounded_list.ts";
import { isDataDirName, isLogName, isPostgresLogName, mtimeMinus, mtimePlus } from "./find_rules.ts";

/** The pod label whose values name the active instances. */
export const INSTANCE_LABEL = "apsara.metric.ins_id";

/** What a run saw besides the walk's entries (which the planner takes one by one). */
export interface LogCleanupObserved {
  /** The ins_id of every pod, or null when unknown (no folder is removed then, nor when the list is empty). */
  readonly activeInstances: readonly string[] | null;
  /** The time the ages are counted from. */
  readonly nowMs: number;
}

/** The thresholds of the decision, from the flags. */
export interface LogCleanupRules {
  /** N: `--ins-folder-overdue-days`. */
  readonly days: number;
  /** A plan that would remove more instance folders removes none. */
  readonly maxFolders: number;
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
export interface LogCleanupPlan {
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

/** An incremental planner: feed it the walk's entries in order, then finish. No I/O. */
export interface LogCleanupPlanner {
  /**
   * Whether the decision needs an entry that is not a directory (directories are always looked at): a
   * `*.log` once its folder is known to be recent is not needed, unless it is a `postgresql*.log`.
   */
  wants(name: string, top: string): boolean;
  /** Takes one entry of the walk (depth-first pre-order); true asks for everything below this directory. */
  visit(entry: WalkEntry): boolean;
  /** The plan. */
  finish(): LogCleanupPlan;
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
export function createLogCleanupPlanner(observed: LogCleanupObserved, rules: LogCleanupRules): LogCleanupPlanner {
  const { nowMs } = observed;
  const { days } = rules;
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
      const active = observed.activeInstances;
      const inactive = active === null ? overdue : overdue.filter((folder) => !active.includes(folder.name));
      const choice = chooseFolders(inactive, active, rules);
      if (choice.reason !== null) skipped.push(choice.reason);
      const gone = new Set(choice.chosen.map((folder) => folder.name));
      const keep = (item: Match) => !gone.has(item.top);
      const strip = ({ path, mtimeMs, bytes }: Match) => ({ path, mtimeMs, bytes });
      return {
        folders: choice.chosen,
        logFiles: logFiles.filter(keep).map(strip),
        dataDirs: dataDirs.filter(keep).map(strip),
        overdue,
        overdueKept: inactive.length - choice.chosen.length,
        folderLimitExceeded: choice.limitExceeded,
        skipped: skipped.lines(),
      };
    },
  };
}

/** The whole decision over a finished walk: which folders, log files and data directories go. No I/O. */
export function planLogCleanup(
  entries: Iterable<WalkEntry>,
  observed: LogCleanupObserved,
  rules: LogCleanupRules,
): LogCleanupPlan {
  const planner = createLogCleanupPlanner(observed, rules);
  for (const entry of entries) planner.visit(entry);
  return planner.finish();
}

/** The safety nets over the overdue folders of inactive instances: all of them go, or none (and why). */
function chooseFolders(
  inactive: PlannedFolder[],
  active: readonly string[] | null,
  { maxFolders }: LogCleanupRules,
): { chosen: PlannedFolder[]; limitExceeded: boolean; reason: string | null } {
  const none = (reason: string, limitExceeded = false) => ({ chosen: [], limitExceeded, reason });
  if (inactive.length > 0 && active === null) {
    return none(`No instance folder removed: the active instances are unknown (${inactive.length} overdue kept)`);
  }
  if (inactive.length > 0 && active!.length === 0) {
    return none(`No instance folder removed: no pod has label ${INSTANCE_LABEL} (${inactive.length} overdue kept)`);
  }
  if (inactive.length > maxFolders) {
    return none(
      `No instance folder removed: ${inactive.length} are overdue, more than --log-cleanup-max-folders=${maxFolders}`,
      true,
    );
  }
  return { chosen: inactive, limitExceeded: false, reason: null };
}
