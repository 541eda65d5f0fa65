/** The port-usage job: which ports of the configured ranges a database could not listen on, published as a ConfigMap. */
import { formatPortList, readEphemeralPorts, SYSCTL_IPV4_DIR, writeReservedPorts } from "../../host/sysctl_ports.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { applyConfigMap, createSettingReader } from "../../k8s/config_maps.ts";
import { parseLenientBool } from "../../k8s/values.ts";
import type { JobDeps } from "../deps.ts";
import type { Controller, JobCounter, RunContext, RunOutcome } from "../../core/types.ts";
import {
  CONFIGMAP_MAX_BYTES,
  needsConfirmation,
  planPortUsage,
  portUsageConfigMapName,
  type PortUsagePlan,
  unionOfScans,
} from "./plan.ts";
import {
  ephemeralOverlap,
  type InvalidRange,
  type ParsedRanges,
  parsePortRanges,
  parseRangeList,
  planReservation,
  type PortRange,
  rangeSize,
  usedPortsInRanges,
} from "./ranges.ts";
import { createPortScanner, type PortScanner } from "./scanner.ts";

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

/** How long the `enablePrintPort` switch is cached, as the original. */
export const SWITCH_CACHE_MS = 30 * 60_000;

/** The gauge of the overlap's size, without the daemon's prefix. */
export const OVERLAP_GAUGE = "port_usage_ephemeral_overlap_ports";

/** Options of the controller. */
export interface PortUsageControllerOptions {
  /** Replaces the host scan (tests); the default follows `--port-scan-method`. */
  readonly scan?: PortScanner;
  /** Where `ip_local_port_range` and `ip_local_reserved_ports` are read (default /proc/sys/net/ipv4). */
  readonly sysctlDir?: string;
}

function sameSet(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((port, i) => port === b[i]);
}

/** How many invalid ranges are named in the log and the Event; the rest are counted. */
const REPORTED_INVALID = 10;

/** Cuts hostile text for a log line or an Event: at most `max` characters, and how long it was. */
function clip(text: string, max = 80): string {
  return text.length <= max ? text : `${text.slice(0, max)}... (${text.length} characters)`;
}

/** How many overlapping ranges the overlap Event names; the rest are counted. */
const REPORTED_OVERLAP = 10;

