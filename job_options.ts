/**
 * Each job's options, built from the flags: the one place where the Config meets the jobs. No job sees the whole
 * Config; each takes its own options type, defined in its folder.
 */
import type { Config } from "./config.ts";
import type { NodeNetworkOptions } from "./controllers/node_network/job.ts";

// port-usage: replaced by its options builder.
/** The port-usage job's options. */
export function portUsageOptions(config: Config): Config {
  return config;
}

// core-version: replaced by its options builder.
/** The core-version job's options. */
export function coreVersionOptions(config: Config): Config {
  return config;
}

// log-cleanup: replaced by its options builder.
/** The log-cleanup job's options. */
export function logCleanupOptions(config: Config): Config {
  return config;
}

/** The node-network job's options: this host's Node, the interface flag, the probe and heartbeat periods. */
export function nodeNetworkOptions(config: Config): NodeNetworkOptions {
  return {
    node: config.currentNodeName,
    netCardName: config.netCardName,
    probeIntervalMs: config.netProbeInterval,
    reportFrequencyMs: config.nodeStatusReportFrequency,
  };
}
