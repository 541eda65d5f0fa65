/** The shared vocabulary at the bottom: the clock, the job contract, the event sink and the logger. */
import type { Logger } from "@logtape/logtape";

/** Where a controller gets the time from; tests hand in their own. */
export interface Clock {
  /** The current time. */
  now(): Date;
}

/** The real clock. */
export const systemClock: Clock = { now: () => new Date() };

/** When a job runs: a cron expression (a minute or longer) or a fixed interval (the fast probes). */
export type Schedule =
  | { readonly cron: string }
  | { readonly everyMs: number };

/** What a job is given for one run. */
export interface RunContext {
  /** Aborted when the job's time limit passes or the daemon shuts down. */
  readonly signal: AbortSignal;
  /** Compute everything, change nothing (no cluster write, no file removed). */
  readonly dryRun: boolean;
}

/**
 * A job-specific metric for `/metrics`: a counter added to (bytes freed by the log cleanup), a gauge set, or one
 * observation of a histogram.
 */
export interface JobCounter {
  /** Metric name without the daemon's prefix, e.g. `log_cleanup_bytes_freed_total`. */
  readonly name: string;
  /** The metric's help text. */
  readonly help: string;
  /** How much to add (a counter) or the value to show (a gauge). */
  readonly value: number;
  /** A counter (the default), a gauge, or a histogram (`value` is one observation). */
  readonly kind?: "counter" | "gauge" | "histogram";
  /** A histogram's buckets (its first observation fixes them). */
  readonly buckets?: readonly number[];
  /** Labels, the same keys on every run. */
  readonly labels?: Readonly<Record<string, string>>;
}

/** The outcome of one run: a readable summary and the JSON result served by the API and `once --json`. */
export interface RunOutcome<T = unknown> {
  /** One readable line, for logs and `once` without `--json`. */
  readonly summary: string;
  /** The job's result: what `once <task> --json` prints and the job's API route serves. */
  readonly result: T;
  /** Counters this run adds to the job's metrics. */
  readonly counters?: readonly JobCounter[];
  /** A routine run that changed nothing: its summary is logged at debug level (`--v=4` and above). */
  readonly routine?: boolean;
}

/** One job of the daemon: a name, a schedule and `run()`. */
export interface Controller<T = unknown> {
  /** The task name (the daemon's come from `JOBS`). */
  readonly name: string;
  /** When the scheduler runs it. */
  readonly schedule: Schedule;
  /** Whether it runs once when the daemon starts. */
  readonly runAtStart: boolean;
  /** A run that takes longer is aborted and counted as failed. */
  readonly timeoutMs: number;
  /** Observe, plan and apply once. Throws when the run failed. */
  run(ctx: RunContext): Promise<RunOutcome<T>>;
  /** Closes what the job keeps open between runs (a watch); called once, after its last run. */
  close?(): Promise<void>;
}

/** Severity of an event, as Kubernetes events have it. */
export type EventType = "Normal" | "Warning";

/** A notable action or failure, recorded on this host's Node. */
export interface DaemonEvent {
  /** The job (task name) that reports it. */
  readonly job: string;
  /** Normal or Warning. */
  readonly type: EventType;
  /** A short CamelCase reason, e.g. `PortUsageTooLarge`. */
  readonly reason: string;
  /** A sentence that names the object and the cause. */
  readonly message: string;
  /** The object it is about, when not this host's Node (e.g. an MPDCluster); its Event goes to its namespace. */
  readonly regarding?: EventObject;
}

/** An object an Event is about. */
export interface EventObject {
  /** e.g. `mpd.polardb.aliyun.com/v1`. */
  readonly apiVersion: string;
  /** e.g. `MPDCluster`. */
  readonly kind: string;
  /** Its namespace. */
  readonly namespace: string;
  /** Its name. */
  readonly name: string;
  /** Its UID, when known. */
  readonly uid?: string;
}

/** Where jobs send their events; recording never blocks and never throws. */
export interface EventSink {
  /** Records an event in the background. */
  record(event: DaemonEvent): void;
}

/** An event sink that keeps nothing, for one-shot dry runs and tests. */
export const nullEventSink: EventSink = { record: () => {} };

/** The logger type used across the daemon (LogTape's). */
export type { Logger };
