/**
 * The image-replication job: copies here the images of every engine version that is missing on this host and held
 * whole by a peer (its availability ConfigMap, with every image's ID), one transfer at a time, from the peer with the
 * fewest transfers in progress; verifies each image's ID, retries from the next peer, reports progress, metrics and
 * an Event, then asks for a version check at once.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { byteReader, byteStreamFrom } from "../../core/byte_stream.ts";
import { JOBS } from "../../core/jobs.ts";
import type { Controller, JobCounter, RunContext, RunOutcome } from "../../core/types.ts";
import type { StreamingCommandRunner } from "../../host/command.ts";
import type { ImageExport } from "../../host/image_stream.ts";
import { listImages } from "../../host/image_store.ts";
import { dfFigures, statFs } from "../../host/statfs.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { createPeerTokenReader } from "../../k8s/peer_token.ts";
import { inventoryHolds, inventoryIds, normalizeImageRef } from "../core_version/image_ref.ts";
import { parseVersionConfigMap, type VersionSpec } from "../core_version/versions.ts";
import type { JobDeps } from "../deps.ts";
import { checkDisk } from "./disk.ts";
import { type PeerEndpoint, peerEndpoints, peerLoad } from "./peers.ts";
import {
  type LocalVersion,
  type PeerImage,
  planReplication,
  rankPeers,
  readPeerHoldings,
  type ReplicationCandidate,
} from "./plan.ts";
import { advanceProgress, copiedMessage, currentRate, formatBytes, type Progress, startProgress } from "./progress.ts";
import { type AttemptFailure, type FailedAttempt, nextAttempt } from "./retry.ts";
import { openStore, type ReplicationStore } from "./store.ts";
import { copyImage } from "./transfer.ts";
import type { ImageReplicationResult, ReplicationRequest, TransferView, VersionCopy } from "./types.ts";

/** The job's options, from the flags. */
export interface ImageReplicationOptions {
  /** This host's Node name, lower-cased. */
  readonly node: string;
  /** `auto`: copy after each version check; `off`: only when asked (the POST, `once`). */
  readonly mode: "off" | "auto";
  /** Label selector of the version ConfigMaps. */
  readonly versionLabels: string;
  /** `--image-store`. */
  readonly imageStore: "auto" | "docker" | "containerd";
  /** `--docker-host`. */
  readonly dockerHost: string;
  /** `--containerd-address`; empty: ctr's default. */
  readonly containerdAddress: string;
  /** Label selector of the daemons' pods. */
  readonly peerPodLabels: string;
  /** The daemons' port when a pod declares none. */
  readonly peerPort: number;
  /** The peer token's file. */
  readonly peerTokenFile: string;
  /** Cap of an incoming copy, bytes per second (0: none). */
  readonly bytesPerSecond: number;
  /** A copy that receives nothing this long moves on (ms). */
  readonly stallMs: number;
  /** Read the store's free space with `df` through the runner (the host's mount namespace), not statfs here. */
  readonly diskThroughHost: boolean;
}

