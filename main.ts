/**
 * polarstack-daemon: the per-host daemon of PolarDB Stack. The command line: flags -> config, then the
 * daemon or one `once` task. The only place that wires things together.
 */
import { Argument, Command, CommanderError, Option } from "commander";
import denoConfig from "./deno.json" with { type: "json" };
import { ARGS_ENV, argsFromEnv, buildConfig, type Config, FlagError, FLAGS } from "./config.ts";
import { setUpLogging, taskLogger } from "./logging.ts";
import type { JobDeps } from "./controllers/deps.ts";
import { type LastRun, runWithLimit, Scheduler } from "./controllers/scheduler.ts";
import { type Controller, type EventSink, type Logger, nullEventSink, systemClock } from "./controllers/types.ts";
import { createPortUsageController } from "./controllers/port_usage/job.ts";
import { createCoreVersionController } from "./controllers/core_version.ts";
import { createLogCleanupController } from "./controllers/log_cleanup.ts";
import { createNodeNetworkController } from "./controllers/node_network.ts";
import { createCommandRunner } from "./host/command.ts";
import { createKubeClient, type KubeClient } from "./k8s/client.ts";
import { createEventSink, type DaemonEventSink } from "./k8s/events.ts";
import { chooseClusterSource, loadConnection } from "./k8s/kube_config.ts";
import { createPeerTokenReader } from "./k8s/peer_token.ts";
import { createApp } from "./api/app.ts";
import { connectionCap, serveApp } from "./api/server.ts";
import { raiseOpenFileLimit } from "./host/rlimit.ts";
import { createMetrics, type Metrics } from "./api/metrics.ts";
import { createTokenReviewAuthorizer } from "./api/auth.ts";

/** The daemon's version (from deno.json). */
export const VERSION: string = denoConfig.version;

/** The one-shot tasks, by name. */
export const TASKS = ["port-usage", "core-version", "log-cleanup", "node-network"] as const;

/** Exit codes of the command line. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

const BOOLEAN_FLAGS = new Set(FLAGS.filter((f) => f.boolean).map((f) => `--${f.name}`).concat(["--dry-run", "--json"]));

/** Go's flag package never takes the next word as a boolean's value: `--local once` is `--local=true once`. */
export function normalizeArgs(args: readonly string[]): string[] {
  return args.map((arg) => (BOOLEAN_FLAGS.has(arg) ? `${arg}=true` : arg));
}

function addFlags(command: Command): Command {
  for (const spec of FLAGS) {
    // Defaults are applied by buildConfig, so a value given before `once` is not hidden by the sub-command's default.
    const shown = spec.defaultText ? ` (default: ${spec.defaultText})` : "";
    const option = new Option(`--${spec.name} ${spec.boolean ? "[bool]" : "<value>"}`, `${spec.description}${shown}`);
    option.helpGroup(`${spec.group} flags:`);
    command.addOption(option);
  }
  return command;
}

interface Runtime {
  readonly config: Config;
  readonly kube: KubeClient | null;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly events: DaemonEventSink;
  readonly cluster: { reachable: boolean; reason: string };
}

function hostIp(): string {
  const found = Deno.networkInterfaces().find((i) => i.family === "IPv4" && !i.address.startsWith("127."));
  return found?.address ?? "127.0.0.1";
}

