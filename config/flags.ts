/** The daemon's flags: names and defaults of the original, their parsers, and the flags read from the environment. */
import { parseRangeList } from "../controllers/port_usage/ranges.ts";
import { byteCount, duration, integer, oneOf, parseGoBool, positiveNumber, text } from "./values.ts";

// A bad list exits 2 at start like every other bad flag, not 1 at the first scan.
function portRangeList(s: string): string {
  if (s.trim() !== "") parseRangeList(s);
  return s;
}

/** One flag: its name as typed, its Config key, its default (as text, as on the command line), its parser. */
export interface FlagSpec<K extends string = string, T = unknown> {
  /** Name without dashes, e.g. `ins-folder-overdue-days`. */
  readonly name: string;
  /** Config key. */
  readonly key: K;
  /** What it does, for --help. */
  readonly description: string;
  /** Default as text; undefined means "decided at start" (described in the help). */
  readonly defaultText?: string;
  /** Whether it is a boolean (`--x`, `--x=true`, `--x=false`). */
  readonly boolean?: boolean;
  /** Turns the text into the value; throws with the reason. */
  readonly parse: (text: string) => T;
  /** Help group. */
  readonly group: string;
}

type FlagFields = Omit<FlagSpec, "name" | "key" | "parse" | "boolean">;

function flag<const K extends string, T>(
  name: string,
  key: K,
  fields: FlagFields & { parse: (text: string) => T },
): FlagSpec<K, T> {
  return { name, key, ...fields };
}

function boolFlag<const K extends string>(name: string, key: K, fields: FlagFields): FlagSpec<K, boolean> {
  return { name, key, ...fields, parse: parseGoBool, boolean: true };
}

