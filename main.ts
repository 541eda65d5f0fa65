/**
 * polarstack-daemon: the per-host daemon of PolarDB Stack. Wiring only: the command line -> the Config, then the
 * daemon (the scheduler, the HTTP API) or one `once` task.
 */
import { EXIT, readCommandLine, type Request } from "./config/command_line.ts";
import type { Config } from "./config/config.ts";
import { runWithLimit } from "./controllers/run_limit.ts";
import { Scheduler } from "./controllers/scheduler.ts";
import { FlagError } from "./core/flag_error.ts";
import { systemClock } from "./core/types.ts";
import { createApp } from "./api/app.ts";
import { createImageExport } from "./api/image_export.ts";
import { chooseAuthorizer } from "./api/auth.ts";
import { taskLogger } from "./logging.ts";
import { createControllers, createRuntime, serveApi } from "./runtime.ts";
import { createCaches, triggerOnChanges } from "./cluster_cache.ts";

async function runDaemon(config: Config): Promise<number> {
  const runtime = createRuntime(config, {});
  const { log } = runtime;
  const authorize = chooseAuthorizer(config.apiAuth, {
    kube: runtime.kube,
    allowedUsers: config.apiAllowedUsers.split(","),
    clock: systemClock,
    log,
  });
  addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    log.error("Unhandled rejection: {error}", { error: String(event.reason?.message ?? event.reason) });
  });
  // The jobs read the ConfigMaps through the cache, when there is one.
  const cache = createCaches(runtime);
  const { controllers, coreVersion, floatingIp, imageReplication, killCommands } = createControllers(
    cache ? { ...runtime, kube: cache.kube } : runtime,
  );
  const scheduler = new Scheduler(controllers, {
    clock: systemClock,
    node: config.currentNodeName,
    log: taskLogger("scheduler"),
    jobLog: taskLogger,
    events: runtime.events,
    onRun: (name, run, details) => {
      runtime.metrics.jobRun(name, run);
      if (details.outcome) runtime.metrics.jobOutcome(name, details.outcome);
      // auto: every version check is followed by a copy of what is missing here (a run that finds nothing is short).
      if (name === coreVersion.name && run.outcome === "success" && config.imageReplication === "auto") {
        scheduler.trigger(imageReplication.name);
      }
    },
    onSkip: (name) => runtime.metrics.jobSkipped(name),
  });
  const imageExport = createImageExport({
    authorize,
    versionImages: () => imageReplication.versionImages(),
    exportImage: (ref, options) => imageReplication.exportImage(ref, options),
    concurrency: config.imageExportConcurrency,
    log: taskLogger("api"),
  });
  const app = createApp({
    jobs: scheduler,
    kube: runtime.kube,
    clusterState: () => runtime.cluster?.state() ?? null,
    metrics: runtime.metrics,
    log: taskLogger("api"),
    fanOut: () => coreVersion.fanOut(),
    versionsExtra: () => coreVersion.fanOutState(),
    authorize,
    node: config.currentNodeName,
    caches: () => cache?.states() ?? [],
    jobCaches: () => floatingIp.caches(),
    imageExport,
    images: imageReplication,
  });
  imageReplication.onCopied(() => scheduler.trigger(coreVersion.name));
  if (cache) {
    triggerOnChanges(cache, { config, trigger: (job) => scheduler.trigger(job) });
    cache.start();
  }
  const server = serveApi(app.fetch, { port: config.port, node: config.currentNodeName, log });
  floatingIp.onWake(() => scheduler.trigger(floatingIp.name));
  scheduler.start();

  const { promise: stopped, resolve: stop } = Promise.withResolvers<string>();
  for (const signal of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(signal, () => stop(signal));
  const signal = await stopped;
  log.info("Received {signal}: stopping (grace {grace} ms)", { signal, grace: config.shutdownGracePeriod });
  const finished = await scheduler.stop(config.shutdownGracePeriod);
  await Promise.all(controllers.map((c) => c.close?.()));
  killCommands();
  await cache?.stop();
  await server.shutdown();
  await Promise.race([runtime.events.flush(), new Promise((r) => setTimeout(r, 2000))]);
  log.info(finished ? "Stopped" : "Stopped; a job was still running at the end of the grace period and was abandoned");
  return EXIT.ok;
}

async function runOnce(
  task: string,
  config: Config,
  options: { dryRun: boolean; json: boolean; version?: string; from?: string },
): Promise<number> {
  const runtime = createRuntime(config, { dryRun: options.dryRun });
  const { controllers, coreVersion, imageReplication, killCommands } = createControllers(runtime);
  const controller = controllers.find((c) => c.name === task)!;
  // Asked for by hand: it copies whatever --image-replication says, and then checks the versions here.
  if (task === imageReplication.name) imageReplication.request({ version: options.version, from: options.from });
  let copied = false;
  imageReplication.onCopied(() => (copied = true));
  const { run, outcome } = await runWithLimit(controller, { dryRun: options.dryRun, clock: systemClock });
  if (copied) await runWithLimit(coreVersion, { dryRun: false, clock: systemClock });
  await Promise.all(controllers.map((c) => c.close?.()));
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

/** Parses `args` and runs the daemon or a task; resolves to the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  let asked: Request;
  try {
    asked = readCommandLine(args);
  } catch (error) {
    if (error instanceof FlagError) {
      console.error(error.message);
      return EXIT.usage;
    }
    throw error;
  }
  if (asked.kind === "print") {
    console.log(asked.text);
    return EXIT.ok;
  }
  try {
    return asked.kind === "daemon" ? await runDaemon(asked.config) : await runOnce(asked.task, asked.config, asked);
  } catch (error) {
    console.error((error as Error).message);
    return error instanceof FlagError ? EXIT.usage : EXIT.failed;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
