/** The daemon's flags: names and defaults of the original, parsers, and the Config they make. */
import { parseRangeList } from "./controllers/port_usage/ranges.ts";
import { nodeKey } from "./core/addresses.ts";

/** Everything the daemon is configured with. Durations are milliseconds. */
export interface Config {
  readonly master: string;
  readonly kubeconfig: string;
  readonly local: boolean;
  readonly nodeStatusUpdateFrequency: number;
  readonly currentNodeName: string;
  readonly dbclusterLogDir: string;
  readonly insFolderOverdueDays: number;
  readonly developMode: boolean;
  readonly port: number;
  readonly eventsEnableUpload: boolean;
  readonly eventsUploadUrl: string;
  readonly eventsUploadTimeout: number;
  readonly jobEnableDelFip: boolean;
  readonly jobEnableAddFip: boolean;
  readonly polarstackDaemonPodLabels: string;
  readonly coreVersionCmLabels: string;
  readonly mpdControllerCmName: string;
  readonly serviceOwnerDbCluster: string;
  readonly namespace: string;
  readonly kubeApiQps: number;
  readonly kubeApiBurst: number;
  readonly shutdownGracePeriod: number;
  readonly hostCommandPrefix: string;
  readonly portScanMethod: "netlink" | "proc" | "bind";
  readonly portRanges: string;
  readonly reservePortRanges: boolean;
  readonly dockerHost: string;
  readonly imageStore: "auto" | "docker" | "containerd";
  readonly versionCheckReportInterval: number;
  readonly logCleanupMaxFolders: number;
  readonly netProbeInterval: number;
  readonly netCardName: string;
  readonly nodeStatusReportFrequency: number;
  readonly apiAuth: "tokenreview" | "none" | "";
  readonly apiAllowedUsers: string;
  readonly peerTokenFile: string;
  readonly v: number;
  readonly logtostderr: boolean;
  readonly alsologtostderr: boolean;
  readonly logDir: string;
  readonly logFile: string;
  readonly logFileMaxSize: number;
  readonly logFlushFrequency: number;
  readonly stderrthreshold: number;
  readonly vmodule: string;
}

/**
 * V8 flags the daemon runs with (`deno task start`, the compiled binary, the tests' daemon processes). A 1 MB
 * semi-space keeps the young generation small: under a steady HTTP load the resident memory stays flat at about
 * 87 MB instead of swinging between 89 and 136 MB, for the same throughput.
 */
export const V8_FLAGS: readonly string[] = ["--max-semi-space-size=1"];

/** A flag value that does not parse; the message names the flag and why. */
export class FlagError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration (`500ms`, `3s`, `1m`, `1h30m`, `1.5h`) into milliseconds; throws on bad input. */
export function parseGoDuration(text: string): number {
  const s = text.trim();
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * UNITS[m[2]];
    matched += m[0].length;
  }
  if (s === "" || matched !== s.length) {
    throw new Error(`"${text}" is not a duration (examples: 500ms, 3s, 1m, 1h30m)`);
  }
  return total;
}

/** Parses a boolean the way Go's strconv.ParseBool does. */
export function parseGoBool(text: string | boolean): boolean {
  if (typeof text === "boolean") return text;
  const s = text.trim();
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  throw new Error(`"${text}" is not a boolean (true or false)`);
}

function integer(min: number, max: number) {
  return (text: string): number => {
    const s = text.trim();
    if (!/^[-+]?\d+$/.test(s)) throw new Error(`"${text}" is not a whole number`);
    const n = Number(s);
    if (n < min || n > max) throw new Error(`${n} is out of range ${min}..${max}`);
    return n;
  };
}

function positiveNumber(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`"${text}" is not a number above 0`);
  return n;
}

function duration(min: number) {
  return (text: string): number => {
    const ms = parseGoDuration(text);
    if (ms < min) throw new Error(`${text} is shorter than ${min} ms`);
    return ms;
  };
}

function oneOf<T extends string>(...values: T[]) {
  return (text: string): T => {
    if (!values.includes(text as T)) throw new Error(`"${text}" is not one of ${values.join(", ")}`);
    return text as T;
  };
}

const text = (s: string) => s;

// A bad list exits 2 at start like every other bad flag, not 1 at the first scan.
function portRangeList(s: string): string {
  if (s.trim() !== "") parseRangeList(s);
  return s;
}