/** Creates the port-usage job: every minute and once at start. */
export function createPortUsageController(
  deps: JobDeps,
  options: PortUsageControllerOptions = {},
): Controller<PortUsageResult> {
  const { config, kube, clock, events, log } = deps;
  const node = config.currentNodeName;
  const name = portUsageConfigMapName(node);
  const sysctlDir = options.sysctlDir ?? SYSCTL_IPV4_DIR;
  let scan: PortScanner | null = options.scan ?? null;
  let switchCache: { value: boolean; readAt: number } | null = null;
  const readSetting = createSettingReader(log);
  let lastReportedInvalid = "";
  let lastReportedOverlap = "";
  let lastSysctlError = "";
  let lastLocalUsed: number[] | null = null;
  let lastScanned: number[] | null = null;

  async function printingEnabled(api: KubeClient | null): Promise<boolean> {
    if (api === null) return true;
    const now = clock.now().getTime();
    if (switchCache && now - switchCache.readAt < SWITCH_CACHE_MS) return switchCache.value;
    const text = await readSetting(api, { configMap: "controller-config", key: "enablePrintPort", fallback: "true" });
    const value = parseLenientBool(text, true);
    switchCache = { value, readAt: now };
    return value;
  }

  /** The ranges to scan, or null when the ranges ConfigMap is missing. */
  async function readRanges(api: KubeClient | null): Promise<ParsedRanges | null> {
    if (config.portRanges.trim() !== "") return { ranges: parseRangeList(config.portRanges), invalid: [] };
    if (api === null) return { ranges: [[1, 65535]], invalid: [] };
    const configMap = await api.getConfigMap(config.mpdControllerCmName);
    if (configMap === null) return null;
    const parsed = parsePortRanges(configMap.metadata?.annotations);
    reportInvalid(parsed.invalid);
    return parsed;
  }

  function reportInvalid(invalid: readonly InvalidRange[]): void {
    const fingerprint = JSON.stringify(invalid);
    if (invalid.length === 0 || fingerprint === lastReportedInvalid) {
      lastReportedInvalid = invalid.length === 0 ? "" : fingerprint;
      return;
    }
    lastReportedInvalid = fingerprint;
    const cm = config.mpdControllerCmName;
    // Annotations are anyone's to write: a few readable lines and one short Event, whatever their number and size.
    const shown = invalid.slice(0, REPORTED_INVALID).map((item) => ({
      key: clip(item.key),
      value: clip(item.value),
      reason: clip(item.reason),
    }));
    for (const item of shown) {
      log.warn("Skipping port range {value} of ConfigMap {configMap} annotation {key}: {reason}", {
        configMap: cm,
        ...item,
      });
    }
    const more = invalid.length - shown.length;
    if (more > 0) {
      log.warn("Skipping {more} more invalid port ranges of ConfigMap {configMap}", { more, configMap: cm });
    }
    const list = shown.map((item) => `${item.key}="${item.value}" (${item.reason})`).join(", ") +
      (more > 0 ? `, and ${more} more` : "");
    events.record({
      job: "port-usage",
      type: "Warning",
      reason: "PortRangeInvalid",
      message: `Skipped invalid port ranges in ConfigMap "${cm}" annotations: ${list}`,
    });
  }

  /** Adds the ranges to `ip_local_reserved_ports` when asked to and when it changes the list. */
  async function reserve(ranges: readonly PortRange[], reserved: readonly PortRange[], dryRun: boolean) {
    const plan = planReservation(reserved, ranges);
    if (!plan.changed) return false;
    const fields = { added: formatPortList(plan.added), list: formatPortList(plan.reserved) };
    if (dryRun) {
      log.info("Dry run: would add {added} to net.ipv4.ip_local_reserved_ports, making it {list}", fields);
      return false;
    }
    try {
      await writeReservedPorts(plan.reserved, sysctlDir);
    } catch (error) {
      log.warn("{cause}: outgoing connections can still take ports {added}", {
        cause: (error as Error).message,
        added: fields.added,
      });
      return false;
    }
    log.info("Added {added} to net.ipv4.ip_local_reserved_ports, which is now {list}", fields);
    return true;
  }

  /** The ephemeral overlap of the ranges, after reserving them if `--reserve-port-ranges`; [] when unreadable. */
  async function kernelOverlap(ranges: readonly PortRange[], dryRun: boolean): Promise<PortRange[]> {
    try {
      let kernel = await readEphemeralPorts(sysctlDir);
      if (config.reservePortRanges && await reserve(ranges, kernel.reserved, dryRun)) {
        // Read back what the kernel kept: it is the truth about which ports it hands out.
        kernel = await readEphemeralPorts(sysctlDir);
      }
      lastSysctlError = "";
      const overlap = ephemeralOverlap(ranges, kernel);
      if (!dryRun) reportOverlap(overlap, kernel.range);
      return overlap;
    } catch (error) {
      const cause = (error as Error).message;
      if (cause !== lastSysctlError) log.warn("{cause}: the ephemeral overlap is not reported", { cause });
      lastSysctlError = cause;
      return [];
    }
  }

  function reportOverlap(overlap: readonly PortRange[], ephemeral: PortRange): void {
    const fingerprint = overlap.length === 0 ? "" : JSON.stringify([overlap, ephemeral]);
    if (fingerprint === lastReportedOverlap) return;
    lastReportedOverlap = fingerprint;
    if (overlap.length === 0) return;
    const shown = formatPortList(overlap.slice(0, REPORTED_OVERLAP)) +
      (overlap.length > REPORTED_OVERLAP ? ` and ${overlap.length - REPORTED_OVERLAP} more ranges` : "");
    const count = rangeSize(overlap);
    const message = `Ports ${shown} (${count} ports) of the scanned ranges are in net.ipv4.ip_local_port_range ` +
      `(${ephemeral[0]}-${ephemeral[1]}) and not in net.ipv4.ip_local_reserved_ports: an outgoing connection can ` +
      `take one before a database listens on it; add them to sysctl net.ipv4.ip_local_reserved_ports ` +
      `(or run the daemon with --reserve-port-ranges)`;
    log.warn("{message}", { message });
    events.record({ job: "port-usage", type: "Warning", reason: "EphemeralPortOverlap", message });
  }

  /** The used ports of the ranges; a port missing since the last run is dropped only if a second scan agrees. */
  async function usedPorts(ranges: readonly PortRange[], signal: AbortSignal): Promise<number[]> {
    scan ??= createPortScanner(config.portScanMethod, log);
    const first = usedPortsInRanges(await scan(ranges, signal), ranges);
    signal.throwIfAborted();
    if (!needsConfirmation(lastScanned, first)) return lastScanned = first;
    const second = usedPortsInRanges(await scan(ranges, signal), ranges);
    signal.throwIfAborted();
    return lastScanned = unionOfScans(first, second);
  }

  function outcome(
    summary: string,
    result: Omit<PortUsageResult, "node" | "configMap">,
  ): RunOutcome<PortUsageResult> {
    const gauge: JobCounter = {
      name: OVERLAP_GAUGE,
      help: "Ports of the scanned ranges that the kernel may give an outgoing connection (ephemeral, not reserved)",
      value: rangeSize(result.ephemeralOverlap),
      kind: "gauge",
    };
    return {
      summary,
      result: {
        node,
        ranges: result.ranges,
        used: result.used,
        changed: result.changed,
        configMap: name,
        enabled: result.enabled,
        invalid: result.invalid,
        ephemeralOverlap: result.ephemeralOverlap,
      },
      counters: [gauge],
    };
  }

  function tooLargeError(plan: PortUsagePlan, count: number, dryRun: boolean): Error {
    const message = `Cannot write ConfigMap "${name}": ${count} used ports take ${plan.sizeBytes} bytes, ` +
      `more than the limit of ${CONFIGMAP_MAX_BYTES}; the previous content stays`;
    if (!dryRun) events.record({ job: "port-usage", type: "Warning", reason: "PortUsageTooLarge", message });
    return new Error(message);
  }

  /** Writes the ports when they changed (or says it would, in a dry run); returns the verb for the summary. */
  async function publish(api: KubeClient, used: readonly number[], dryRun: boolean) {
    if (dryRun) {
      const plan = planPortUsage({ node, used, existing: await api.getConfigMap(name), now: clock.now() });
      if (plan.changed && plan.tooLarge) throw tooLargeError(plan, used.length, true);
      return { changed: plan.changed, verb: plan.changed ? "would be written (dry run)" : "unchanged (dry run)" };
    }
    const applied = await applyConfigMap(api, name, {
      plan: (current) => planPortUsage({ node, used, existing: current, now: clock.now() }),
      desired: (plan) => (plan.changed && !plan.tooLarge ? plan.configMap : null),
    });
    const { plan } = applied;
    if (plan.changed && plan.tooLarge) throw tooLargeError(plan, used.length, false);
    if (applied.written) {
      log.info("Wrote ConfigMap {name} with {count} used ports", { name, count: used.length });
    }
    return {
      changed: applied.written,
      verb: applied.created ? "created" : applied.written ? "updated" : "unchanged",
    };
  }

  async function run(ctx: RunContext): Promise<RunOutcome<PortUsageResult>> {
    // Every call of this run stops when the run's time limit passes: an abandoned run writes nothing late.
    const api = kube?.withSignal(ctx.signal) ?? null;
    const nothing = { ranges: [], used: [], invalid: [], ephemeralOverlap: [] };
    if (!(await printingEnabled(api))) {
      return outcome(`Port printing is off (ConfigMap "controller-config" enablePrintPort); nothing scanned`, {
        ...nothing,
        changed: false,
        enabled: false,
      });
    }
    const parsed = await readRanges(api);
    if (api !== null && (parsed === null || parsed.ranges.length === 0)) {
      // Nothing is measured: an empty ConfigMap, as the original wrote, rather than ports that are no longer looked at.
      const why = parsed === null
        ? `ConfigMap "${config.mpdControllerCmName}" not found`
        : `no valid range in ConfigMap "${config.mpdControllerCmName}" annotations`;
      lastScanned = null;
      const { changed, verb } = await publish(api, [], ctx.dryRun);
      return outcome(`No port ranges to scan (${why}); ConfigMap "${name}" with no ports ${verb}`, {
        ...nothing,
        invalid: parsed?.invalid ?? [],
        changed,
        enabled: true,
      });
    }
    const { ranges, invalid } = parsed!;
    const used = await usedPorts(ranges, ctx.signal);
    const overlap = await kernelOverlap(ranges, ctx.dryRun);
    const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
    const counted = `${plural(used.length, "used port")} in ${plural(ranges.length, "range")}` +
      (overlap.length > 0 ? ` (${plural(rangeSize(overlap), "port")} in the kernel's ephemeral range)` : "");
    const result = (changed: boolean) => ({ ranges, used, changed, enabled: true, invalid, ephemeralOverlap: overlap });

    if (api === null) {
      const changed = lastLocalUsed === null || !sameSet(lastLocalUsed, used);
      lastLocalUsed = used;
      if (changed) {
        log.info("Local mode: would write ConfigMap {name} with {count} ports: {ports}", {
          name,
          count: used.length,
          ports: used.join(","),
        });
      }
      return outcome(`${counted}; ConfigMap "${name}" not written (local mode)`, result(changed));
    }
    const { changed, verb } = await publish(api, used, ctx.dryRun);
    return outcome(`${counted}; ConfigMap "${name}" ${verb}`, result(changed));
  }

  return {
    name: "port-usage",
    schedule: { cron: "* * * * *" },
    runAtStart: true,
    timeoutMs: 50_000,
    run,
  };
}
