/** The port-usage job: which ports of the configured ranges are listening here, published as a ConfigMap. */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { scanPortsByBind } from "../host/bind_scan.ts";
import { createProcPortReader } from "../host/proc_net.ts";
import type { KubeClient } from "../k8s/client.ts";
import { applyConfigMap, createSettingReader } from "../k8s/config_maps.ts";
import { kubeTime, parseLenientBool } from "../k8s/values.ts";
import type { JobDeps } from "./deps.ts";
import type { Controller, RunContext, RunOutcome } from "./types.ts";

/** An inclusive port range `[start, end]`, 1 <= start <= end <= 65535. */
export type PortRange = readonly [number, number];

/** An annotation whose value looks like a port range but is not a valid one. */
export interface InvalidRange {
  /** The annotation key. */
  readonly key: string;
  /** Its value. */
  readonly value: string;
  /** Why it was skipped. */
  readonly reason: string;
}

/** Ranges read from the annotations of the ranges ConfigMap. */
export interface ParsedRanges {
  /** Valid ranges, sorted, overlapping and adjacent ones merged. */
  readonly ranges: PortRange[];
  /** Range-like values that were skipped, with the reason. */
  readonly invalid: InvalidRange[];
}

/** The JSON result of one run (`once port-usage --json`, `GET /api/v1/ports`). */
export interface PortUsageResult {
  /** This host's Node name. */
  readonly node: string;
  /** The ranges scanned. */
  readonly ranges: PortRange[];
  /** The used ports inside the ranges, sorted. */
  readonly used: number[];
  /** Whether the ConfigMap was written (with --dry-run: would be; in local mode: the set changed since the last run). */
  readonly changed: boolean;
  /** The published ConfigMap's name. */
  readonly configMap: string;
  /** Whether port printing is on (`controller-config` key `enablePrintPort`). */
  readonly enabled: boolean;
  /** Annotation values skipped as invalid ranges. */
  readonly invalid: InvalidRange[];
}

/** What the job observed, for `planPortUsage`. */
export interface PortUsageObserved {
  /** This host's Node name. */
  readonly node: string;
  /** The used ports, sorted. */
  readonly used: readonly number[];
  /** The published ConfigMap as it is now, or null when missing. */
  readonly existing: V1ConfigMap | null;
  /** The time of the run. */
  readonly now: Date;
}

/** What to write: the desired ConfigMap, whether it differs, and whether it fits. */
export interface PortUsagePlan {
  /** `cloud-provider-port-usage-<node>`. */
  readonly name: string;
  /** The desired object (the existing one's metadata kept, data and `updateTimestamp` replaced). */
  readonly configMap: V1ConfigMap;
  /** Whether the set of ports differs from the existing ConfigMap's data keys (or it is missing). */
  readonly changed: boolean;
  /** Size as the API server counts it: the bytes of every key and value. */
  readonly sizeBytes: number;
  /** Whether the size exceeds the API server's limit. */
  readonly tooLarge: boolean;
}

/** Picks the used ports, given the ranges to look at; a Set or a 65536-entry bitmap (1 = used). */
export type PortScanner = (ranges: readonly PortRange[], signal: AbortSignal) => Promise<Set<number> | Uint8Array>;

/** The value of every data key of the published ConfigMap (the original's words, read by nobody). */
export const PORT_USED_VALUE = "the port already use";

/** The API server's limit on a ConfigMap's data. */
export const CONFIGMAP_MAX_BYTES = 1048576;

/** How long the `enablePrintPort` switch is cached, as the original. */
export const SWITCH_CACHE_MS = 30 * 60_000;

/** The name of the published ConfigMap for a node. */
export function portUsageConfigMapName(node: string): string {
  return `cloud-provider-port-usage-${node.toLowerCase()}`;
}

function bound(text: string): number {
  const s = text.trim();
  if (!/^\d+$/.test(s)) throw new Error(`"${s}" is not a port number`);
  const n = Number(s);
  if (n < 1 || n > 65535) throw new Error(`${n} is outside 1..65535`);
  return n;
}

/**
 * Parses one range with the original's rules: `N`, `A-B` (empty parts dropped, so `-9-32` is 9..32,
 * reversed bounds swapped, leading zeros allowed) and the port allocator's `A+K` (A..A+K). Throws with the reason.
 */
