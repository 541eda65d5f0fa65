/**
 * The daemon's cluster cache, wired: which ConfigMaps are watched, and which job runs when one of them changes. One
 * cache per daemon; `--cluster-cache=false` (or local mode) makes none.
 */
import type { Config } from "./config/config.ts";
import { availabilityConfigMapName } from "./controllers/core_version/plan.ts";
import { portUsageConfigMapName } from "./controllers/port_usage/plan.ts";
import { JOBS } from "./core/jobs.ts";
import { systemClock } from "./core/types.ts";
import { type ConfigMapCache, createConfigMapCache } from "./k8s/config_map_cache.ts";
import { taskLogger } from "./logging.ts";
import type { Runtime } from "./runtime.ts";

/** The settings ConfigMaps of others that the jobs read. */
const SETTINGS = { ccm: "ccm-config", controller: "controller-config" } as const;

/** Makes the cache of what the jobs read (not started), or null in local mode or with `--cluster-cache=false`. */
export function createCaches(runtime: Pick<Runtime, "config" | "kube">): ConfigMapCache | null {
  const { config, kube } = runtime;
  if (kube === null || !config.clusterCache) return null;
  return createConfigMapCache(kube, {
    names: [
      config.mpdControllerCmName,
      SETTINGS.ccm,
      SETTINGS.controller,
      // Watched so that a deleted or edited port-usage ConfigMap is written again at once.
      portUsageConfigMapName(config.currentNodeName),
    ],
    labelSelectors: [config.coreVersionCmLabels],
    // Rewritten at least hourly by its job, read by nobody else: its last write is all the job needs.
    remembered: [availabilityConfigMapName(config.currentNodeName)],
    clock: systemClock,
    log: taskLogger("cache"),
  });
}

/** Runs a job when an object it depends on changes; the periodic runs stay as they are. */
export function triggerOnChanges(
  cache: ConfigMapCache,
  options: { config: Config; trigger: (job: string) => unknown },
): void {
  const { config, trigger } = options;
  const run = (job: string) => () => void trigger(job);
  cache.onChange(config.mpdControllerCmName, run(JOBS.portUsage.name));
  cache.onChange(portUsageConfigMapName(config.currentNodeName), (change) => {
    // Its own writes come back through the watch: only a deletion needs a run.
    if (change.type === "DELETED") trigger(JOBS.portUsage.name);
  });
  cache.onChange(SETTINGS.ccm, () => {
    trigger(JOBS.nodeNetwork.name);
    trigger(JOBS.floatingIp.name);
  });
  cache.onChange(SETTINGS.controller, () => {
    trigger(JOBS.portUsage.name);
    trigger(JOBS.nodeNetwork.name);
    trigger(JOBS.floatingIp.name);
  });
  cache.onChange(config.coreVersionCmLabels, run(JOBS.coreVersion.name));
}
