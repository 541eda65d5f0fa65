/** The port-usage job's observations: the `enablePrintPort` switch, the ranges to scan, and the used ports in them. */
import { JOBS } from "../../core/jobs.ts";
import type { Clock, EventSink, Logger } from "../../core/types.ts";
import type { KubeClient } from "../../k8s/client.ts";
import type { createSettingReader } from "../../k8s/config_maps.ts";
import { parseLenientBool } from "../../k8s/values.ts";
import { needsConfirmation, unionOfScans } from "./plan.ts";
import { type InvalidRange, type ParsedRanges, parsePortRanges, type PortRange, usedPortsInRanges } from "./ranges.ts";
import { createPortScanner } from "./scanner.ts";
import type { PortUsageState } from "./state.ts";

/** How long the `enablePrintPort` switch is kept when every read asks the server, as the original. */
export const SWITCH_CACHE_MS = 30 * 60_000;

/** How many invalid ranges are named in the log and the Event; the rest are counted. */
const REPORTED_INVALID = 10;

/** Options of `printingEnabled`. */
export interface SwitchOptions {
  /** The time. */
  readonly clock: Clock;
  /** Reads a key of a settings ConfigMap, saying once when the ConfigMap is missing. */
  readonly readSetting: ReturnType<typeof createSettingReader>;
  /** How long a read of the switch is kept (`SWITCH_CACHE_MS`; 0 where reads come from the cluster cache). */
  readonly keepMs: number;
}

/** Whether port printing is on (ConfigMap `controller-config` key `enablePrintPort`); always in local mode. */
export async function printingEnabled(
  api: KubeClient | null,
  state: PortUsageState,
  options: SwitchOptions,
): Promise<boolean> {
  if (api === null) return true;
  const now = options.clock.now().getTime();
  const cached = state.printSwitch;
  if (cached && now - cached.readAt < options.keepMs) return cached.value;
  const text = await options.readSetting(api, {
    configMap: "controller-config",
    key: "enablePrintPort",
    fallback: "true",
  });
  const value = parseLenientBool(text, true);
  state.printSwitch = { value, readAt: now };
  return value;
}

/** Options of `readRanges`. */
export interface RangesOptions {
  /** The ranges of `--port-ranges`, or null to read them from the ConfigMap's annotations. */
  readonly ranges: readonly PortRange[] | null;
  /** The ConfigMap whose annotations hold the ranges. */
  readonly configMap: string;
  /** Where the skipped ranges are said. */
  readonly log: Logger;
  /** Where the skipped ranges are recorded. */
  readonly events: EventSink;
}

/** The ranges to scan: the flag's, all ports in local mode, else the ConfigMap's; null when the ConfigMap is missing. */
export async function readRanges(
  api: KubeClient | null,
  state: PortUsageState,
  options: RangesOptions,
): Promise<ParsedRanges | null> {
  if (options.ranges !== null) return { ranges: [...options.ranges], invalid: [] };
  if (api === null) return { ranges: [[1, 65535]], invalid: [] };
  const configMap = await api.getConfigMap(options.configMap);
  if (configMap === null) return null;
  const parsed = parsePortRanges(configMap.metadata?.annotations);
  reportInvalid(parsed.invalid, state, options);
  return parsed;
}

/** Cuts hostile text for a log line or an Event: at most `max` characters, and how long it was. */
function clip(text: string, max = 80): string {
  return text.length <= max ? text : `${text.slice(0, max)}... (${text.length} characters)`;
}

/** Says which annotation values were skipped, once per change of the set. */
function reportInvalid(invalid: readonly InvalidRange[], state: PortUsageState, options: RangesOptions): void {
  const fingerprint = JSON.stringify(invalid);
  if (invalid.length === 0 || fingerprint === state.reported.invalid) {
    state.reported.invalid = invalid.length === 0 ? "" : fingerprint;
    return;
  }
  state.reported.invalid = fingerprint;
  const { configMap, log } = options;
  // Annotations are anyone's to write: a few readable lines and one short Event, whatever their number and size.
  const shown = invalid.slice(0, REPORTED_INVALID).map((item) => ({
    key: clip(item.key),
    value: clip(item.value),
    reason: clip(item.reason),
  }));
  for (const item of shown) {
    log.warn("Skipping port range {value} of ConfigMap {configMap} annotation {key}: {reason}", {
      configMap,
      ...item,
    });
  }
  const more = invalid.length - shown.length;
  if (more > 0) {
    log.warn("Skipping {more} more invalid port ranges of ConfigMap {configMap}", { more, configMap });
  }
  const list = shown.map((item) => `${item.key}="${item.value}" (${item.reason})`).join(", ") +
    (more > 0 ? `, and ${more} more` : "");
  options.events.record({
    job: JOBS.portUsage.name,
    type: "Warning",
    reason: "PortRangeInvalid",
    message: `Skipped invalid port ranges in ConfigMap "${configMap}" annotations: ${list}`,
  });
}

/** Options of `usedPorts`. */
export interface ScanOptions {
  /** `--port-scan-method`, for the scanner made at the first scan. */
  readonly method: "netlink" | "proc" | "bind";
  /** Where the scanner says which method it uses. */
  readonly log: Logger;
  /** The run's time limit. */
  readonly signal: AbortSignal;
}

/** The used ports of the ranges; a port missing since the last run is dropped only if a second scan agrees. */
export async function usedPorts(
  ranges: readonly PortRange[],
  state: PortUsageState,
  options: ScanOptions,
): Promise<number[]> {
  const { signal } = options;
  const scan = state.scan ??= createPortScanner(options.method, options.log);
  const first = usedPortsInRanges(await scan(ranges, signal), ranges);
  signal.throwIfAborted();
  if (!needsConfirmation(state.lastScanned, first)) return state.lastScanned = first;
  const second = usedPortsInRanges(await scan(ranges, signal), ranges);
  signal.throwIfAborted();
  return state.lastScanned = unionOfScans(first, second);
}