/** One flag: its name as typed, its Config key, its default (as text, as on the command line), its parser. */
export interface FlagSpec {
  /** Name without dashes, e.g. `ins-folder-overdue-days`. */
  readonly name: string;
  /** Config key. */
  readonly key: keyof Config;
  /** What it does, for --help. */
  readonly description: string;
  /** Default as text; undefined means "decided at start" (described in the help). */
  readonly defaultText?: string;
  /** Whether it is a boolean (`--x`, `--x=true`, `--x=false`). */
  readonly boolean?: boolean;
  /** Turns the text into the value; throws with the reason. */
  readonly parse: (text: string) => unknown;
  /** Help group. */
  readonly group: string;
}

type FlagFields = Omit<FlagSpec, "name" | "key" | "parse" | "boolean">;

function flag(name: string, key: keyof Config, fields: FlagFields & { parse: (text: string) => unknown }): FlagSpec {
  return { name, key, ...fields };
}

function boolFlag(name: string, key: keyof Config, fields: FlagFields): FlagSpec {
  return { name, key, ...fields, parse: parseGoBool, boolean: true };
}

/** Every flag of the daemon, in help order. The original's flags keep their names and defaults. */
export const FLAGS: readonly FlagSpec[] = [
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
  flag("kube-api-qps", "kubeApiQps", {
    group: "cluster",
    defaultText: "5",
    parse: positiveNumber,
    description: "Client-side limit of API requests per second",
  }),
  flag("kube-api-burst", "kubeApiBurst", {
    group: "cluster",
    defaultText: "10",
    parse: integer(1, 10_000),
    description: "Client-side burst of API requests",
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
    parse: oneOf("tokenreview", "none"),
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
  flag("version-check-report-interval", "versionCheckReportInterval", {
    group: "core-version",
    defaultText: "1h",
    parse: duration(1000),
    description: "Rewrite the availability ConfigMap at least this often",
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
  flag("service-owner-db-cluster", "serviceOwnerDbCluster", {
    group: "log-cleanup",
    defaultText: "mpdcluster",
    parse: text,
    description: "Accepted for compatibility with the original",
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
  boolFlag("job-enable-del-fip", "jobEnableDelFip", {
    group: "compat",
    defaultText: "true",
    description: "Accepted for compatibility with the original",
  }),
  boolFlag("job-enable-add-fip", "jobEnableAddFip", {
    group: "compat",
    defaultText: "true",
    description: "Accepted for compatibility with the original",
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
];

/** The environment variable whose lines are flags read before the command line's (the DaemonSet sets it). */
export const ARGS_ENV = "POLARSTACK_DAEMON_ARGS";

/** The flags in `$POLARSTACK_DAEMON_ARGS`: one a line, trimmed; blank lines and `#` comments skipped. */
export function argsFromEnv(value: string | undefined): string[] {
  return (value ?? "").split("\n").map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#"));
}

/** Environment used for defaults decided at start. */
export interface ConfigEnv {
  /** Environment variables. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** This machine's host name. */
  readonly hostname: string;
}

/** Turns raw flag texts (as commander gives them) into a Config; throws FlagError naming the flag. */
export function buildConfig(raw: Record<string, unknown>, where: ConfigEnv): Config {
  const values: Record<string, unknown> = {};
  for (const spec of FLAGS) {
    const given = raw[spec.key];
    const input = given === undefined ? spec.defaultText : given;
    if (input === undefined) continue;
    try {
      values[spec.key] = spec.boolean && input === true ? true : spec.parse(String(input));
    } catch (error) {
      throw new FlagError(`Invalid value for --${spec.name}: ${(error as Error).message}`);
    }
  }
  const env = where.env;
  values.currentNodeName = nodeKey(String(values.currentNodeName || env.CURRENT_NODE_NAME || where.hostname));
  values.dockerHost ??= env.DOCKER_HOST || "unix:///var/run/docker.sock";
  if (values.netProbeInterval === undefined) {
    const fromEnv = env.ProbeJobPeriod;
    if (fromEnv !== undefined && fromEnv !== "") {
      const seconds = Number(fromEnv);
      if (!Number.isInteger(seconds) || seconds < 1) {
        throw new FlagError(`Invalid value for $ProbeJobPeriod: "${fromEnv}" is not a whole number of seconds`);
      }
      values.netProbeInterval = seconds * 1000;
    } else {
      values.netProbeInterval = 3000;
    }
  }
  values.apiAuth ??= "";
  if (!values.logFile && values.logDir) values.logFile = `${values.logDir}/polarstack-daemon.log`;
  return values as unknown as Config;
}

/** A Config with every default, for tests and tools. */
export function defaultConfig(overrides: Partial<Config> = {}): Config {
  return { ...buildConfig({}, { env: {}, hostname: "localhost" }), ...overrides };
}