/** Every flag of the daemon, in help order. The original's flags keep their names and defaults; Config derives from it. */
export const FLAGS = [
  flag("master", "master", {
    group: "cluster",
    defaultText: "",
    parse: text,
    description: "API server URL (overrides the kubeconfig's server)",
  }),
  flag("kubeconfig", "kubeconfig", {
    group: "cluster",
    defaultText: "",
    parse: text,
    description: "Path to a kubeconfig (else in-cluster, $KUBECONFIG, ~/.kube/config)",
  }),
  boolFlag("local", "local", {
    group: "cluster",
    defaultText: "false",
    description: "Local mode: run every job on this host, publish nothing, delete no instance folder",
  }),
  flag("current-node-name", "currentNodeName", {
    group: "cluster",
    parse: text,
    description: "This host's Node name (default $CURRENT_NODE_NAME, else the host name)",
  }),
  flag("namespace", "namespace", {
    group: "cluster",
    defaultText: "kube-system",
    parse: text,
    description: "Namespace of the daemon's ConfigMaps and pods",
  }),
  // Room for a failover: each floating IP that moves costs its two hosts a Lease write, a report and an Event, and a
  // host renews every Lease it holds every 4 s.
  flag("kube-api-qps", "kubeApiQps", {
    group: "cluster",
    defaultText: "10",
    parse: positiveNumber,
    description: "Client-side limit of API requests per second",
  }),
  flag("kube-api-burst", "kubeApiBurst", {
    group: "cluster",
    defaultText: "20",
    parse: integer(1, 10_000),
    description: "Client-side burst of API requests",
  }),
  boolFlag("cluster-cache", "clusterCache", {
    group: "cluster",
    defaultText: "true",
    description:
      "Keep the ConfigMaps the jobs read by list+watch and run a job when one changes (false: read them at every run)",
  }),
  flag("node-status-update-frequency", "nodeStatusUpdateFrequency", {
    group: "cluster",
    defaultText: "10s",
    parse: duration(0),
    description: "Accepted for compatibility with the original (unused: see --node-status-report-frequency)",
  }),
  flag("port", "port", { group: "api", defaultText: "8900", parse: integer(1, 65535), description: "HTTP API port" }),
  flag("api-auth", "apiAuth", {
    group: "api",
    parse: oneOf("tokenreview", "none", ""),
    description: "Authentication of the POST endpoints: tokenreview or none (default tokenreview, none in local mode)",
  }),
  flag("api-allowed-users", "apiAllowedUsers", {
    group: "api",
    defaultText: "system:serviceaccount:kube-system:polarstack-daemon",
    parse: text,
    description: "Comma-separated users allowed to call the POST endpoints",
  }),
  flag("peer-token-file", "peerTokenFile", {
    group: "api",
    defaultText: "/var/run/secrets/polarstack-daemon/token",
    parse: text,
    description: "Token (audience polarstack-daemon) the fan-out sends to the other daemons; re-read when it changes",
  }),
  flag("shutdown-grace-period", "shutdownGracePeriod", {
    group: "api",
    defaultText: "20s",
    parse: duration(0),
    description: "How long a running job may finish after SIGTERM",
  }),
  flag("host-command-prefix", "hostCommandPrefix", {
    group: "host",
    defaultText: "",
    parse: text,
    description: 'Space-separated command put before every host command, e.g. "nsenter -t 1 -m --"',
  }),
  flag("mpd-controller-cm-name", "mpdControllerCmName", {
    group: "port-usage",
    defaultText: "polardb4mpd-controller",
    parse: text,
    description: "ConfigMap whose annotations hold the port ranges to scan",
  }),
  flag("port-scan-method", "portScanMethod", {
    group: "port-usage",
    defaultText: "netlink",
    parse: oneOf("netlink", "proc", "bind"),
    description: "How used ports are found: netlink (sock_diag, /proc if unavailable), proc (/proc/net/tcp*) or bind " +
      "(the original's probe)",
  }),
  flag("port-ranges", "portRanges", {
    group: "port-usage",
    defaultText: "",
    parse: portRangeList,
    description: "Port ranges to scan, e.g. 5400-5800,30000-39999 (overrides the ConfigMap)",
  }),
  boolFlag("reserve-port-ranges", "reservePortRanges", {
    group: "port-usage",
    defaultText: "false",
    description: "Add the scanned ranges to net.ipv4.ip_local_reserved_ports, so outgoing connections never take them",
  }),
  flag("core-version-cm-labels", "coreVersionCmLabels", {
    group: "core-version",
    defaultText: "configtype=minor_version_info,dbClusterMode=WriteReadMore",
    parse: text,
    description: "Label selector of the version ConfigMaps",
  }),
  flag("polarstack-daemon-pod-labels", "polarstackDaemonPodLabels", {
    group: "core-version",
    defaultText: "app=polarstack-daemon",
    parse: text,
    description: "Label selector of the other daemons' pods",
  }),
  flag("docker-host", "dockerHost", {
    group: "core-version",
    parse: text,
    description: "Docker Engine socket (default $DOCKER_HOST or unix:///var/run/docker.sock)",
  }),
  flag("image-store", "imageStore", {
    group: "core-version",
    defaultText: "auto",
    parse: oneOf("auto", "docker", "containerd"),
    description: "Image store: auto, docker or containerd",
  }),
  flag("containerd-address", "containerdAddress", {
    group: "core-version",
    defaultText: "",
    parse: text,
    description: "containerd socket for every ctr call (default ctr's, /run/containerd/containerd.sock)",
  }),
  flag("version-check-report-interval", "versionCheckReportInterval", {
    group: "core-version",
    defaultText: "1h",
    parse: duration(1000),
    description: "Rewrite the availability ConfigMap at least this often",
  }),
  flag("image-replication", "imageReplication", {
    group: "image-replication",
    defaultText: "off",
    parse: oneOf("off", "auto"),
    description:
      "auto: after each version check, copy the images of every version missing here from a peer that has it",
  }),
  flag("image-export-concurrency", "imageExportConcurrency", {
    group: "image-replication",
    defaultText: "2",
    parse: integer(1, 64),
    description: "Image exports this host serves to its peers at once (more get 429)",
  }),
  flag("image-replication-bandwidth", "imageReplicationBandwidth", {
    group: "image-replication",
    defaultText: "0",
    parse: byteCount,
    description: "Cap of an incoming image copy in bytes per second, e.g. 100M; 0: no cap",
  }),
  flag("image-replication-stall-timeout", "imageReplicationStallTimeout", {
    group: "image-replication",
    defaultText: "60s",
    parse: duration(100),
    description:
      "An image copy that receives nothing for this long, or whose image store takes nothing, moves on to the next peer",
  }),
  flag("dbcluster-log-dir", "dbclusterLogDir", {
    group: "log-cleanup",
    defaultText: "/flash/polardb_dbcluster/",
    parse: text,
    description: "Root of the database instances' log folders",
  }),
  flag("ins-folder-overdue-days", "insFolderOverdueDays", {
    group: "log-cleanup",
    defaultText: "3",
    parse: integer(1, 36_500),
    description: "Days after which logs and idle instance folders are removed",
  }),
  flag("log-cleanup-max-folders", "logCleanupMaxFolders", {
    group: "log-cleanup",
    defaultText: "20",
    parse: integer(0, 1_000_000),
    description: "A run that would remove more instance folders removes none",
  }),
  flag("net-card-name", "netCardName", {
    group: "node-network",
    defaultText: "",
    parse: text,
    description: "Client-network interface (overrides ccm-config NET_CARD_NAME, default bond1)",
  }),
  flag("net-probe-interval", "netProbeInterval", {
    group: "node-network",
    parse: duration(100),
    description: "Network probe period (default 3s, or $ProbeJobPeriod seconds)",
  }),
  flag("node-status-report-frequency", "nodeStatusReportFrequency", {
    group: "node-network",
    defaultText: "1m",
    parse: duration(1000),
    description: "Heartbeat PATCH period when nothing changed",
  }),
  boolFlag("events-enable-upload", "eventsEnableUpload", {
    group: "events",
    defaultText: "false",
    description: "Also upload events over HTTP (the original's format)",
  }),
  flag("events-upload-url", "eventsUploadUrl", {
    group: "events",
    defaultText: "http://rds-redline-worker-log-api.rds:8080/",
    parse: text,
    description: "Event upload base URL",
  }),
  flag("events-upload-timeout", "eventsUploadTimeout", {
    group: "events",
    defaultText: "3",
    parse: integer(1, 600),
    description: "Event upload timeout in seconds",
  }),
  boolFlag("develop-mode", "developMode", {
    group: "compat",
    defaultText: "false",
    description: "Accepted for compatibility with the original",
  }),
  boolFlag("job-enable-add-fip", "jobEnableAddFip", {
    group: "floating-ip",
    defaultText: "true",
    description: "Add a cluster's floating IP on this host when it holds the leader (with controller-config enableVip)",
  }),
  boolFlag("job-enable-del-fip", "jobEnableDelFip", {
    group: "floating-ip",
    defaultText: "true",
    description: "Remove a floating IP this host tagged once it is no longer this host's",
  }),
  flag("service-owner-db-cluster", "serviceOwnerDbCluster", {
    group: "floating-ip",
    defaultText: "mpdcluster",
    parse: oneOf("mpdcluster"),
    description: "The kind whose spec.netCfg.leaderFloatingIP is watched (mpd.polardb.aliyun.com/v1 MPDCluster)",
  }),
  flag("fip-lease-duration", "fipLeaseDuration", {
    group: "floating-ip",
    defaultText: "15s",
    parse: duration(1000),
    description: "How long a floating IP's Lease holds without renewal",
  }),
  flag("fip-lease-renew-interval", "fipLeaseRenewInterval", {
    group: "floating-ip",
    defaultText: "5s",
    parse: duration(500),
    description: "The floating-IP job's period: how often a held Lease is renewed",
  }),
  flag("v", "v", {
    group: "logging",
    defaultText: "0",
    parse: integer(0, 10),
    description: "Log verbosity (klog): 0-3 info, 4 debug (routine runs too), 5+ trace",
  }),
  flag("vmodule", "vmodule", {
    group: "logging",
    defaultText: "",
    parse: text,
    description: "Accepted (klog) and ignored with a warning: no per-file verbosity",
  }),
  boolFlag("logtostderr", "logtostderr", {
    group: "logging",
    defaultText: "true",
    description: "Log to standard error (klog)",
  }),
  boolFlag("alsologtostderr", "alsologtostderr", {
    group: "logging",
    defaultText: "false",
    description: "Log to standard error as well as to the file (klog)",
  }),
  flag("log-dir", "logDir", {
    group: "logging",
    defaultText: "",
    parse: text,
    description: "Folder of the log file when --log-file is not given (klog)",
  }),
  flag("log-file", "logFile", {
    group: "logging",
    defaultText: "",
    parse: text,
    description: "Also write logs (JSON lines) to this file (klog)",
  }),
  flag("log-file-max-size", "logFileMaxSize", {
    group: "logging",
    defaultText: "1800",
    parse: integer(0, 1_000_000),
    description: "MB at which the log file is renamed to <file>.1 and a new one begun; 0: no limit (klog)",
  }),
  flag("log-flush-frequency", "logFlushFrequency", {
    group: "logging",
    defaultText: "5s",
    parse: duration(0),
    description: "Accepted (klog); lines are written at once",
  }),
  flag("stderrthreshold", "stderrthreshold", {
    group: "logging",
    defaultText: "2",
    parse: integer(0, 3),
    description:
      "With --logtostderr=false, lines at this level and above also go to stderr (klog): 0 info, 1 warning, 2 error, 3 fatal",
  }),
] as const satisfies readonly FlagSpec<string, unknown>[];

/** One flag of the table. */
export type Flag = (typeof FLAGS)[number];

/** The environment variable whose lines are flags read before the command line's (the DaemonSet sets it). */
export const ARGS_ENV = "POLARSTACK_DAEMON_ARGS";

/** The flags in `$POLARSTACK_DAEMON_ARGS`: one a line, trimmed; blank lines and `#` comments skipped. */
export function argsFromEnv(value: string | undefined): string[] {
  return (value ?? "").split("\n").map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#"));
}
