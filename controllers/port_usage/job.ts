/** The port-usage job: which ports of the configured ranges a database could not listen on, published as a ConfigMap. */
import { JOBS } from "../../core/jobs.ts";
import type { Controller, JobCounter, RunContext, RunOutcome } from "../../core/types.ts";
import { SYSCTL_IPV4_DIR } from "../../host/sysctl_ports.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { createSettingReader } from "../../k8s/config_maps.ts";
import type { JobDeps } from "../deps.ts";
import { kernelOverlap } from "./ephemeral.ts";
import { printingEnabled, readRanges, SWITCH_CACHE_MS, usedPorts } from "./observe.ts";
import { portUsageConfigMapName } from "./plan.ts";
import { logLocalPorts, type Published, publishPorts } from "./publish.ts";
import { type InvalidRange, type PortRange, rangeSize } from "./ranges.ts";
import type { PortScanner } from "./scanner.ts";
import { newPortUsageState } from "./state.ts";

/** The JSON result of one run (`once port-usage --json`, `GET /api/v1/ports`). */
export interface PortUsageResult {
  /** This host's Node name. */
  readonly node: string;
  /** The ranges scanned. */
  readonly ranges: PortRange[];
  /** The used ports inside the ranges, sorted: the local port of some TCP socket, in any state. */
  readonly used: number[];
  /** Whether the ConfigMap was written (with --dry-run: would be; in local mode: the set changed since the last run). */
  readonly changed: boolean;
  /** The published ConfigMap's name. */
  readonly configMap: string;
  /** Whether port printing is on (`controller-config` key `enablePrintPort`). */
  readonly enabled: boolean;
  /** Annotation values skipped as invalid ranges. */
  readonly invalid: InvalidRange[];
  /** The ports of the ranges that the kernel may give an outgoing connection (ephemeral and not reserved). */
  readonly ephemeralOverlap: PortRange[];
}

/** The gauge of the overlap's size, without the daemon's prefix. */
export const OVERLAP_GAUGE = "port_usage_ephemeral_overlap_ports";

/** What the port-usage job takes from the flags. */
export interface PortUsageOptions {
  /** This host's Node name (`--current-node-name`); the ConfigMap's name has it in lower case. */
  readonly node: string;
  /** The ConfigMap whose annotations hold the ranges to scan (`--mpd-controller-cm-name`). */
  readonly mpdControllerCmName: string;
  /** The ranges of `--port-ranges`, which override the ConfigMap's; null to read the ConfigMap. */
  readonly ranges: readonly PortRange[] | null;
  /** How used ports are found (`--port-scan-method`). */
  readonly scanMethod: "netlink" | "proc" | "bind";
  /** Add the scanned ranges to `net.ipv4.ip_local_reserved_ports` (`--reserve-port-ranges`). */
  readonly reservePortRanges: boolean;
  /** How long a read of `enablePrintPort` is kept (default `SWITCH_CACHE_MS`; 0 with the cluster cache). */
  readonly switchKeepMs?: number;
}

/** What a test may replace. */
export interface PortUsageHooks {
  /** Replaces the host scan; the default follows `scanMethod`. */
  readonly scan?: PortScanner;
  /** Where `ip_local_port_range` and `ip_local_reserved_ports` are read (default /proc/sys/net/ipv4). */
  readonly sysctlDir?: string;
}

/** What one run saw: the ranges, the used ports in them, the ephemeral overlap; or why nothing was scanned. */
interface Observation {
  readonly ranges: PortRange[];
  readonly invalid: InvalidRange[];
  readonly used: number[];
  readonly overlap: PortRange[];
  /** Why no range was scanned (the ranges ConfigMap is missing or has no valid range), or null. */
  readonly unscanned: string | null;
}