function createRuntime(config: Config, options: { json?: boolean; dryRun?: boolean }): Runtime {
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
  const cluster = { reachable: false, reason: "no answer from the API server yet" };
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
  if (connection) {
    cluster.reason = `no answer from the API server at ${connection.server} yet`;
    log.info("Using the cluster from {source} at {server}", { source: connection.source, server: connection.server });
    kube = createKubeClient(connection, {
      namespace: config.namespace,
      userAgent: `polarstack-daemon/${VERSION}`,
      qps: config.kubeApiQps,
      burst: config.kubeApiBurst,
      onResponse: ({ method, status }) => {
        metrics.kubeRequest(method, status);
        cluster.reachable = status > 0 && status < 500;
        if (status >= 500) cluster.reason = `the API server at ${connection.server} answers ${status}`;
        if (status === 0) cluster.reason = `no answer from the API server at ${connection.server}`;
      },
      onRetry: ({ what, attempt, delayMs, cause }) => {
        // The retry knows the cause (connection refused, timeout): /readyz shows it.
        if (!cluster.reachable) cluster.reason = `${connection.server}: ${cause}`;
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

function createControllers(runtime: Runtime) {
  // Aborted when the process is about to exit: a command still running (a hung ipmitool) is killed, not orphaned.
  const exiting = new AbortController();
  const runCommand = createCommandRunner({
    prefix: runtime.config.hostCommandPrefix.split(/\s+/).filter(Boolean),
    signal: exiting.signal,
  });
  const deps = (task: string): JobDeps => ({
    config: runtime.config,
    kube: runtime.kube,
    clock: systemClock,
    events: runtime.events,
    log: taskLogger(task),
    runCommand,
  });
  // The fan-out proves who calls with a token bound to the daemons' audience, never the one that opens the API server.
  const peerToken = createPeerTokenReader(runtime.config.peerTokenFile, { log: taskLogger("core-version") });
  const fanOutHeaders = (): Record<string, string> => {
    const token = peerToken();
    return token ? { Authorization: `Bearer ${token}` } : {};
  };
  const coreVersion = createCoreVersionController(deps("core-version"), { fanOutHeaders });
  const controllers: Controller[] = [
    createPortUsageController(deps("port-usage")),
    coreVersion,
    createLogCleanupController(deps("log-cleanup")),
    createNodeNetworkController(deps("node-network")),
  ];
  return { controllers, coreVersion, killCommands: () => exiting.abort() };
}

/** An Event when a job starts failing and when it recovers: once per change, not once per run. */
function reportTransition(
  events: EventSink,
  change: { name: string; run: LastRun; previous?: LastRun["outcome"] },
): void {
  const { name, run, previous } = change;
  if (run.outcome === "failure" && previous !== "failure") {
    events.record({ job: name, type: "Warning", reason: "JobFailed", message: `Job "${name}" failed: ${run.error}` });
  } else if (run.outcome === "success" && previous === "failure") {
    events.record({ job: name, type: "Normal", reason: "JobRecovered", message: `Job "${name}" works again` });
  }
}

async function runDaemon(config: Config): Promise<number> {
  const runtime = createRuntime(config, {});
  const { log } = runtime;
  const apiAuth = config.apiAuth || (runtime.kube ? "tokenreview" : "none");
  if (apiAuth === "tokenreview" && !runtime.kube) {
    throw new FlagError(
      "Invalid value for --api-auth: tokenreview needs a cluster, and this daemon runs in local mode",
    );
  }
  if (apiAuth === "none") log.warn("The POST endpoints are not authenticated (--api-auth=none)");
  const authorize = apiAuth === "tokenreview" && runtime.kube
    ? createTokenReviewAuthorizer({
      kube: runtime.kube,
      allowedUsers: config.apiAllowedUsers.split(","),
      clock: systemClock,
    })
    : undefined;
  addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    log.error("Unhandled rejection: {error}", { error: String(event.reason?.message ?? event.reason) });
  });
  const { controllers, coreVersion, killCommands } = createControllers(runtime);
  const scheduler = new Scheduler(controllers, {
    clock: systemClock,
    node: config.currentNodeName,
    log: taskLogger("scheduler"),
    jobLog: taskLogger,
    onRun: (name, run, details) => {
      runtime.metrics.jobRun(name, run);
      reportTransition(runtime.events, { name, run, previous: details.previous?.outcome });
      for (const counter of details.outcome?.counters ?? []) runtime.metrics.jobCounter(counter);
    },
    onSkip: (name) => runtime.metrics.jobSkipped(name),
  });
  const app = createApp({
    jobs: scheduler,
    kube: runtime.kube,
    clusterState: () => (runtime.kube ? runtime.cluster : null),
    metrics: runtime.metrics,
    log: taskLogger("api"),
    fanOut: () => coreVersion.fanOut(),
    versionsExtra: () => coreVersion.fanOutState(),
    authorize,
    node: config.currentNodeName,
  });
  const fds = raiseOpenFileLimit();
  if (fds.ok) {
    log.info("Open file limit {soft} (was {before}, hard {hard})", { ...fds.after, before: fds.before.soft });
  } else {
    log.warn("Cannot raise the open file limit (soft {soft}): {error}", { soft: fds.before?.soft, error: fds.error });
  }
  const maxConnections = connectionCap(fds.ok ? fds.after.soft : fds.before?.soft ?? 1024);
  const server = serveApp(app.fetch, { port: config.port, maxConnections, log: taskLogger("api") });
  log.info("Listening on {hostnames} port {port} (at most {maxConnections} connections), node {node}", {
    hostnames: server.hostnames.join(", "),
    port: server.port,
    maxConnections,
    node: config.currentNodeName,
  });
  scheduler.start();

  const { promise: stopped, resolve: stop } = Promise.withResolvers<string>();
  for (const signal of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(signal, () => stop(signal));
  const signal = await stopped;
  log.info("Received {signal}: stopping (grace {grace} ms)", { signal, grace: config.shutdownGracePeriod });
  const finished = await scheduler.stop(config.shutdownGracePeriod);
  killCommands();
  await server.shutdown();
  await Promise.race([runtime.events.flush(), new Promise((r) => setTimeout(r, 2000))]);
  log.info(finished ? "Stopped" : "Stopped; a job was still running at the end of the grace period and was abandoned");
  return EXIT.ok;
}

async function runOnce(task: string, config: Config, options: { dryRun: boolean; json: boolean }): Promise<number> {
  const runtime = createRuntime(config, { dryRun: options.dryRun });
  const { controllers, killCommands } = createControllers(runtime);
  const controller = controllers.find((c) => c.name === task)!;
  const { run, outcome } = await runWithLimit(controller, { dryRun: options.dryRun, clock: systemClock });
  killCommands();
  await Promise.race([runtime.events.flush(), new Promise((r) => setTimeout(r, 5000))]);
  if (!outcome) {
    console.error(`${task} failed: ${run.error}`);
    if (options.json) {
      const { error, startedAt, durationMs, dryRun } = run;
      console.log(JSON.stringify({ task, error, node: config.currentNodeName, startedAt, durationMs, dryRun }));
    }
    return EXIT.failed;
  }
  console.log(
    options.json ? JSON.stringify(outcome.result) : `${options.dryRun ? "[dry run] " : ""}${outcome.summary}`,
  );
  return EXIT.ok;
}

/** What the command line asks for: the daemon, or one task. */
export type Invocation =
  | { readonly kind: "daemon"; readonly config: Config }
  | {
    readonly kind: "once";
    readonly task: string;
    readonly config: Config;
    readonly dryRun: boolean;
    readonly json: boolean;
  };

/** Builds the command line; `onParsed` receives what it asks for (tests read it without running anything). */
export function buildProgram(onParsed: (invocation: Invocation) => void): Command {
  const program = addFlags(
    new Command("polarstack-daemon")
      .description("The per-host daemon of PolarDB Stack: port usage, engine versions, log cleanup, client network")
      .version(VERSION, "--version", "Print the version and exit")
      .helpOption("-h, --help", "Show this help")
      .exitOverride()
      .showSuggestionAfterError(false)
      .enablePositionalOptions()
      .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) }),
  );
  // A word that is not a command (a typo of `once`) is named, not reported as "too many arguments".
  program.allowExcessArguments(true).action((raw, command: Command) => {
    if (command.args.length > 0) {
      throw new FlagError(
        `Unknown command "${command.args[0]}": the command is once <task>, with a task of ${TASKS.join(", ")}`,
      );
    }
    const config = toConfig(raw);
    onParsed({ kind: "daemon", config });
  });
  addFlags(
    program.command("once")
      .description("Run one task once, print a summary (or JSON) and exit: 0 done, 1 failed, 2 usage error")
      .addArgument(
        new Argument("<task>", "port-usage, core-version, log-cleanup or node-network").choices(TASKS),
      )
      .option("--dry-run [bool]", "Compute everything, change nothing: no cluster write, no file removed")
      .option("--json [bool]", "Print one JSON document instead of a summary")
      .helpOption("-h, --help", "Show this help")
      .exitOverride(),
  ).action((task: string, raw: Record<string, unknown>) => {
    const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
    const config = toConfig({ ...program.opts(), ...given });
    const dryRun = toBool(raw.dryRun, "dry-run");
    const json = toBool(raw.json, "json");
    onParsed({ kind: "once", task, config, dryRun, json });
  });
  return program;
}

function toBool(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (value === true || value === "true") return true;
  if (value === "false") return false;
  throw new FlagError(`Invalid value for --${name}: "${value}" is not a boolean (true or false)`);
}

function toConfig(raw: Record<string, unknown>): Config {
  return buildConfig(raw, { env: Deno.env.toObject(), hostname: Deno.hostname() });
}

/**
 * Parses a command line without running anything; throws FlagError or CommanderError (help, version, usage).
 * The flags in `$POLARSTACK_DAEMON_ARGS` come first, so the command line's win.
 */
export function parseCommandLine(
  args: readonly string[],
  options: { env?: Readonly<Record<string, string | undefined>> } = {},
): Invocation {
  const fromEnv = argsFromEnv((options.env ?? Deno.env.toObject())[ARGS_ENV]);
  let invocation: Invocation | null = null;
  buildProgram((parsed) => (invocation = parsed)).parse(normalizeArgs([...fromEnv, ...args]), { from: "user" });
  if (!invocation) throw new FlagError("Nothing to run: see --help");
  return invocation;
}

/** Parses `args` and runs the daemon or a task; resolves to the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  let asked: Invocation;
  try {
    asked = parseCommandLine(args);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return EXIT.ok; // --help, --version
      return EXIT.usage; // commander printed the one line
    }
    if (error instanceof FlagError) {
      console.error(error.message);
      return EXIT.usage;
    }
    throw error;
  }
  try {
    return asked.kind === "daemon" ? await runDaemon(asked.config) : await runOnce(asked.task, asked.config, asked);
  } catch (error) {
    console.error((error as Error).message);
    return error instanceof FlagError ? EXIT.usage : EXIT.failed;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
