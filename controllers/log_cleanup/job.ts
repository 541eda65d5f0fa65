/**
 * The log-cleanup job: removes the folders of instances gone for N days, and old `postgresql*.log` files and
 * `rm_data_*` directories everywhere below the root. The decision is pure (`plan.ts`), the removal thin
 * (`apply.ts`), and nothing that changed since the walk is removed.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { closeLogRoot, type LogRoot, resolveLogRoot, type ResolveOptions, walkLogTree } from "../../host/log_walk.ts";
import { JOBS } from "../../core/jobs.ts";
import type { Controller, JobCounter, RunContext, RunOutcome } from "../../core/types.ts";
import type { JobDeps } from "../deps.ts";
import { type AppliedCleanup, applyCleanup, type ApplyContext } from "./apply.ts";
import { LIST_LIMIT } from "./bounded_list.ts";
import {
  createLogCleanupPlanner,
  INSTANCE_LABEL,
  type LogCleanupObserved,
  type LogCleanupPlan,
  type LogCleanupRules,
} from "./plan.ts";

/** What the job needs from the flags. */
export interface LogCleanupOptions extends LogCleanupRules {
  /** The log root as given (`--dbcluster-log-dir`), resolved at every run. */
  readonly root: string;
}

/** Hooks for tests. */
export interface LogCleanupHooks {
  /** Called after the plan is made and before anything is removed. */
  readonly beforeRemove?: (plan: LogCleanupPlan) => void | Promise<void>;
  /** How the root is opened (tests force the fallbacks of the directory-fd calls). */
  readonly resolve?: ResolveOptions;
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

/** One run's surroundings, handed to its steps. */
interface Scope {
  readonly deps: JobDeps;
  readonly options: LogCleanupOptions;
  readonly ctx: RunContext;
  readonly root: LogRoot;
}

/** What the cluster and the clock said, and why the active instances may be unknown. */
interface Observed extends LogCleanupObserved {
  readonly activeInstances: string[] | null;
  readonly skipped: string[];
}

/** What a run saw, decided and did: the input of its outcome. */
interface RunSteps {
  readonly observed: Observed;
  /** Paths the walk found replaced under it. */
  readonly replacedInWalk: string[];
  readonly plan: LogCleanupPlan;
  readonly done: AppliedCleanup;
}

const job = JOBS.logCleanup.name;

/** Creates the log-cleanup job: every 6 hours and at start. */
export function createLogCleanupController(
  deps: JobDeps,
  options: LogCleanupOptions,
  hooks: LogCleanupHooks = {},
): Controller<LogCleanupResult> {
  return {
    name: job,
    schedule: { cron: "0 */6 * * *" },
    runAtStart: true,
    timeoutMs: 30 * 60_000,
    async run(ctx: RunContext): Promise<RunOutcome<LogCleanupResult>> {
      const root = await openRoot(deps, options.root, hooks);
      const scope: Scope = { deps, options, ctx, root };
      try {
        // Observe: who is active and the time; the walk then feeds the incremental planner, entry by entry.
        const observed = await observe(scope);
        const planner = createLogCleanupPlanner(observed, options);
        const walked = await walkLogTree(root, { wants: planner.wants, onEntry: planner.visit, signal: ctx.signal });
        // Plan.
        const plan = planner.finish();
        warnFolderLimit(plan, scope);
        await hooks.beforeRemove?.(plan);
        // Apply.
        const done = await applyCleanup(plan, applyContext(observed, scope));
        // Outcome.
        return outcomeOf({ observed, replacedInWalk: walked.replaced, plan, done }, scope);
      } finally {
        closeLogRoot(root);
      }
    },
  };
}

/** Opens the root once for the whole run; an invalid root is an Event and a failed run. */
async function openRoot(deps: JobDeps, dir: string, hooks: LogCleanupHooks): Promise<LogRoot> {
  try {
    return await resolveLogRoot(dir, hooks.resolve);
  } catch (error) {
    const message = (error as Error).message;
    deps.events.record({ job, type: "Warning", reason: "LogCleanupRootInvalid", message });
    throw error;
  }
}

/** Who is active (from the cluster) and the time the ages count from. */
async function observe({ deps, ctx }: Scope): Promise<Observed> {
  const skipped: string[] = [];
  const activeInstances = await listActiveInstances(deps, { signal: ctx.signal, skipped });
  return { activeInstances, nowMs: deps.clock.now().getTime(), skipped };
}

/** The ins_id of every pod that has one, or null when unknown (local mode, or the pods cannot be listed). */
async function listActiveInstances(
  deps: JobDeps,
  { signal, skipped }: { signal: AbortSignal; skipped: string[] },
): Promise<string[] | null> {
  const api = deps.kube?.withSignal(signal) ?? null;
  if (api === null) {
    skipped.push("No instance folder removed: local mode, the active instances cannot be known");
    return null;
  }
  let pods: V1Pod[];
  try {
    pods = await api.listPods({ labelSelector: INSTANCE_LABEL });
  } catch (error) {
    const message = `Cannot list pods with label ${INSTANCE_LABEL}: ${(error as Error).message}`;
    deps.log.warn("{message}; no instance folder will be removed", { message });
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

/** The plan is applied under the root the walk used, with the plan's time. */
function applyContext(observed: Observed, { deps, options, ctx, root }: Scope): ApplyContext {
  return { root, days: options.days, nowMs: observed.nowMs, dryRun: ctx.dryRun, signal: ctx.signal, log: deps.log };
}

/** A plan stopped by the folder limit: a warning, and an Event unless in a dry run. */
function warnFolderLimit(plan: LogCleanupPlan, { deps, options, ctx, root }: Scope): void {
  if (!plan.folderLimitExceeded) return;
  const message = `Kept ${plan.overdueKept} overdue instance folders under "${root.path}": ` +
    `more than --log-cleanup-max-folders=${options.maxFolders} would be removed`;
  deps.log.warn("{message}", { message });
  if (!ctx.dryRun) deps.events.record({ job, type: "Warning", reason: "LogCleanupTooManyFolders", message });
}

/** The run's result, summary and counters, and its Events. */
function outcomeOf(steps: RunSteps, scope: Scope): RunOutcome<LogCleanupResult> {
  const { observed, replacedInWalk, plan, done } = steps;
  const { ctx, root } = scope;
  const errors = [
    ...replacedInWalk.map((path) => `Cannot look into "${path}": it was replaced while the cleanup walked it: kept`),
    ...done.totals.errors,
  ].slice(0, LIST_LIMIT);
  reportReplaced([...new Set([...replacedInWalk, ...done.totals.replaced])], scope);
  const result: LogCleanupResult = {
    root: root.path,
    days: scope.options.days,
    dryRun: ctx.dryRun,
    activeInstances: observed.activeInstances,
    instanceFolders: done.folders,
    logFiles: done.logFiles,
    removedDataDirs: done.dataDirs,
    bytes: done.totals.bytes,
    skipped: [...observed.skipped, ...plan.skipped, ...done.skipped],
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
  if (!ctx.dryRun) recordRemoved(result, { what, scope });
  const summary = `${ctx.dryRun ? "Would remove" : "Removed"} ${what}` +
    (errors.length > 0 ? `, ${errors.length} errors` : "");
  return { summary, result, counters: ctx.dryRun ? [] : countersOf(result) };
}

/** Paths swapped under the cleanup (by a link, a file, another folder or a mount): a warning and an Event. */
function reportReplaced(replaced: string[], { deps, root }: Scope): void {
  if (replaced.length === 0) return;
  const message = `Kept ${replaced.length} paths under "${root.path}" that were replaced (by a link, a file, ` +
    `another folder or a mount) while the cleanup worked on them, nothing in them removed: ` +
    replaced.slice(0, 10).map((path) => `"${path}"`).join(", ");
  deps.log.warn("{message}", { message });
  deps.events.record({ job, type: "Warning", reason: "LogCleanupPathReplaced", message });
}

/** A Normal Event when something went, a Warning when some path could not. */
function recordRemoved(result: LogCleanupResult, { what, scope }: { what: string; scope: Scope }): void {
  const { events } = scope.deps;
  const { counts, errors } = result;
  if (counts.filesRemoved + counts.dirsRemoved > 0) {
    events.record({ job, type: "Normal", reason: "LogCleanupRemoved", message: `Removed ${what}` });
  }
  if (errors.length > 0) {
    events.record({
      job,
      type: "Warning",
      reason: "LogCleanupFailed",
      message: `Cannot remove ${errors.length} paths under "${scope.root.path}", first: ${errors[0]}`,
    });
  }
}

/** What one run adds to the job's metrics. */
function countersOf(result: LogCleanupResult): JobCounter[] {
  return [
    { name: "log_cleanup_bytes_freed_total", help: "Bytes freed by the log cleanup", value: result.bytes },
    ...(["instanceFolders", "logFiles", "dataDirs"] as const).map((kind) => ({
      name: "log_cleanup_removed_total",
      help: "Entries removed by the log cleanup",
      value: result.counts[kind],
      labels: { kind },
    })),
    { name: "log_cleanup_errors_total", help: "Paths the log cleanup failed to remove", value: result.errors.length },
    {
      name: "log_cleanup_folder_limit_exceeded_total",
      help: "Runs that removed no folder because too many were due",
      value: result.counts.folderLimitExceeded,
    },
  ];
}
