/**
 * Each job's options, built from the flags: the one place where the Config meets the jobs. No job sees the whole
 * Config; each takes its own options type, defined in its folder.
 */
import type { Config } from "./config/config.ts";

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

// node-network: replaced by its options builder.
/** The node-network job's options. */
export function nodeNetworkOptions(config: Config): Config {
  return config;
}
