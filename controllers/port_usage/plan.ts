/** Pure decisions of the port-usage job: the published ConfigMap, and which ports a scan may drop. */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { nodeKey } from "../../core/addresses.ts";
import { kubeTime } from "../../k8s/values.ts";

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

/** The value of every data key of the published ConfigMap (the original's words, read by nobody). */
export const PORT_USED_VALUE = "the port already use";

/** The API server's limit on a ConfigMap's data. */
export const CONFIGMAP_MAX_BYTES = 1048576;

/** The name of the published ConfigMap for a node. */
export function portUsageConfigMapName(node: string): string {
  return `cloud-provider-port-usage-${nodeKey(node)}`;
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

/**
 * Whether a scan needs a second one before it is published: it lacks a port the last run reported, or there was no
 * last run. One read of the kernel's tables is no snapshot (a socket closing mid-read can hide another), so a port is
 * added at once but dropped only when two scans in a row agree that it is gone.
 */
export function needsConfirmation(previous: readonly number[] | null, scanned: readonly number[]): boolean {
  if (previous === null) return true;
  const now = new Set(scanned);
  return previous.some((port) => !now.has(port));
}

/** The sorted union of two sorted port lists: what two scans in a row saw. */
export function unionOfScans(first: readonly number[], second: readonly number[]): number[] {
  const union: number[] = [];
  let i = 0;
  let j = 0;
  while (i < first.length || j < second.length) {
    const a = i < first.length ? first[i] : Infinity;
    const b = j < second.length ? second[j] : Infinity;
    union.push(Math.min(a, b));
    if (a <= b) i++;
    if (b <= a) j++;
  }
  return union;
}
