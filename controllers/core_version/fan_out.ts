/**
 * The cluster-wide re-check: every other daemon is asked to check its own host (`POST /api/v1/InnerCheckCoreVersion`
 * at `<podIP>:<port>`). Requests are coalesced: one fan-out runs, and at most one more is pending.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { nodeKey } from "../../core/addresses.ts";
import type { JobDeps } from "../deps.ts";

/** One peer daemon's answer to the fan-out. */
export interface FanOutPeer {
  /** Pod name. */
  readonly pod: string;
  /** Node the pod runs on. */
  readonly node: string;
  /** Pod IP called. */
  readonly ip: string;
  /** Whether it answered 2xx. */
  readonly ok: boolean;
  /** HTTP status, when it answered. */
  readonly status?: number;
  /** Why the call failed, when it did not answer. */
  readonly error?: string;
}

/** The outcome of the last fan-out to the other daemons. */
export interface FanOutOutcome {
  /** When it finished (ISO 8601). */
  readonly time: string;
  /** Every daemon called. */
  readonly peers: FanOutPeer[];
  /** Why no daemon could be called (pods not listed, local mode). */
  readonly error?: string;
}

/** Whom the fan-out calls, and how. */
export interface FanOutOptions {
  /** This host's Node name, lower-cased: sent as `HostName`, and its own daemon is not called. */
  readonly node: string;
  /** Label selector of the daemons' pods. */
  readonly podLabels: string;
  /** The daemons' HTTP port (`--port`, the same on every host). */
  readonly port: number;
  /** Headers of every call (the peer token), read again for each call. */
  readonly headers: () => Record<string, string>;
}

/** The fan-out as the job offers it. */
export interface FanOut {
  /** Asks every other daemon to check, in the background; coalesced: one running plus at most one pending. */
  request(): void;
  /** The last outcome, or null before the first fan-out ends. */
  last(): FanOutOutcome | null;
  /** Resolves when no fan-out runs or is pending. */
  whenIdle(): Promise<void>;
}

/** The fan-out's memory between requests. */
interface FanOutState {
  /** The outcome of the last fan-out that ended. */
  last: FanOutOutcome | null;
  /** The loop that runs fan-outs while one is pending, if it runs. */
  running: Promise<void> | null;
  /** Whether a fan-out was asked for since the running one started. */
  pending: boolean;
}

/** Time limit of one call to a peer. */
const CALL_TIMEOUT_MS = 3000;

/** Calls in flight at once. */
const CONCURRENCY = 16;

type FanOutDeps = Pick<JobDeps, "kube" | "clock" | "log">;

/** The pods to call: the daemons on other nodes that have an IP. */
export function fanOutTargets(pods: readonly V1Pod[], node: string): V1Pod[] {
  return pods.filter((pod) => nodeKey(pod.spec?.nodeName ?? "") !== node && (pod.status?.podIP ?? "") !== "");
}

async function callPeer(pod: V1Pod, options: FanOutOptions): Promise<FanOutPeer> {
  const ip = pod.status?.podIP ?? "";
  const peer = { pod: pod.metadata?.name ?? "", node: pod.spec?.nodeName ?? "", ip };
  const host = ip.includes(":") ? `[${ip}]` : ip;
  const timeout = AbortSignal.timeout(CALL_TIMEOUT_MS);
  try {
    const response = await fetch(`http://${host}:${options.port}/api/v1/InnerCheckCoreVersion`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...options.headers() },
      body: JSON.stringify({ HostName: options.node }),
      signal: timeout,
    });
    await response.body?.cancel();
    return { ...peer, ok: response.ok, status: response.status };
  } catch (error) {
    const why = timeout.aborted
      ? `timed out after ${CALL_TIMEOUT_MS / 1000} s`
      : ((error as Error & { cause?: Error }).cause?.message ?? (error as Error).message);
    return { ...peer, ok: false, error: why };
  }
}

async function callAll(targets: readonly V1Pod[], options: FanOutOptions): Promise<FanOutPeer[]> {
  const peers: FanOutPeer[] = new Array(targets.length);
  let next = 0;
  async function worker(): Promise<void> {
    while (next < targets.length) {
      const index = next++;
      peers[index] = await callPeer(targets[index], options);
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, targets.length) }, worker));
  return peers;
}

async function fanOutOnce(deps: FanOutDeps, options: FanOutOptions): Promise<FanOutOutcome> {
  const { kube, clock, log } = deps;
  if (!kube) return { time: clock.now().toISOString(), peers: [], error: "Local mode: no other daemons to notify" };
  let pods: V1Pod[];
  try {
    pods = await kube.listPods({ namespace: kube.namespace, labelSelector: options.podLabels });
  } catch (error) {
    const message = `Cannot notify the other daemons: ${(error as Error).message}`;
    log.warn(message);
    return { time: clock.now().toISOString(), peers: [], error: message };
  }
  const peers = await callAll(fanOutTargets(pods, options.node), options);
  const ok = peers.filter((p) => p.ok).length;
  const failed = peers.filter((p) => !p.ok).map((p) => `${p.pod} (${p.error ?? `status ${p.status}`})`);
  if (failed.length > 0) {
    log.warn("Notified {ok} of {total} daemons; failed: {failed}", {
      ok,
      total: peers.length,
      failed: failed.join(", "),
    });
  } else {
    log.info("Notified {ok} of {total} daemons", { ok, total: peers.length });
  }
  return { time: clock.now().toISOString(), peers };
}

/** Creates the coalescing fan-out. */
export function createFanOut(deps: FanOutDeps, options: FanOutOptions): FanOut {
  const state: FanOutState = { last: null, running: null, pending: false };
  async function loop(): Promise<void> {
    while (state.pending) {
      state.pending = false;
      state.last = await fanOutOnce(deps, options);
    }
  }
  return {
    request() {
      state.pending = true;
      if (state.running) return;
      state.running = loop()
        .catch((error) => deps.log.error("Fan-out failed: {error}", { error: (error as Error).message }))
        .finally(() => (state.running = null));
    },
    last: () => state.last,
    async whenIdle() {
      while (state.running) await state.running;
    },
  };
}
