/**
 * Each job's options, built from the flags: the one place where the Config meets the jobs. No job sees the whole
 * Config; each takes its own options type, defined in its folder.
 */
import type { Config } from "./config.ts";
import type { LogCleanupOptions } from "./controllers/log_cleanup/job.ts";

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

/** The log-cleanup job's options: the root as given, N days and the folder limit. */
export function logCleanupOptions(config: Config): LogCleanupOptions {
  return {
    root: config.dbclusterLogDir,
    days: config.insFolderOverdueDays,
    maxFolders: config.logCleanupMaxFolders,
  };
}

// node-network: replaced by its options builder.
/** The node-network job's options. */
export function nodeNetworkOptions(config: Config): Config {
  return config;
}