/** What the job needs beyond every job's deps. */
export interface ImageReplicationDeps extends JobDeps {
  /** The streaming runner (`ctr images export/import`). */
  readonly runStreaming: StreamingCommandRunner;
  /** Feeds a metric at once (bytes as they arrive, the active transfers). */
  readonly recordMetric: (metric: JobCounter) => void;
  /** Waits (the retry backoff); stops early when the signal aborts. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** The controller plus what the API and the export endpoint need. */
export interface ImageReplicationController extends Controller<ImageReplicationResult> {
  /** Calls `listener` after each version copied (the wiring runs the version check at once). */
  onCopied(listener: () => void): void;
  /** Asks for a copy: the next run does it (the caller triggers the run). */
  request(request: ReplicationRequest): void;
  /** The transfers of the current and recent runs, and whether one comes in now. */
  transfers(): { incoming: number; transfers: TransferView[] };
  /** Every image of every version ConfigMap (what may be exported). */
  versionImages(): Promise<string[]>;
  /** Opens an image of the local store for a peer; null when the store has no such image. */
  exportImage(ref: string, options: { signal: AbortSignal }): Promise<ImageExport | null>;
}

/** How many peers are asked for their load before an attempt. */
const LOAD_QUERIES = 8;

/** How many finished transfers `GET /api/v1/images` keeps showing. */
const KEEP_TRANSFERS = 20;

const METRIC = {
  bytes: { name: "image_replication_bytes_total", help: "Bytes of images copied here from peers" },
  transfers: { name: "image_replication_transfers_total", help: "Image transfers by outcome" },
  active: { name: "image_replication_active_transfers", help: "Image transfers coming in now", kind: "gauge" },
} as const;

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** The versions of the listed ConfigMaps. */
function readVersions(configMaps: readonly V1ConfigMap[]): VersionSpec[] {
  return configMaps.flatMap((cm) => {
    const parsed = parseVersionConfigMap(cm);
    return parsed.kind === "version" ? [parsed.version] : [];
  });
}

/** Creates the `image-replication` controller. */
export function createImageReplicationController(
  deps: ImageReplicationDeps,
  options: ImageReplicationOptions,
): ImageReplicationController {
  const { log } = deps;
  const job = JOBS.imageReplication.name;
  const sleep = deps.sleep ?? defaultSleep;
  const requests: ReplicationRequest[] = [];
  const copiedListeners: (() => void)[] = [];
  // Peer, image and advertised ID of every copy that did not match: not downloaded again (every version check would
  // otherwise fetch it whole once more) until the peer advertises another ID.
  const mismatched = new Set<string>();
  let started = true;
  const shown: TransferView[] = [];
  let current: { view: TransferView; progress: Progress } | null = null;
  const peerToken = createPeerTokenReader(options.peerTokenFile, { log });
  const headers = (): Record<string, string> => {
    const token = peerToken();
    return token ? { Authorization: `Bearer ${token}` } : {};
  };
  const containerdAddress = options.containerdAddress || undefined;
  const storeOptions = {
    kind: options.imageStore,
    dockerHost: options.dockerHost,
    containerdAddress,
    runCommand: deps.runCommand,
    runStreaming: deps.runStreaming,
  };

  function metric(which: keyof typeof METRIC, value: number, labels?: Record<string, string>): void {
    deps.recordMetric({ ...METRIC[which], value, labels });
  }

  function view(): TransferView[] {
    if (!current) return [...shown];
    const at = deps.clock.now().getTime();
    return [{ ...current.view, rateBytesPerSecond: Math.round(currentRate(current.progress, at)) }, ...shown];
  }

  function finish(state: "done" | "failed", extra: { failure?: AttemptFailure; error?: string } = {}): void {
    if (!current) return;
    const at = deps.clock.now().getTime();
    const rate = Math.round(currentRate(current.progress, at));
    shown.unshift({ ...current.view, state, rateBytesPerSecond: rate, ...extra });
    shown.length = Math.min(shown.length, KEEP_TRANSFERS);
    current = null;
    metric("active", 0);
  }

  async function observe(kube: KubeClient, request: ReplicationRequest | null, signal: AbortSignal) {
    const versions = readVersions(await kube.listConfigMaps(options.versionLabels));
    const listing = await listImages({
      kind: options.imageStore,
      dockerHost: options.dockerHost,
      containerdAddress,
      runCommand: deps.runCommand,
      signal,
    });
    const inventory = new Set(listing.refs.map(normalizeImageRef));
    const ids = inventoryIds(inventory);
    const local: LocalVersion[] = versions.map((v) => ({
      name: v.name,
      images: v.images,
      available: v.images.every((image) => inventoryHolds(inventory, image, { ids })),
    }));
    const missing = (image: string) => !inventoryHolds(inventory, image, { ids });
    const wanted = local.filter((v) => !v.available && (request?.version === undefined || v.name === request.version));
    if (wanted.length === 0) return { local, missing, candidates: [], endpoints: new Map<string, PeerEndpoint>() };
    // Availability ConfigMaps carry no label: the namespace's ConfigMaps are listed, only when something is missing.
    const holdings = readPeerHoldings(await kube.listConfigMaps(""), options.node);
    for (const problem of holdings.problems) {
      log.debug("Peer ConfigMap {configMap} read in part: {reason}", { ...problem });
    }
    const candidates = planReplication(local, holdings.peers, { only: request?.version, from: request?.from });
    const pods = await kube.listPods({ namespace: kube.namespace, labelSelector: options.peerPodLabels });
    return { local, missing, candidates, endpoints: peerEndpoints(pods, options.node, options.peerPort) };
  }

  /** Copies one image, trying its sources in turn; the failed attempts tell why when no source gave it. */
  async function copyOne(
    store: ReplicationStore,
    version: string,
    sources: Map<string, { endpoint: PeerEndpoint; image: PeerImage }>,
    signal: AbortSignal,
  ): Promise<{ peer: string; bytes: number } | { attempts: FailedAttempt[]; reason: string; last: string }> {
    const attempts: FailedAttempt[] = [];
    let last = "";
    const ref = [...sources.values()][0].image.ref;
    for (;;) {
      // The loads of a few peers (the hash's first, so receivers ask different ones), not of every holder in a
      // large cluster; the others rank after them as unknown.
      const asked = rankPeers([...sources.keys()], options.node, { load: new Map() }).slice(0, LOAD_QUERIES);
      const load = new Map<string, number>();
      await Promise.all(asked.map(async (node) => {
        const count = await peerLoad(sources.get(node)!.endpoint, { signal });
        if (count !== null) load.set(node, count);
      }));
      const next = nextAttempt([...sources.keys()], attempts, { receiver: options.node, load });
      if (next.action === "give-up") return { attempts, reason: next.reason, last };
      const wait = next.notBefore - deps.clock.now().getTime();
      if (wait > 0) {
        log.info("Next attempt at image {ref} from {peer} in {seconds} s", {
          ref,
          peer: next.peer,
          seconds: Math.ceil(wait / 1000),
        });
        await sleep(wait, signal);
        signal.throwIfAborted();
      }
      const { endpoint, image } = sources.get(next.peer)!;
      const started = deps.clock.now();
      current = {
        view: {
          version,
          ref,
          peer: next.peer,
          state: "copying",
          bytesDone: 0,
          bytesTotal: null,
          rateBytesPerSecond: 0,
          startedAt: started.toISOString(),
        },
        progress: startProgress(null, started.getTime()),
      };
      metric("active", 1);
      const result = await copyImage(image, endpoint, {
        store,
        headers,
        checkDisk: async (bytes) => {
          const root = await store.root();
          return checkDisk(options.diskThroughHost ? await dfFigures(deps.runCommand, root) : statFs(root), bytes);
        },
        bytesPerSecond: options.bytesPerSecond,
        stallMs: options.stallMs,
        signal,
        onStart: (total) => {
          const at = deps.clock.now().getTime();
          current = { view: { ...current!.view, bytesTotal: total }, progress: startProgress(total, at) };
        },
        onBytes: (n) => {
          const advanced = advanceProgress(current!.progress, n, deps.clock.now().getTime());
          current = { view: { ...current!.view, bytesDone: advanced.progress.done }, progress: advanced.progress };
          metric("bytes", n);
          if (advanced.logPercent !== null) {
            log.info("Copying image {ref} of version {version} from {peer}: {percent}% ({done} of {total})", {
              ref,
              version,
              peer: next.peer,
              percent: advanced.logPercent,
              done: formatBytes(advanced.progress.done),
              total: formatBytes(advanced.progress.total ?? 0),
            });
          }
        },
        onVerify: () => {
          current = { ...current!, view: { ...current!.view, state: "verifying" } };
        },
      }).catch((error) => {
        finish("failed", { error: (error as Error).message });
        throw error;
      });
      if (result.ok) {
        finish("done");
        metric("transfers", 1, { outcome: "success" });
        return { peer: next.peer, bytes: result.bytes };
      }
      finish("failed", { failure: result.failure, error: result.message });
      metric("transfers", 1, { outcome: result.failure });
      log.warn("{message} ({failure})", { message: result.message, failure: result.failure });
      // The disk's message has the figures and names the store; other causes need the image and the peer.
      last = result.failure === "DiskPressure" ? result.cause : result.message;
      attempts.push({
        peer: next.peer,
        failure: result.failure,
        at: deps.clock.now().getTime(),
        ...retryAfter(result),
      });
    }
  }

  async function copyVersion(
    candidate: ReplicationCandidate,
    plan: { sources: string[]; endpoints: Map<string, PeerEndpoint>; missing: (image: string) => boolean },
    signal: AbortSignal,
  ): Promise<VersionCopy> {
    const { version } = candidate;
    const base = { version, images: candidate.images, sources: plan.sources };
    const t0 = deps.clock.now().getTime();
    const store = await openStore(storeOptions);
    let bytes = 0;
    let peer = "";
    try {
      for (const ref of candidate.images.filter(plan.missing)) {
        const sources = new Map<string, { endpoint: PeerEndpoint; image: PeerImage }>();
        for (const source of candidate.sources) {
          const endpoint = plan.endpoints.get(source.node);
          const image = source.images.find((i) => i.ref === ref);
          if (endpoint && image && !mismatched.has(mismatchKey(source.node, image))) {
            sources.set(source.node, { endpoint, image });
          }
        }
        if (sources.size === 0) {
          const why = candidate.sources.some((s) => plan.endpoints.has(s.node))
            ? `every peer that holds ${ref} sent another image than it advertises, and still advertises it`
            : `no daemon of a peer that holds ${ref} answers`;
          return { ...base, outcome: "failed", failure: "NoPeer", error: why };
        }
        const copied = await copyOne(store, version, sources, signal);
        if ("attempts" in copied) {
          for (const a of copied.attempts) {
            if (mismatched.size > 10_000) mismatched.clear();
            if (a.failure === "ImageMismatch") mismatched.add(mismatchKey(a.peer, sources.get(a.peer)!.image));
          }
          const failure = copied.attempts.find((a) => a.failure === "DiskPressure" || a.failure === "ImageMismatch")
            ?.failure ?? copied.attempts.at(-1)?.failure ?? "PeerFailed";
          const error = failure === "DiskPressure" ? copied.last : `${copied.reason} (last: ${copied.last})`;
          return { ...base, outcome: "failed", failure, error };
        }
        bytes += copied.bytes;
        peer = copied.peer;
      }
    } finally {
      store.close();
    }
    return { ...base, outcome: "copied", peer, bytes, ms: deps.clock.now().getTime() - t0 };
  }

  function report(copy: VersionCopy): void {
    if (copy.outcome === "copied") {
      const message = copiedMessage({
        version: copy.version,
        images: copy.images.length,
        bytes: copy.bytes ?? 0,
        peer: copy.peer ?? "",
        ms: copy.ms ?? 0,
      });
      log.info(message);
      deps.events.record({ job, type: "Normal", reason: "CoreVersionCopied", message });
      return;
    }
    const reason = copy.failure === "ImageMismatch" || copy.failure === "DiskPressure"
      ? copy.failure
      : "CoreVersionCopyFailed";
    const message = `Cannot copy version ${copy.version}: ${copy.error}`;
    log.warn(message);
    deps.events.record({ job, type: "Warning", reason, message });
  }

  async function run(ctx: RunContext): Promise<RunOutcome<ImageReplicationResult>> {
    // Every copy asked for since the last run, in order; with none, the automatic pass (in auto mode).
    const asked = requests.splice(0);
    if (started && asked.length === 0) {
      // The run at start: copies follow the first version check (which triggers the next run), and readiness does
      // not wait for a copy that may take minutes.
      started = false;
      const result = { node: options.node, mode: options.mode, versions: [], unavailable: [] };
      return { summary: "Waiting for the first version check", result, routine: true };
    }
    started = false;
    if (asked.length <= 1) return await runOnce(ctx, asked[0] ?? null);
    // Each request is worked on even when an earlier one failed; the run fails when one did.
    const outcomes: RunOutcome<ImageReplicationResult>[] = [];
    const errors: string[] = [];
    for (const request of asked) {
      try {
        outcomes.push(await runOnce(ctx, request));
      } catch (error) {
        ctx.signal.throwIfAborted();
        errors.push((error as Error).message);
      }
    }
    if (errors.length > 0) throw new Error(errors.join("; "));
    return {
      summary: outcomes.map((o) => o.summary).join("; "),
      result: {
        ...outcomes[0].result,
        versions: outcomes.flatMap((o) => o.result.versions),
        unavailable: [...new Set(outcomes.flatMap((o) => o.result.unavailable))],
      },
    };
  }

  async function runOnce(
    ctx: RunContext,
    request: ReplicationRequest | null,
  ): Promise<RunOutcome<ImageReplicationResult>> {
    const base = { node: options.node, mode: options.mode };
    if (!request && options.mode === "off") {
      return {
        summary: "Off (--image-replication=off): nothing copied",
        result: { ...base, versions: [], unavailable: [] },
        routine: true,
      };
    }
    const kube = deps.kube?.withSignal(ctx.signal) ?? null;
    if (!kube) {
      return {
        summary: "Local mode: no peers to copy from",
        result: { ...base, versions: [], unavailable: [] },
        routine: true,
      };
    }
    const observed = await observe(kube, request, ctx.signal);
    const missingHere = observed.local.filter((v) => !v.available);
    if (request?.version !== undefined) {
      const asked = observed.local.find((v) => v.name === request.version);
      if (!asked) throw new Error(`Cannot copy version ${request.version}: no version ConfigMap names it`);
      if (!asked.available && observed.candidates.length === 0) {
        const from = request.from ? ` (asked from node ${request.from})` : "";
        throw new Error(`Cannot copy version ${request.version}: no peer holds it whole with image IDs${from}`);
      }
    }
    const held = new Set(observed.candidates.map((c) => c.version));
    const unavailable = missingHere.map((v) => v.name).filter((name) => !held.has(name) && !request?.version);
    const versions: VersionCopy[] = [];
    for (const candidate of observed.candidates) {
      const sources = candidate.sources.map((s) => s.node).filter((node) => observed.endpoints.has(node));
      if (ctx.dryRun) {
        versions.push({ version: candidate.version, images: candidate.images, sources, outcome: "planned" });
        continue;
      }
      const copy = await copyVersion(
        candidate,
        { sources, endpoints: observed.endpoints, missing: observed.missing },
        ctx.signal,
      );
      report(copy);
      versions.push(copy);
      if (copy.outcome === "copied") { for (const listener of copiedListeners) listener(); }
    }
    const copied = versions.filter((v) => v.outcome === "copied").length;
    const failed = versions.filter((v) => v.outcome === "failed");
    if (request?.version !== undefined && failed.length > 0) {
      throw new Error(`Cannot copy version ${failed[0].version}: ${failed[0].error}`);
    }
    const parts = [
      ctx.dryRun ? `${versions.length} versions would be copied` : `${copied} versions copied`,
      ...(failed.length > 0 ? [`${failed.length} failed (${failed.map((f) => f.version).join(", ")})`] : []),
      ...(unavailable.length > 0 ? [`${unavailable.length} missing here and on every peer`] : []),
    ];
    return {
      summary: parts.join("; "),
      result: { ...base, versions, unavailable },
      routine: versions.length === 0,
    };
  }

  return {
    name: job,
    // Every version check triggers a run (auto); the hourly run is a safety net.
    schedule: { cron: "0 * * * *" },
    runAtStart: true,
    // A version of several GB over a slow link takes long; shutdown still stops it at once.
    timeoutMs: 6 * 3_600_000,
    run,
    onCopied(listener) {
      copiedListeners.push(listener);
    },
    request(request) {
      requests.push(request);
    },
    transfers: () => ({ incoming: current ? 1 : 0, transfers: view() }),
    async versionImages() {
      if (!deps.kube) return [];
      return readVersions(await deps.kube.listConfigMaps(options.versionLabels)).flatMap((v) => v.images);
    },
    async exportImage(ref, { signal }) {
      const store = await openStore(storeOptions);
      let image: ImageExport | null;
      try {
        image = await store.exportImage(ref, { signal });
      } catch (error) {
        store.close();
        throw error;
      }
      if (!image) {
        store.close();
        return null;
      }
      // The connection lives as long as the stream; a byte stream, so the export's buffer goes down to the store.
      const reader = byteReader(image.stream);
      const stream = byteStreamFrom({
        async read(into) {
          let piece: Uint8Array;
          try {
            piece = await reader.read(into);
          } catch (error) {
            store.close();
            throw error;
          }
          if (piece.length === 0) store.close();
          return piece;
        },
        async cancel(reason) {
          await reader.cancel(reason).catch(() => {});
          store.close();
        },
      });
      return { ...image, stream };
    },
  };
}

function mismatchKey(peer: string, image: PeerImage): string {
  return `${peer}\u0000${image.ref}\u0000${image.id}`;
}

function retryAfter(result: { retryAfterMs?: number }): { retryAfterMs?: number } {
  return result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs };
}
