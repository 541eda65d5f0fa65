/** The daemon's runtime: logging, the cluster client, metrics and events, and the jobs wired to them. */
import type { Config } from "./config/config.ts";
import type { JobDeps } from "./controllers/deps.ts";
import { JOBS } from "./core/jobs.ts";
import { type Controller, type Logger, nullEventSink, systemClock } from "./core/types.ts";
import { VERSION } from "./core/version.ts";
import { createPortUsageController } from "./controllers/port_usage/job.ts";
import { createCoreVersionController } from "./controllers/core_version/job.ts";
import {
  coreVersionOptions,
  floatingIpOptions,
  imageReplicationOptions,
  logCleanupOptions,
  nodeNetworkOptions,
  portUsageOptions,
} from "./job_options.ts";
import { createFloatingIpController } from "./controllers/floating_ip/job.ts";
import { createLogCleanupController } from "./controllers/log_cleanup/job.ts";
import { createNodeNetworkController } from "./controllers/node_network/job.ts";
import { createImageReplicationController } from "./controllers/image_replication/job.ts";
import { createCommandRunner, createStreamingCommandRunner } from "./host/command.ts";
import { createKubeClient, type KubeClient } from "./k8s/client.ts";
import { createEventSink, type DaemonEventSink } from "./k8s/events.ts";
import { chooseClusterSource, loadConnection } from "./k8s/kube_config.ts";
import { createReachabilityTracker, type ReachabilityTracker } from "./k8s/reachability.ts";
import { createMetrics, type Metrics } from "./api/metrics.ts";
import { type AppServer, connectionCap, type FetchHandler, serveApp } from "./api/server.ts";
import { raiseOpenFileLimit } from "./host/rlimit.ts";
import { setUpLogging, taskLogger } from "./logging.ts";

/** What every part of the daemon shares: the config, the cluster (or none), logs, metrics, events. */
export interface Runtime {
  readonly config: Config;
  readonly kube: KubeClient | null;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly events: DaemonEventSink;
  /** Whether the API server answers (null in local mode). */
  readonly cluster: ReachabilityTracker | null;
}

function hostIp(): string {
  const found = Deno.networkInterfaces().find((i) => i.family === "IPv4" && !i.address.startsWith("127."));
  return found?.address ?? "127.0.0.1";
}

/** Sets up logging, the cluster client, metrics and the event sink. */
export function createRuntime(config: Config, options: { json?: boolean; dryRun?: boolean }): Runtime {
  setUpLogging({
    v: config.v,
    toStderr: config.logtostderr || config.alsologtostderr,
    stderrThreshold: config.stderrthreshold,
    file: config.logFile || undefined,
    maxFileBytes: config.logFileMaxSize * 1024 * 1024,
    json: options.json ? true : undefined,
  });
  const log = taskLogger("daemon");
  if (config.vmodule) log.warn("--vmodule={vmodule} is ignored: use --v", { vmodule: config.vmodule });
  const metrics = createMetrics();
  const source = chooseClusterSource({
    kubeconfig: config.kubeconfig,
    master: config.master,
    local: config.local,
    env: Deno.env.toObject(),
    exists: (path) => {
      try {
        return Deno.statSync(path).isFile;
      } catch {
        return false;
      }
    },
  });
  const connection = loadConnection(source, Deno.env.toObject());
  let kube: KubeClient | null = null;
  let cluster: ReachabilityTracker | null = null;
  if (connection) {
    const tracker = createReachabilityTracker(connection.server);
    cluster = tracker;
    log.info("Using the cluster from {source} at {server}", { source: connection.source, server: connection.server });
    kube = createKubeClient(connection, {
      namespace: config.namespace,
      userAgent: `polarstack-daemon/${VERSION}`,
      qps: config.kubeApiQps,
      burst: config.kubeApiBurst,
      onResponse: ({ method, status }) => {
        metrics.kubeRequest(method, status);
        tracker.onResponse(status);
      },
      onRetry: ({ what, attempt, delayMs, cause }) => {
        tracker.onRetry(cause);
        log.warn("Retry {attempt} of {what} in {delayMs} ms: {cause}", { what, attempt, delayMs, cause });
      },
    });
  } else if (source.kind === "local") {
    log.warn(
      "LOCAL MODE: {reason}. Every job runs against this host, nothing is published to a cluster, and no instance folder is deleted",
      { reason: source.reason },
    );
  }
  const events = options.dryRun ? { ...nullEventSink, flush: () => Promise.resolve() } : createEventSink({
    kube,
    node: config.currentNodeName,
    log,
    jobLog: taskLogger,
    clock: systemClock,
    upload: config.eventsEnableUpload
      ? { url: config.eventsUploadUrl, timeoutMs: config.eventsUploadTimeout * 1000, ip: hostIp() }
      : undefined,
  });
  return { config, kube, log, metrics, events, cluster };
}

/** The jobs, wired to the runtime; `killCommands` ends every host command still running. */
export function createControllers(runtime: Runtime) {
  // Aborted when the process is about to exit: a command still running (a hung ipmitool) is killed, not orphaned.
  const exiting = new AbortController();
  const commandOptions = {
    prefix: runtime.config.hostCommandPrefix.split(/\s+/).filter(Boolean),
    signal: exiting.signal,
  };
  const runCommand = createCommandRunner(commandOptions);
  const deps = (task: string): JobDeps => ({
    kube: runtime.kube,
    clock: systemClock,
    events: runtime.events,
    log: taskLogger(task),
    runCommand,
  });
  const coreVersion = createCoreVersionController(deps(JOBS.coreVersion.name), coreVersionOptions(runtime.config));
  const floatingIp = createFloatingIpController(deps(JOBS.floatingIp.name), floatingIpOptions(runtime.config));
  const imageReplication = createImageReplicationController({
    ...deps(JOBS.imageReplication.name),
    runStreaming: createStreamingCommandRunner(commandOptions),
    recordMetric: (metric) => runtime.metrics.jobCounter(metric),
  }, imageReplicationOptions(runtime.config));
  const controllers: Controller[] = [
    createPortUsageController(deps(JOBS.portUsage.name), portUsageOptions(runtime.config)),
    coreVersion,
    createLogCleanupController(deps(JOBS.logCleanup.name), logCleanupOptions(runtime.config)),
    createNodeNetworkController(deps(JOBS.nodeNetwork.name), nodeNetworkOptions(runtime.config)),
    floatingIp,
    imageReplication,
  ];
  return { controllers, coreVersion, floatingIp, imageReplication, killCommands: () => exiting.abort() };
}

/** Raises the open-file limit, then serves the API on both stacks with a connection cap below that limit. */
export function serveApi(
  fetch: FetchHandler,
  options: { port: number; node: string; log: Logger },
): AppServer {
  const { log } = options;
  const fds = raiseOpenFileLimit();
  if (fds.ok) {
    log.info("Open file limit {soft} (was {before}, hard {hard})", { ...fds.after, before: fds.before.soft });
  } else {
    log.warn("Cannot raise the open file limit (soft {soft}): {error}", { soft: fds.before?.soft, error: fds.error });
  }
  const maxConnections = connectionCap(fds.ok ? fds.after.soft : fds.before?.soft ?? 1024);
  const server = serveApp(fetch, { port: options.port, maxConnections, log: taskLogger("api") });
  log.info("Listening on {hostnames} port {port} (at most {maxConnections} connections), node {node}", {
    hostnames: server.hostnames.join(", "),
    port: server.port,
    maxConnections,
    node: options.node,
  });
  return server;
}
