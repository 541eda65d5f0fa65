/** Runs the jobs: Deno.cron for minute-or-longer periods, a timer loop for fast probes, never two runs of one job at once. */
import type { Clock, Controller, EventSink, Logger, RunOutcome } from "../core/types.ts";
import { type LastRun, runWithLimit } from "./run_limit.ts";
import { cronPeriodMs, describeSchedule, spreadOffsetMs } from "./spread.ts";
import { transitionEvent } from "./transitions.ts";

/** A job's state for `/api/v1/status` and `/metrics`. */
export interface JobStatus {
  /** Task name. */
  readonly name: string;
  /** `cron <expr>` or `every <ms> ms`. */
  readonly schedule: string;
  /** Whether a run is going on. */
  readonly running: boolean;
  /** Whether another run is queued behind the current one. */
  readonly pending: boolean;
  /** Runs finished. */
  readonly runs: number;
  /** Runs that failed. */
  readonly failures: number;
  /** Ticks skipped because the previous run was still going. */
  readonly skippedTicks: number;
  /** The last run, if any. */
  readonly lastRun: LastRun | null;
  /** When the last successful run finished (ISO 8601). */
  readonly lastSuccessAt: string | null;
  /** The result of the last successful run. */
  readonly lastResult: unknown;
  /** How long after each cron tick this node's run starts (null for interval jobs). */
  readonly offsetMs: number | null;
}

/** Registers a cron job; Deno.cron's shape. */
export type CronRegistrar = (
  name: string,
  schedule: string,
  options: { signal?: AbortSignal },
  handler: () => Promise<void>,
) => Promise<void>;

/** The timer functions the scheduler uses; tests hand in their own to fire timers by hand. */
export interface Timers {
  /** Calls `fn` after `ms` milliseconds; returns an id for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer. */
  clearTimeout(id: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as number),
};

/** Options of the scheduler. */
export interface SchedulerOptions {
  /** The time. */
  readonly clock: Clock;
  /** The daemon's logger. */
  readonly log: Logger;
  /** Registers cron jobs (default Deno.cron). */
  readonly cron?: CronRegistrar;
  /** Where a job that starts failing, or works again, is recorded (one Event per change). */
  readonly events?: EventSink;
  /** Called after every run, for metrics; `previous` is the run before it, if any. */
  readonly onRun?: (name: string, run: LastRun, details: { previous: LastRun | null; outcome?: RunOutcome }) => void;
  /** Called for every skipped tick, for metrics. */
  readonly onSkip?: (name: string) => void;
  /** The logger of one job, so its lines carry its task name (default: `log`). */
  readonly jobLog?: (name: string) => Logger;
  /** This node's name: each cron run waits `spreadOffsetMs(node, job, period)`; without it, runs start on the tick. */
  readonly node?: string;
  /** Timers (default the global ones). */
  readonly timers?: Timers;
}

interface JobEntry {
  readonly controller: Controller;
  readonly offsetMs: number | null;
  /** The timer of a cron run waiting for its offset. */
  delayed: unknown;
  running: Promise<void> | null;
  pending: boolean;
  runs: number;
  failures: number;
  skippedTicks: number;
  lastRun: LastRun | null;
  lastSuccessAt: string | null;
  lastResult: unknown;
}

/** The scheduler of the daemon's jobs. */
export class Scheduler {
  readonly #jobs = new Map<string, JobEntry>();
  readonly #options: SchedulerOptions;
  readonly #timers: Timers;
  readonly #stop = new AbortController();
  readonly #loopTimers = new Set<unknown>();
  #started = false;
  // Set as stop() begins: from then on no run starts (no tick, no probe, no queued run), while the grace lasts.
  #stopping = false;

