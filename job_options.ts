/**
 * Each job's options, built from the flags: the one place where the Config meets the jobs. No job sees the whole
 * Config; each takes its own options type, defined in its folder.
 */
import type { Config } from "./config/config.ts";
import type { CoreVersionOptions } from "./controllers/core_version/job.ts";
import { nodeKey } from "./core/addresses.ts";
import type { PortUsageOptions } from "./controllers/port_usage/job.ts";
import { parseRangeList } from "./controllers/port_usage/ranges.ts";
import type { LogCleanupOptions } from "./controllers/log_cleanup/job.ts";
import type { NodeNetworkOptions } from "./controllers/node_network/job.ts";
import type { FloatingIpOptions } from "./controllers/floating_ip/job.ts";
import type { ImageReplicationOptions } from "./controllers/image_replication/job.ts";

/** The port-usage job's options. */
export function portUsageOptions(config: Config): PortUsageOptions {
  return {
    node: config.currentNodeName,
    mpdControllerCmName: config.mpdControllerCmName,
    // The flag was checked at start: a bad list exits 2 there.
    ranges: config.portRanges.trim() === "" ? null : parseRangeList(config.portRanges),
    scanMethod: config.portScanMethod,
    reservePortRanges: config.reservePortRanges,
    // A read from the cluster cache costs nothing: the switch is read at every run.
    switchKeepMs: config.clusterCache ? 0 : undefined,
  };
}

/** The core-version job's options. */
export function coreVersionOptions(config: Config): CoreVersionOptions {
  return {
    node: nodeKey(config.currentNodeName),
    versionLabels: config.coreVersionCmLabels,
    imageStore: config.imageStore,
    dockerHost: config.dockerHost,
    containerdAddress: config.containerdAddress,
    reportIntervalMs: config.versionCheckReportInterval,
    peerPodLabels: config.polarstackDaemonPodLabels,
    peerPort: config.port,
    peerTokenFile: config.peerTokenFile,
  };
}

/** The log-cleanup job's options: the root as given, N days and the folder limit. */
export function logCleanupOptions(config: Config): LogCleanupOptions {
  return {
    root: config.dbclusterLogDir,
    days: config.insFolderOverdueDays,
    maxFolders: config.logCleanupMaxFolders,
  };
}

/** The node-network job's options: this host's Node, the interface flag, the probe and heartbeat periods. */
export function nodeNetworkOptions(config: Config): NodeNetworkOptions {
  return {
    node: config.currentNodeName,
    netCardName: config.netCardName,
    probeIntervalMs: config.netProbeInterval,
    reportFrequencyMs: config.nodeStatusReportFrequency,
    settingsRefreshMs: config.clusterCache ? 0 : undefined,
  };
}

/** The floating-IP job's options: this host, the client NIC flag, the switches and the Lease timing. */
export function floatingIpOptions(config: Config): FloatingIpOptions {
  return {
    node: config.currentNodeName,
    netCardName: config.netCardName,
    addEnabled: config.jobEnableAddFip,
    delEnabled: config.jobEnableDelFip,
    leaseDurationSeconds: Math.max(1, Math.round(config.fipLeaseDuration / 1000)),
    renewIntervalMs: config.fipLeaseRenewInterval,
    // the cluster cache watches them: every run reads them from it, and a change runs the job at once
    settingsRefreshMs: config.clusterCache ? 0 : 60_000,
  };
}

/** The image-replication job's options: the mode, the store and peers (as core-version's), the limits. */
export function imageReplicationOptions(config: Config): ImageReplicationOptions {
  return {
    node: nodeKey(config.currentNodeName),
    mode: config.imageReplication,
    versionLabels: config.coreVersionCmLabels,
    imageStore: config.imageStore,
    dockerHost: config.dockerHost,
    containerdAddress: config.containerdAddress,
    peerPodLabels: config.polarstackDaemonPodLabels,
    peerPort: config.port,
    peerTokenFile: config.peerTokenFile,
    bytesPerSecond: config.imageReplicationBandwidth,
    stallMs: config.imageReplicationStallTimeout,
    // The store's root is the host's: a container reaches it only through the prefix (nsenter).
    diskThroughHost: config.hostCommandPrefix.trim() !== "",
  };
}