/** Creates the port-usage job: every minute and once at start. */
export function createPortUsageController(
  deps: JobDeps,
  options: PortUsageOptions,
  hooks: PortUsageHooks = {},
): Controller<PortUsageResult> {
  const { kube, clock, events, log } = deps;
  const { node } = options;
  const state = newPortUsageState(hooks.scan);
  const readSetting = createSettingReader(log);
  const sysctlDir = hooks.sysctlDir ?? SYSCTL_IPV4_DIR;

  async function observe(api: KubeClient | null, ctx: RunContext): Promise<Observation> {
    const source = options.mpdControllerCmName;
    const parsed = await readRanges(api, state, { ranges: options.ranges, configMap: source, log, events });
    if (parsed === null || (api !== null && parsed.ranges.length === 0)) {
      // Nothing is measured: an empty ConfigMap, as the original wrote, rather than ports that are no longer looked at.
      state.lastScanned = null;
      const unscanned = parsed === null
        ? `ConfigMap "${source}" not found`
        : `no valid range in ConfigMap "${source}" annotations`;
      return { ranges: [], invalid: parsed?.invalid ?? [], used: [], overlap: [], unscanned };
    }
    const { ranges, invalid } = parsed;
    const used = await usedPorts(ranges, state, { method: options.scanMethod, log, signal: ctx.signal });
    const overlap = await kernelOverlap(ranges, state, {
      sysctlDir,
      reserve: options.reservePortRanges,
      dryRun: ctx.dryRun,
      log,
      events,
    });
    return { ranges, invalid, used, overlap, unscanned: null };
  }

  async function run(ctx: RunContext): Promise<RunOutcome<PortUsageResult>> {
    // Every call of this run stops when the run's time limit passes: an abandoned run writes nothing late.
    const api = kube?.withSignal(ctx.signal) ?? null;
    if (!(await printingEnabled(api, state, { clock, readSetting, keepMs: options.switchKeepMs ?? SWITCH_CACHE_MS }))) {
      return switchedOff(node);
    }
    const observed = await observe(api, ctx);
    // Plan and apply: the ConfigMap is planned from the one as it is now and written when the ports changed.
    const published = api === null
      ? logLocalPorts(observed.used, state, { node, log })
      : await publishPorts(api, observed.used, { node, clock, dryRun: ctx.dryRun, log, events });
    return outcome(observed, published, { node });
  }

  return {
    name: JOBS.portUsage.name,
    schedule: { cron: "* * * * *" },
    runAtStart: true,
    timeoutMs: 50_000,
    run,
  };
}

/** The outcome of a run with printing off: nothing scanned, nothing written. */
function switchedOff(node: string): RunOutcome<PortUsageResult> {
  const summary = `Port printing is off (ConfigMap "controller-config" enablePrintPort); nothing scanned`;
  return withGauge(summary, {
    node,
    ranges: [],
    used: [],
    changed: false,
    configMap: portUsageConfigMapName(node),
    enabled: false,
    invalid: [],
    ephemeralOverlap: [],
  });
}

/** The outcome of a run that scanned (or found nothing to scan) and published. */
function outcome(
  observed: Observation,
  published: Published,
  { node }: { readonly node: string },
): RunOutcome<PortUsageResult> {
  const { ranges, used, overlap } = observed;
  const name = portUsageConfigMapName(node);
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const summary = observed.unscanned !== null
    ? `No port ranges to scan (${observed.unscanned}); ConfigMap "${name}" with no ports ${published.verb}`
    : `${plural(used.length, "used port")} in ${plural(ranges.length, "range")}` +
      (overlap.length > 0 ? ` (${plural(rangeSize(overlap), "port")} in the kernel's ephemeral range)` : "") +
      `; ConfigMap "${name}" ${published.verb}`;
  return withGauge(summary, {
    node,
    ranges,
    used,
    changed: published.changed,
    configMap: name,
    enabled: true,
    invalid: observed.invalid,
    ephemeralOverlap: overlap,
  });
}

function withGauge(summary: string, result: PortUsageResult): RunOutcome<PortUsageResult> {
  const gauge: JobCounter = {
    name: OVERLAP_GAUGE,
    help: "Ports of the scanned ranges that the kernel may give an outgoing connection (ephemeral, not reserved)",
    value: rangeSize(result.ephemeralOverlap),
    kind: "gauge",
  };
  const used: JobCounter = {
    name: "port_usage_used_ports",
    help: "Used ports found in the scanned ranges (0 while port printing is off)",
    value: result.used.length,
    kind: "gauge",
  };
  return { summary, result, counters: [gauge, used] };
}
