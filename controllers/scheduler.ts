/** Runs the jobs: Deno.cron for minute-or-longer periods, a timer loop for fast probes, never two runs of one job at once. */
import type { Clock, Controller, Logger, RunOutcome } from "./types.ts";

/** The last run of a job, as the API and metrics show it. */
export interface LastRun {
  /** When it started (ISO 8601). */
  readonly startedAt: string;
  /** How long it took. */
  readonly durationMs: number;
  /** `success` or `failure`. */
  readonly outcome: "success" | "failure";
  /** The readable summary (success) or the error message (failure). */
  readonly summary: string;
  /** The error message when it failed. */
  readonly error?: string;
  /** Whether it was a dry run. */
  readonly dryRun: boolean;
}

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
}

/** Registers a cron job; Deno.cron's shape. */
export type CronRegistrar = (
  name: string,
  schedule: string,
  options: { signal?: AbortSignal },
  handler: () => Promise<void>,
) => Promise<void>;

/** Options of the scheduler. */
export interface SchedulerOptions {
  /** The time. */
  readonly clock: Clock;
  /** The daemon's logger. */
  readonly log: Logger;
  /** Registers cron jobs (default Deno.cron). */
  readonly cron?: CronRegistrar;
  /** Called after every run, for metrics and events; `previous` is the run before it, if any. */
  readonly onRun?: (name: string, run: LastRun, details: { previous: LastRun | null; outcome?: RunOutcome }) => void;
  /** Called for every skipped tick, for metrics. */
  readonly onSkip?: (name: string) => void;
  /** The logger of one job, so its lines carry its task name (default: `log`). */
  readonly jobLog?: (name: string) => Logger;
}

interface JobEntry {
  readonly controller: Controller;
  running: Promise<void> | null;
  pending: boolean;
  runs: number;
  failures: number;
  skippedTicks: number;
  lastRun: LastRun | null;
  lastSuccessAt: string | null;
  lastResult: unknown;
}

/** Describes a schedule for humans. */
export function describeSchedule(controller: Controller): string {
  return "cron" in controller.schedule ? `cron ${controller.schedule.cron}` : `every ${controller.schedule.everyMs} ms`;
}

/** How long a run whose time limit passed may take to stop by itself before it is abandoned. */
const ABANDON_AFTER_MS = 250;

/** Runs one controller once with its time limit; never throws. */
export async function runWithLimit<T>(
  controller: Controller<T>,
  options: { signal?: AbortSignal; dryRun?: boolean; clock: Clock },
): Promise<{ run: LastRun; outcome?: RunOutcome<T> }> {
  const started = options.clock.now();
  const t0 = performance.now();
  const limit = AbortSignal.timeout(controller.timeoutMs);
  const signal = options.signal ? AbortSignal.any([limit, options.signal]) : limit;
  const dryRun = options.dryRun ?? false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = `Job "${controller.name}" took longer than ${controller.timeoutMs} ms`;
  try {
    const outcome = await Promise.race([
      controller.run({ signal, dryRun }),
      // The limit aborts the run's signal; a run that heeds it fails at once with its own cause (named below).
      // One that does not is abandoned a moment later.
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${late} and was abandoned`)),
          controller.timeoutMs + ABANDON_AFTER_MS,
        );
      }),
    ]);
    // Done, but after the limit: the run's work may be stale, and the limit is what operators rely on.
    if (limit.aborted) throw new Error(`${late} (it finished ${Math.round(performance.now() - t0)} ms after start)`);
    return {
      outcome,
      run: {
        startedAt: started.toISOString(),
        durationMs: Math.round(performance.now() - t0),
        outcome: "success",
        summary: outcome.summary,
        dryRun,
      },
    };
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    const message = limit.aborted && !text.startsWith(late) ? `${late}: ${text}` : text;
    return {
      run: {
        startedAt: started.toISOString(),
        durationMs: Math.round(performance.now() - t0),
        outcome: "failure",
        summary: message,
        error: message,
        dryRun,
      },
    };
  } finally {
    clearTimeout(timer);
  }
}

/** The scheduler of the daemon's jobs. */
export class Scheduler {
  readonly #jobs = new Map<string, JobEntry>();
  readonly #options: SchedulerOptions;
  readonly #stop = new AbortController();
  readonly #timers: ReturnType<typeof setTimeout>[] = [];
  #started = false;

  /** Registers the controllers; nothing runs until `start()`. */
  constructor(controllers: readonly Controller[], options: SchedulerOptions) {
    this.#options = options;
    for (const controller of controllers) {
      this.#jobs.set(controller.name, {
        controller,
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
          this.#tick(entry);
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

  // A timer loop: the next run starts one interval after the previous one began, or at once if it overran.
  #loop(entry: JobEntry, everyMs: number, runNow: boolean): void {
    const next = (delay: number) => {
      if (this.#stop.signal.aborted) return;
      const id = setTimeout(async () => {
        const t0 = performance.now();
        this.#tick(entry);
        await entry.running;
        next(Math.max(0, everyMs - (performance.now() - t0)));
      }, delay);
      this.#timers.push(id);
      if (this.#timers.length > 16) this.#timers.splice(0, this.#timers.length - 16);
    };
    next(runNow ? 0 : everyMs);
  }

  #tick(entry: JobEntry): void {
    if (this.#stop.signal.aborted) return;
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
          this.#options.log.info("{summary}", {
            job: entry.controller.name,
            durationMs: run.durationMs,
            summary: run.summary,
          });
        } else {
          entry.failures++;
          this.#options.log.error("Job {job} failed: {error}; the next run will try again", {
            job: entry.controller.name,
            error: run.error,
            durationMs: run.durationMs,
          });
        }
        this.#options.onRun?.(entry.controller.name, run, { previous, outcome });
      } while (entry.pending && !this.#stop.signal.aborted);
    } finally {
      entry.running = null;
    }
  }

  /** Asks for a run now; while one runs, any number of calls leave exactly one more queued. */
  trigger(name: string): "started" | "queued" {
    const entry = this.#entry(name);
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

  /** Stops ticks, lets running jobs finish for up to `graceMs`, then aborts them. True when all finished in time. */
  async stop(graceMs: number): Promise<boolean> {
    const running = [...this.#jobs.values()].map((e) => e.running).filter((p) => p !== null);
    for (const id of this.#timers) clearTimeout(id);
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
