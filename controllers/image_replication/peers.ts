/**
 * The peers' daemons: where each node's daemon answers (its pod's IP and HTTP port), and how many transfers each has
 * in progress (its `GET /api/v1/images`), which the receiver ranks them by.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { nodeKey } from "../../core/addresses.ts";

/** Where one node's daemon answers. */
export interface PeerEndpoint {
  /** The node, lower-cased. */
  readonly node: string;
  /** The daemon's pod. */
  readonly pod: string;
  /** `http://<podIP>:<port>`. */
  readonly url: string;
}

/**
 * The daemons of the other nodes, by node: a running pod with an IP; its port is the container port named `http`
 * (the DaemonSet declares it), else `defaultPort` (`--port`, the same on every host).
 */
export function peerEndpoints(pods: readonly V1Pod[], self: string, defaultPort: number): Map<string, PeerEndpoint> {
  const found = new Map<string, PeerEndpoint>();
  for (const pod of pods) {
    const node = nodeKey(pod.spec?.nodeName ?? "");
    const ip = pod.status?.podIP ?? "";
    if (node === "" || node === nodeKey(self) || ip === "" || pod.metadata?.deletionTimestamp) continue;
    if (pod.status?.phase !== undefined && pod.status.phase !== "Running") continue;
    const declared = pod.spec?.containers?.flatMap((c) => c.ports ?? []).find((p) => p.name === "http");
    const port = declared?.hostPort ?? declared?.containerPort ?? defaultPort;
    const host = ip.includes(":") ? `[${ip}]` : ip;
    found.set(node, { node, pod: pod.metadata?.name ?? "", url: `http://${host}:${port}` });
  }
  return found;
}

/** How long a peer has to show its load. */
const LOAD_TIMEOUT_MS = 2_000;

/** The longest answer read for a load (a peer's own shows 20 transfers in a few kB). */
const MAX_LOAD_ANSWER = 256 * 1024;

/**
 * The body as text; null once it passes `max` bytes or `timeoutMs` passes (the body is cancelled then), so a peer
 * cannot make the daemon hold or wait for an endless answer.
 */
export async function boundedText(
  body: ReadableStream<Uint8Array>,
  max: number,
  options: { timeoutMs: number },
): Promise<string | null> {
  const reader = body.getReader();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, options.timeoutMs);
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      size += chunk.value.length;
      if (size > max) {
        await reader.cancel();
        return null;
      }
      chunks.push(chunk.value);
    }
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) return null;
  const joined = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    joined.set(chunk, at);
    at += chunk.length;
  }
  return new TextDecoder().decode(joined);
}

/** The exports a peer has in progress (`exportsInProgress` of its `GET /api/v1/images`), or null when unknown. */
export async function peerLoad(peer: PeerEndpoint, options: { signal: AbortSignal }): Promise<number | null> {
  try {
    const response = await fetch(`${peer.url}/api/v1/images`, {
      signal: AbortSignal.any([options.signal, AbortSignal.timeout(LOAD_TIMEOUT_MS)]),
    });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      return null;
    }
    const text = await boundedText(response.body, MAX_LOAD_ANSWER, { timeoutMs: LOAD_TIMEOUT_MS });
    if (text === null) return null;
    const count = (JSON.parse(text) as { data?: { exportsInProgress?: unknown } }).data?.exportsInProgress;
    return typeof count === "number" && Number.isInteger(count) && count >= 0 ? count : null;
  } catch {
    return null;
  }
}