  /** Registers the controllers; nothing runs until `start()`. */
  constructor(controllers: readonly Controller[], options: SchedulerOptions) {
    this.#options = options;
    this.#timers = options.timers ?? realTimers;
    for (const controller of controllers) {
      const { schedule } = controller;
      const offsetMs = !("cron" in schedule)
        ? null
        : options.node === undefined
        ? 0
        : spreadOffsetMs(options.node, { job: controller.name, periodMs: cronPeriodMs(schedule.cron) });
      this.#jobs.set(controller.name, {
        controller,
        offsetMs,
        delayed: null,
        running: null,
        pending: false,
        runs: 0,
        failures: 0,
        skippedTicks: 0,
        lastRun: null,
        lastSuccessAt: null,
        lastResult: null,
      });
    }
  }

  /** Starts the schedules and the runs at start. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    const cron = this.#options.cron ??
      ((name, schedule, options, handler) => Deno.cron(name, schedule, options, handler));
    for (const entry of this.#jobs.values()) {
      const { controller } = entry;
      if ("cron" in controller.schedule) {
        cron(controller.name, controller.schedule.cron, { signal: this.#stop.signal }, () => {
          this.#cronTick(entry);
          return Promise.resolve();
        }).catch((error) =>
          this.#options.log.error("Cannot schedule job {job}: {error}", { job: controller.name, error })
        );
        if (controller.runAtStart) this.#tick(entry);
      } else {
        this.#loop(entry, controller.schedule.everyMs, controller.runAtStart);
      }
    }
  }

  // A cron tick starts this node's run after its offset, so that the nodes of a cluster do not all call at once.
  #cronTick(entry: JobEntry): void {
    if (this.#stopping) return;
    if (!entry.offsetMs) {
      this.#tick(entry);
      return;
    }
    if (entry.delayed !== null) return;
    entry.delayed = this.#timers.setTimeout(() => {
      entry.delayed = null;
      this.#tick(entry);
    }, entry.offsetMs);
  }

  // A timer loop: the next run starts one interval after the previous one began, or at once if it overran.
  #loop(entry: JobEntry, everyMs: number, runNow: boolean): void {
    const next = (delay: number) => {
      if (this.#stopping) return;
      const id = this.#timers.setTimeout(async () => {
        this.#loopTimers.delete(id);
        const t0 = performance.now();
        this.#tick(entry);
        await entry.running;
        next(Math.max(0, everyMs - (performance.now() - t0)));
      }, delay);
      this.#loopTimers.add(id);
    };
    next(runNow ? 0 : everyMs);
  }

  #tick(entry: JobEntry): void {
    if (this.#stopping) return;
    if (entry.running) {
      entry.skippedTicks++;
      this.#options.onSkip?.(entry.controller.name);
      this.#jobLog(entry).debug("Job {job} is still running: tick skipped", { job: entry.controller.name });
      return;
    }
    entry.running = this.#runLoop(entry);
  }

  async #runLoop(entry: JobEntry): Promise<void> {
    try {
      do {
        entry.pending = false;
        const { run, outcome } = await runWithLimit(entry.controller, {
          signal: this.#stop.signal,
          clock: this.#options.clock,
        });
        entry.runs++;
        const previous = entry.lastRun;
        entry.lastRun = run;
        if (outcome) {
          entry.lastSuccessAt = this.#options.clock.now().toISOString();
          entry.lastResult = outcome.result;
          const line = { job: entry.controller.name, durationMs: run.durationMs, summary: run.summary };
          // A routine run (nothing changed) is logged at debug level: every 3 s at info would bury the rest.
          if (outcome.routine) this.#options.log.debug("{summary}", line);
          else this.#options.log.info("{summary}", line);
        } else {
          entry.failures++;
          this.#options.log.error("Job {job} failed: {error}; the next run will try again", {
            job: entry.controller.name,
            error: run.error,
            durationMs: run.durationMs,
          });
        }
        const transition = transitionEvent(entry.controller.name, { run, previous: previous?.outcome });
        if (transition) this.#options.events?.record(transition);
        this.#options.onRun?.(entry.controller.name, run, { previous, outcome });
      } while (entry.pending && !this.#stopping);
    } finally {
      entry.running = null;
    }
  }

  /** Asks for a run now; while one runs, any number of calls leave exactly one more queued. None once stopping. */
  trigger(name: string): "started" | "queued" | "stopping" {
    const entry = this.#entry(name);
    if (this.#stopping) return "stopping";
    if (entry.running) {
      entry.pending = true;
      return "queued";
    }
    this.#tick(entry);
    return "started";
  }

  /** Every job's state. */
  status(): JobStatus[] {
    return [...this.#jobs.values()].map((e) => ({
      name: e.controller.name,
      schedule: describeSchedule(e.controller),
      offsetMs: e.offsetMs,
      running: e.running !== null,
      pending: e.pending,
      runs: e.runs,
      failures: e.failures,
      skippedTicks: e.skippedTicks,
      lastRun: e.lastRun,
      lastSuccessAt: e.lastSuccessAt,
      lastResult: e.lastResult,
    }));
  }

  /** The result of a job's last successful run, or null. */
  lastResult(name: string): unknown {
    return this.#entry(name).lastResult;
  }

  /** The names of jobs that have not finished a run yet. */
  notYetRun(): string[] {
    return [...this.#jobs.values()].filter((e) => e.runs === 0).map((e) => e.controller.name);
  }

  /**
   * Stops at once every tick, probe and queued run, lets running jobs finish for up to `graceMs`, then aborts them.
   * True when all finished in time.
   */
  async stop(graceMs: number): Promise<boolean> {
    this.#stopping = true;
    for (const id of this.#loopTimers) this.#timers.clearTimeout(id);
    this.#loopTimers.clear();
    for (const entry of this.#jobs.values()) {
      if (entry.delayed !== null) this.#timers.clearTimeout(entry.delayed);
      entry.delayed = null;
      entry.pending = false;
    }
    const running = [...this.#jobs.values()].map((e) => e.running).filter((p) => p !== null);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)));
    const finished = await Promise.race([Promise.all(running).then(() => true as const), grace]);
    clearTimeout(timer);
    this.#stop.abort(new Error("The daemon is shutting down"));
    return finished;
  }

  #jobLog(entry: JobEntry): Logger {
    return this.#options.jobLog?.(entry.controller.name) ?? this.#options.log;
  }

  #entry(name: string): JobEntry {
    const entry = this.#jobs.get(name);
    if (!entry) throw new Error(`Unknown job "${name}"`);
    return entry;
  }
}