export function parsePortRange(value: string): PortRange {
  const text = value.trim();
  if (text === "") throw new Error("empty range");
  if (text.includes("+")) {
    const parts = text.split("+");
    if (parts.length !== 2) throw new Error("more than one +");
    const start = bound(parts[0]);
    const count = parts[1].trim();
    if (!/^\d+$/.test(count)) throw new Error(`"${count}" is not a port count`);
    const end = start + Number(count);
    if (end > 65535) throw new Error(`${start}+${Number(count)} ends at ${end}, outside 1..65535`);
    return [start, end];
  }
  const parts = text.split("-").filter((part) => part.trim() !== "");
  if (parts.length === 0) throw new Error("no port number");
  if (parts.length > 2) throw new Error("more than two bounds");
  const a = bound(parts[0]);
  const b = parts.length === 2 ? bound(parts[1]) : a;
  return a <= b ? [a, b] : [b, a];
}

/** Sorts ranges and merges overlapping and adjacent ones. */
export function mergeRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  const merged: [number, number][] = [];
  for (const [start, end] of sorted) {
    const last = merged[merged.length - 1];
    if (last && start <= last[1] + 1) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  return merged;
}

/** Parses a comma-separated list of ranges (`--port-ranges`, e.g. `5400-5800,30000-39999`); throws naming the bad one. */
export function parseRangeList(flagText: string): PortRange[] {
  const ranges: PortRange[] = [];
  for (const item of flagText.split(",")) {
    if (item.trim() === "") continue;
    try {
      ranges.push(parsePortRange(item));
    } catch (error) {
      throw new Error(`Invalid port range "${item.trim()}" in "${flagText}": ${(error as Error).message}`);
    }
  }
  if (ranges.length === 0) throw new Error(`Invalid port range list "${flagText}": no range`);
  return mergeRanges(ranges);
}

/** Whether a value is meant as a port range (starts with a digit, maybe after `-`); other values are skipped quietly. */
function looksLikeRange(value: string): boolean {
  return /^\s*-?\s*\d/.test(value);
}

/**
 * Reads the ranges from the annotations of the ranges ConfigMap: every value is one range (or a
 * comma-separated list, as the allocator's `polarbox.mpd.reserved.port.ranges`). Values that are not
 * ranges at all (JSON, empty, words) are skipped quietly; range-like values that do not parse are listed in `invalid`.
 */
export function parsePortRanges(annotations: Readonly<Record<string, string>> | undefined): ParsedRanges {
  const ranges: PortRange[] = [];
  const invalid: InvalidRange[] = [];
  for (const key of Object.keys(annotations ?? {}).sort()) {
    const value = annotations![key] ?? "";
    if (!looksLikeRange(value)) continue;
    try {
      ranges.push(...value.split(",").filter((item) => item.trim() !== "").map(parsePortRange));
    } catch (error) {
      invalid.push({ key, value, reason: (error as Error).message });
    }
  }
  return { ranges: mergeRanges(ranges), invalid };
}

/** The used ports inside the (sorted, merged) ranges, sorted. */
export function usedPortsInRanges(found: Set<number> | Uint8Array, ranges: readonly PortRange[]): number[] {
  const used: number[] = [];
  const has = found instanceof Uint8Array ? (p: number) => found[p] === 1 : (p: number) => found.has(p);
  for (const [start, end] of ranges) {
    for (let port = start; port <= end; port++) if (has(port)) used.push(port);
  }
  return used;
}

function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function base64DecodedLength(text: string): number {
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  return Math.floor(text.length * 3 / 4) - padding;
}

/** The size of a ConfigMap's content as the API server's validation counts it: every key and value, in bytes. */
export function configMapDataSize(configMap: Pick<V1ConfigMap, "data" | "binaryData">): number {
  let size = 0;
  for (const [key, value] of Object.entries(configMap.data ?? {})) size += utf8Length(key) + utf8Length(value);
  for (const [key, value] of Object.entries(configMap.binaryData ?? {})) {
    size += utf8Length(key) + base64DecodedLength(value);
  }
  return size;
}

/** Decides what to publish: data `"<port>": "the port already use"`, annotation `updateTimestamp`, changed or not, fits or not. */
export function planPortUsage(observed: PortUsageObserved): PortUsagePlan {
  const name = portUsageConfigMapName(observed.node);
  const data: Record<string, string> = {};
  for (const port of observed.used) data[String(port)] = PORT_USED_VALUE;
  const existing = observed.existing;
  const oldKeys = Object.keys(existing?.data ?? {});
  const changed = existing === null || oldKeys.length !== observed.used.length ||
    oldKeys.some((key) => !(key in data));
  const configMap: V1ConfigMap = {
    ...existing,
    metadata: {
      ...existing?.metadata,
      name,
      annotations: { ...existing?.metadata?.annotations, updateTimestamp: kubeTime(observed.now) },
    },
    data,
  };
  const sizeBytes = configMapDataSize(configMap);
  return { name, configMap, changed, sizeBytes, tooLarge: sizeBytes > CONFIGMAP_MAX_BYTES };
}

