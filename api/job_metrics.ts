/**
 * The jobs' own figures that /metrics shows from the start, and those derived from a job's result. A counter that
 * appears only after its first increment makes `increase()` miss that increment, so every job counter is declared
 * here at 0; the names and help texts are those the jobs report.
 */
import type { FloatingIpResult } from "../controllers/floating_ip/result.ts";
import { ATTEMPT_FAILURES } from "../controllers/image_replication/retry.ts";
import { JOBS } from "../core/jobs.ts";
import type { JobCounter } from "../core/types.ts";

/** A job counter or histogram shown at 0 before the job reports it, with every label set it will have. */
export interface DeclaredJobMetric {
  /** Name without the daemon's prefix. */
  readonly name: string;
  /** The help text, as the job reports it. */
  readonly help: string;
  /** A counter or a histogram. */
  readonly kind: "counter" | "histogram";
  /** Each label set shown at 0 (one empty set for a metric without labels). */
  readonly series: readonly Readonly<Record<string, string>>[];
  /** A histogram's buckets, as the job reports them. */
  readonly buckets?: readonly number[];
}

/** Every job counter and histogram, declared at 0 when the daemon starts. */
export const DECLARED_JOB_METRICS: readonly DeclaredJobMetric[] = [
  { name: "log_cleanup_bytes_freed_total", help: "Bytes freed by the log cleanup", kind: "counter", series: [{}] },
  {
    name: "log_cleanup_removed_total",
    help: "Entries removed by the log cleanup",
    kind: "counter",
    series: [{ kind: "instanceFolders" }, { kind: "logFiles" }, { kind: "dataDirs" }],
  },
  { name: "log_cleanup_errors_total", help: "Paths the log cleanup failed to remove", kind: "counter", series: [{}] },
  {
    name: "log_cleanup_folder_limit_exceeded_total",
    help: "Runs that removed no folder because too many were due",
    kind: "counter",
    series: [{}],
  },
  { name: "floating_ip_moves_total", help: "Floating IPs added on this host", kind: "counter", series: [{}] },
  {
    name: "floating_ip_conflicts_total",
    help: "Duplicate-address probes another host answered",
    kind: "counter",
    series: [{}],
  },
  {
    name: "floating_ip_announce_seconds",
    help: "From seeing a cluster's leader change to the announcement of its address on the new leader",
    kind: "histogram",
    series: [{}],
    buckets: [0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 30],
  },
  {
    name: "image_replication_bytes_total",
    help: "Bytes of images copied here from peers",
    kind: "counter",
    series: [{}],
  },
  {
    name: "image_replication_transfers_total",
    help: "Image transfers by outcome",
    kind: "counter",
    series: ["success", ...ATTEMPT_FAILURES].map((outcome) => ({ outcome })),
  },
];

// The gauge of the floating-IP job's `LeaderIPReady` conditions that are False, switched-off ones aside.
const FLOATING_IP_NOT_READY = "floating_ip_not_ready";

/**
 * Figures a job's result holds but its counters do not: for the floating-IP job, how many of the clusters whose leader
 * runs here have no ready address (the job's `enableVip` switch off is not counted: that is wanted).
 */
export function resultFigures(job: string, result: unknown): JobCounter[] {
  if (job !== JOBS.floatingIp.name || result === null || typeof result !== "object") return [];
  const conditions = (result as Partial<FloatingIpResult>).conditions ?? [];
  return [{
    name: FLOATING_IP_NOT_READY,
    help: "Clusters whose leader runs on this host and whose floating IP is not ready here (LeaderIPReady False)",
    kind: "gauge",
    value: conditions.filter((c) => c.status === "False" && c.reason !== "Disabled").length,
  }];
}
