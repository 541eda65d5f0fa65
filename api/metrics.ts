/**
 * Prometheus metrics: per job runs, failures, skipped ticks, duration, last success, and the jobs' own figures; HTTP
 * requests; build and process. Every job's counters exist at 0 from the start.
 */
import { Counter, Gauge, Histogram, Registry } from "./prometheus.ts";
import { DECLARED_JOB_METRICS, resultFigures } from "./job_metrics.ts";
import type { LastRun } from "../controllers/run_limit.ts";
import { JOB_NAMES } from "../core/jobs.ts";
import type { JobCounter, RunOutcome } from "../core/types.ts";
import { VERSION } from "../core/version.ts";

/** The daemon's metrics and the hooks that feed them. */
export interface Metrics {
  /** The registry to render. */
  readonly registry: Registry;
  /** Records a finished job run. */
  jobRun(name: string, run: LastRun): void;
  /** Records a skipped tick. */
  jobSkipped(name: string): void;
  /** Records an HTTP answer. */
  httpRequest(route: string, method: string, code: number): void;
  /** Records a cluster API answer (status 0 = network error). */
  kubeRequest(method: string, status: number): void;
  /** Adds to a job-specific counter, e.g. `log_cleanup_bytes_freed_total`, or sets a job-specific gauge. */
  jobCounter(counter: JobCounter): void;
  /** Records a successful run's figures: its gauges replace every series the job's gauges had before. */
  jobOutcome(name: string, outcome: RunOutcome): void;
}

const OUTCOMES: readonly LastRun["outcome"][] = ["success", "failure"];

/** Creates the metrics on a new registry. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  const prefix = "polarstack_daemon_";
  const runs = new Counter({
    name: `${prefix}job_runs_total`,
    help: "Job runs by outcome",
    labelNames: ["job", "outcome"],
  }, registry);
  const skipped = new Counter({
    name: `${prefix}job_skipped_ticks_total`,
    help: "Ticks skipped because the job was still running",
    labelNames: ["job"],
  }, registry);
  const duration = new Histogram({
    name: `${prefix}job_duration_seconds`,
    help: "Job run duration",
    labelNames: ["job"],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
  }, registry);
  const lastSuccess = new Gauge({
    name: `${prefix}job_last_success_timestamp_seconds`,
    help: "Unix time of the job's last successful run",
    labelNames: ["job"],
  }, registry);
  const http = new Counter({
    name: `${prefix}http_requests_total`,
    help: "HTTP requests by route, method and code",
    labelNames: ["route", "method", "code"],
  }, registry);
  const kube = new Counter({
    name: `${prefix}kube_requests_total`,
    help: "Kubernetes API requests by method and status (0 = network error)",
    labelNames: ["method", "status"],
  }, registry);
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes",
    collect: (gauge) => gauge.set({}, Deno.memoryUsage().rss),
  }, registry);
  new Gauge({
    name: "nodejs_heap_size_used_bytes",
    help: "V8 heap used in bytes",
    collect: (gauge) => gauge.set({}, Deno.memoryUsage().heapUsed),
  }, registry);
  new Gauge({
    name: `${prefix}build_info`,
    help: "Always 1; the daemon's version as a label",
    labelNames: ["version"],
  }, registry).set({ version: VERSION }, 1);
  new Gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since the Unix epoch in seconds",
  }, registry).set({}, performance.timeOrigin / 1000);
  for (const job of JOB_NAMES) {
    for (const outcome of OUTCOMES) runs.inc({ job, outcome }, 0);
    skipped.inc({ job }, 0);
    duration.start({ job });
  }
  const extra = new Map<string, Counter>();
  const gauges = new Map<string, Gauge>();
  const histograms = new Map<string, Histogram>();
  for (const declared of DECLARED_JOB_METRICS) {
    const labelNames = Object.keys(declared.series[0]);
    const options = { name: `${prefix}${declared.name}`, help: declared.help, labelNames };
    if (declared.kind === "histogram") {
      const histogram = new Histogram({ ...options, buckets: declared.buckets ?? [] }, registry);
      for (const labels of declared.series) histogram.start(labels);
      histograms.set(declared.name, histogram);
    } else {
      const counter = new Counter(options, registry);
      for (const labels of declared.series) counter.inc(labels, 0);
      extra.set(declared.name, counter);
    }
  }
  // The gauges each job reported in its last run: a series it no longer reports (a version gone) is removed.
  const gaugesOfJob = new Map<string, Set<string>>();
  const metrics: Metrics = {
    registry,
    jobRun(name, run) {
      runs.inc({ job: name, outcome: run.outcome });
      duration.observe({ job: name }, run.durationMs / 1000);
      if (run.outcome === "success") lastSuccess.set({ job: name }, Date.now() / 1000);
    },
    jobSkipped(name) {
      skipped.inc({ job: name });
    },
    httpRequest(route, method, code) {
      http.inc({ route, method, code: String(code) });
    },
    kubeRequest(method, status) {
      kube.inc({ method, status: String(status) });
    },
    jobCounter({ name, help, value, labels = {}, kind, buckets }) {
      if (kind === "histogram") {
        let histogram = histograms.get(name);
        if (!histogram) {
          histogram = new Histogram({
            name: `${prefix}${name}`,
            help,
            labelNames: Object.keys(labels),
            buckets: [...(buckets ?? [0.1, 0.5, 1, 2, 5, 10, 30])],
          }, registry);
          histograms.set(name, histogram);
        }
        histogram.observe(labels, value);
        return;
      }
      if (kind === "gauge") {
        let gauge = gauges.get(name);
        if (!gauge) {
          gauge = new Gauge({ name: `${prefix}${name}`, help, labelNames: Object.keys(labels) }, registry);
          gauges.set(name, gauge);
        }
        gauge.set(labels, value);
        return;
      }
      let counter = extra.get(name);
      if (!counter) {
        counter = new Counter({
          name: `${prefix}${name}`,
          help,
          labelNames: Object.keys(labels),
        }, registry);
        extra.set(name, counter);
      }
      counter.inc(labels, value);
    },
    jobOutcome(name, outcome) {
      const figures = [...(outcome.counters ?? []), ...resultFigures(name, outcome.result)];
      for (const gauge of gaugesOfJob.get(name) ?? []) gauges.get(gauge)?.clear();
      gaugesOfJob.set(name, new Set(figures.filter((f) => f.kind === "gauge").map((f) => f.name)));
      for (const figure of figures) metrics.jobCounter(figure);
    },
  };
  return metrics;
}