/** Options of the controller. */
export interface PortUsageControllerOptions {
  /** Replaces the host scan (tests); the default follows `--port-scan-method`. */
  readonly scan?: PortScanner;
}

function defaultScanner(method: "proc" | "bind", log: JobDeps["log"]): PortScanner {
  if (method === "bind") return (ranges, signal) => scanPortsByBind(ranges, { signal });
  const read = createProcPortReader({
    onOutOfOrder: (path) =>
      log.warn("Socket table {path} lists a listener after a connection, unlike Linux: every scan reads it whole", {
        path,
      }),
  });
  return (_ranges, signal) => read(signal);
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

/** Creates the port-usage job: every minute and once at start. */
export function createPortUsageController(
  deps: JobDeps,
  options: PortUsageControllerOptions = {},
): Controller<PortUsageResult> {
  const { config, kube, clock, events, log } = deps;
  const node = config.currentNodeName;
  const name = portUsageConfigMapName(node);
  const scan = options.scan ?? defaultScanner(config.portScanMethod, log);
  let switchCache: { value: boolean; readAt: number } | null = null;
  const readSetting = createSettingReader(log);
  let lastReportedInvalid = "";
  let lastLocalUsed: number[] | null = null;

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

  function outcome(summary: string, result: Omit<PortUsageResult, "node" | "configMap">): RunOutcome<PortUsageResult> {
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
      },
    };
  }

  function tooLargeError(plan: PortUsagePlan, count: number, dryRun: boolean): Error {
    const message = `Cannot write ConfigMap "${name}": ${count} used ports take ${plan.sizeBytes} bytes, ` +
      `more than the limit of ${CONFIGMAP_MAX_BYTES}; the previous content stays`;
    if (!dryRun) events.record({ job: "port-usage", type: "Warning", reason: "PortUsageTooLarge", message });
    return new Error(message);
  }

  async function run(ctx: RunContext): Promise<RunOutcome<PortUsageResult>> {
    // Every call of this run stops when the run's time limit passes: an abandoned run writes nothing late.
    const api = kube?.withSignal(ctx.signal) ?? null;
    if (!(await printingEnabled(api))) {
      return outcome(`Port printing is off (ConfigMap "controller-config" enablePrintPort); nothing scanned`, {
        ranges: [],
        used: [],
        changed: false,
        enabled: false,
        invalid: [],
      });
    }
    const parsed = await readRanges(api);
    if (parsed === null || parsed.ranges.length === 0) {
      const why = parsed === null
        ? `ConfigMap "${config.mpdControllerCmName}" not found`
        : `no valid range in ConfigMap "${config.mpdControllerCmName}" annotations`;
      return outcome(`No port ranges to scan (${why}); ConfigMap "${name}" left as it is`, {
        ranges: [],
        used: [],
        changed: false,
        enabled: true,
        invalid: parsed?.invalid ?? [],
      });
    }
    const { ranges, invalid } = parsed;
    const used = usedPortsInRanges(await scan(ranges, ctx.signal), ranges);
    ctx.signal.throwIfAborted();
    const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
    const counted = `${plural(used.length, "used port")} in ${plural(ranges.length, "range")}`;
    const result = (changed: boolean) => ({ ranges, used, changed, enabled: true, invalid });

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

    if (ctx.dryRun) {
      const plan = planPortUsage({ node, used, existing: await api.getConfigMap(name), now: clock.now() });
      if (plan.changed && plan.tooLarge) throw tooLargeError(plan, used.length, true);
      const verb = plan.changed ? "would be written" : "unchanged";
      return outcome(`${counted}; ConfigMap "${name}" ${verb} (dry run)`, result(plan.changed));
    }

    let lastPlan: PortUsagePlan | null = null;
    const applied = await applyConfigMap(api, name, {
      decide: (current) => {
        const plan = planPortUsage({ node, used, existing: current, now: clock.now() });
        lastPlan = plan;
        return plan.changed && !plan.tooLarge ? plan.configMap : null;
      },
    });
    const plan = lastPlan as PortUsagePlan | null;
    if (plan?.changed && plan.tooLarge) throw tooLargeError(plan, used.length, false);
    if (applied.written) {
      log.info("Wrote ConfigMap {name} with {count} used ports", { name, count: used.length });
    }
    const verb = applied.created ? "created" : applied.written ? "updated" : "unchanged";
    return outcome(`${counted}; ConfigMap "${name}" ${verb}`, result(applied.written));
  }

  return {
    name: "port-usage",
    schedule: { cron: "* * * * *" },
    runAtStart: true,
    timeoutMs: 50_000,
    run,
  };
}
