/** Job `core-version`: which engine versions have all their images on this host; availability ConfigMap; fan-out. */
import type { V1ConfigMap, V1Pod } from "@kubernetes/client-node";
import { nodeKey } from "../core/addresses.ts";
import { type ImageStoreKind, listImages } from "../host/image_store.ts";
import { applyConfigMap } from "../k8s/config_maps.ts";
import { kubeTime } from "../k8s/values.ts";
import type { JobDeps } from "./deps.ts";
import type { Controller, RunContext, RunOutcome } from "../core/types.ts";

/** One engine version read from its ConfigMap. */
export interface VersionSpec {
  /** The version's name (data key `name`). */
  readonly name: string;
  /** The ConfigMap it came from. */
  readonly configMap: string;
  /** Image references as written in the ConfigMap (sorted by key, duplicates removed). */
  readonly images: string[];
}

/** What `parseVersionConfigMap` found: a version, or a reason to skip the ConfigMap. */
export type ParsedVersionConfigMap =
  | { readonly kind: "version"; readonly version: VersionSpec }
  | {
    readonly kind: "skip";
    readonly configMap: string;
    readonly reason: string;
    /** A "root" ConfigMap (holds `latestVersion`): expected, logged at debug level only. */
    readonly quiet: boolean;
  };

/** Reads a version ConfigMap with the original's rules: `name`, and every non-empty key with `Image` after its first character. */
export function parseVersionConfigMap(cm: V1ConfigMap): ParsedVersionConfigMap {
  const configMap = cm.metadata?.name ?? "";
  const data = cm.data ?? {};
  const images: string[] = [];
  for (const key of Object.keys(data).sort()) {
    const value = (data[key] ?? "").trim();
    // Go's strings.Index(key, "Image") > 0: "Image" somewhere after the first character.
    if (key.indexOf("Image") > 0 && value !== "" && !images.includes(value)) images.push(value);
  }
  const name = (data.name ?? "").trim();
  if (images.length === 0) {
    if ("latestVersion" in data) {
      return { kind: "skip", configMap, reason: "it is the root ConfigMap (latestVersion, no images)", quiet: true };
    }
    return { kind: "skip", configMap, reason: "it has no image keys", quiet: false };
  }
  if (name === "") return { kind: "skip", configMap, reason: "it has images but no name", quiet: false };
  return { kind: "version", version: { name, configMap, images } };
}

const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;
const FULL_ID = /^[0-9a-f]{64}$/;
const ID_PREFIX = /^(?:sha256:)?([0-9a-f]{1,63})$/;

/**
 * Normalises an image reference the way Docker does, so that spellings of one image compare equal:
 * `busybox` = `busybox:latest` = `docker.io/library/busybox:latest`; `index.docker.io` = `docker.io`;
 * `registry:5000/a/b:t` keeps its registry and port; `name:tag@sha256:...` becomes `name@sha256:...`
 * (a RepoDigest has no tag). An image ID `sha256:<hex>` is returned as it is, and 64 bare hex digits become one.
 */
export function normalizeImageRef(ref: string): string {
  let rest = ref.trim();
  if (DIGEST.test(rest)) return rest.toLowerCase();
  // Docker reads 64 hex digits as an image ID, never as a repository name.
  if (FULL_ID.test(rest)) return `sha256:${rest}`;
  let digest = "";
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag = "";
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  let domain = "docker.io";
  const slash = rest.indexOf("/");
  const first = slash >= 0 ? rest.slice(0, slash) : "";
  // Docker's rule: the first component is a registry when it has a dot or a port, is localhost, or has capitals.
  if (slash >= 0 && (/[.:]/.test(first) || first === "localhost" || first !== first.toLowerCase())) {
    domain = first === "index.docker.io" ? "docker.io" : first;
    rest = rest.slice(slash + 1);
  }
  if (domain === "docker.io" && !rest.includes("/")) rest = `library/${rest}`;
  if (digest !== "") return `${domain}/${rest}@${digest}`;
  return `${domain}/${rest}:${tag || "latest"}`;
}

/** One version's availability on this host. */
export interface VersionAvailability {
  /** The version's name. */
  readonly name: string;
  /** Its ConfigMap. */
  readonly configMap: string;
  /** Its images, as written in the ConfigMap. */
  readonly images: string[];
  /** The images not in the local store. */
  readonly missing: string[];
  /** Whether every image is in the local store. */
  readonly available: boolean;
}

/** What `planAvailability` is given. */
export interface AvailabilityInput {
  /** The versions read from their ConfigMaps. */
  readonly versions: readonly VersionSpec[];
  /** The local store's references, normalised with `normalizeImageRef`. */
  readonly inventory: ReadonlySet<string>;
  /** The availability ConfigMap as it is now, or null. */
  readonly previous: V1ConfigMap | null;
  /** The time of the check. */
  readonly now: Date;
  /** Rewrite at least this often, even when nothing changed (milliseconds). */
  readonly reportIntervalMs: number;
}

/** The data keys of the availability ConfigMap. */
export interface AvailabilityData {
  /** Comma-separated names of the available versions (no trailing comma; empty when none). */
  readonly existingVersions: string;
  /** UTC time of the check, `YYYY-MM-DDTHH:MM:SSZ`. */
  readonly checkTime: string;
  /** JSON: every version with its images and the missing ones. */
  readonly details: string;
  /** Index signature so it fits V1ConfigMap data. */
  readonly [key: string]: string;
}

/** The decision of one check. */
export interface AvailabilityPlan {
  /** Every version, in ConfigMap name order. */
  readonly versions: VersionAvailability[];
  /** Names of the available versions (each once). */
  readonly existingVersions: string[];
  /** What the ConfigMap should hold. */
  readonly data: AvailabilityData;
  /** Whether something but `checkTime` differs from the previous ConfigMap. */
  readonly changed: boolean;
  /** Whether to write: changed, missing, or the last write is at least `reportIntervalMs` old. */
  readonly write: boolean;
}

/**
 * Whether the store holds an image, found as `docker image inspect` finds it: by name, by full ID, or by a short ID
 * (`3f57d9401f8d`, `sha256:3f57d9401f8d`) when exactly one ID starts with it. The IDs are the inventory's
 * `sha256:` entries (the Docker Engine lists every image's `Id`; containerd lists the IDs the kubelet's pulls added).
 */
function inventoryHolds(inventory: ReadonlySet<string>, image: string, options: { ids: readonly string[] }): boolean {
  if (inventory.has(normalizeImageRef(image))) return true;
  const prefix = ID_PREFIX.exec(image.trim())?.[1];
  if (prefix === undefined) return false;
  return options.ids.filter((id) => id.startsWith(`sha256:${prefix}`)).length === 1;
}

/** Decides which versions are available and whether the availability ConfigMap must be written. */
export function planAvailability(input: AvailabilityInput): AvailabilityPlan {
  const sorted = [...input.versions].sort((a, b) => a.configMap < b.configMap ? -1 : a.configMap > b.configMap ? 1 : 0);
  const ids = [...input.inventory].filter((ref) => ref.startsWith("sha256:"));
  const versions = sorted.map((v): VersionAvailability => {
    const missing = v.images.filter((image) => !inventoryHolds(input.inventory, image, { ids }));
    return { name: v.name, configMap: v.configMap, images: [...v.images], missing, available: missing.length === 0 };
  });
  const existingVersions = [...new Set(versions.filter((v) => v.available).map((v) => v.name))];
  const data: AvailabilityData = {
    existingVersions: existingVersions.join(","),
    checkTime: kubeTime(input.now),
    details: JSON.stringify(versions),
  };
  const old = input.previous?.data;
  const changed = !old || old.existingVersions !== data.existingVersions || old.details !== data.details;
  const lastWrite = old?.checkTime ? Date.parse(old.checkTime) : NaN;
  const stale = Number.isNaN(lastWrite) || input.now.getTime() - lastWrite >= input.reportIntervalMs;
  return { versions, existingVersions, data, changed, write: changed || stale };
}

/** The name of this node's availability ConfigMap. */
export function availabilityConfigMapName(node: string): string {
  return `polarstack-daemon-version-availability-${nodeKey(node)}`;
}

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

/** The job's result: `once core-version --json` and `GET /api/v1/versions`. */
export interface CoreVersionResult {
  /** This node. */
  readonly node: string;
  /** The image store listed. */
  readonly store: ImageStoreKind;
  /** Every version and its availability. */
  readonly versions: VersionAvailability[];
  /** Names of the available versions. */
  readonly existingVersions: string[];
  /** Whether something but checkTime changed in the availability ConfigMap. */
  readonly changed: boolean;
}

/** The controller plus the cluster-wide re-check. */
export interface CoreVersionController extends Controller<CoreVersionResult> {
  /** Asks every other daemon to check (in the background; coalesced: one running plus at most one pending). */
  fanOut(): void;
  /** `{ fanOut: <last outcome> }` to merge into `GET /api/v1/versions`, or `{}` before the first fan-out ends. */
  fanOutState(): { fanOut?: FanOutOutcome };
  /** Resolves when no fan-out runs or is pending (for shutdown and tests). */
  whenFanOutIdle(): Promise<void>;
}

/** Options of the controller. */
export interface CoreVersionOptions {
  /** The fetch used for the fan-out (tests). */
  readonly fetch?: typeof fetch;
  /** Extra headers of every fan-out request (e.g. a bearer token). */
  readonly fanOutHeaders?: () => Record<string, string>;
  /** Time limit of one fan-out call in milliseconds (default 3 s). */
  readonly fanOutTimeoutMs?: number;
  /** Calls in flight at once (default 16). */
  readonly fanOutConcurrency?: number;
  /** containerd socket for `ctr --address` (default: ctr's own, /run/containerd/containerd.sock). */
  readonly containerdAddress?: string;
}

/** Creates the `core-version` controller. */
export function createCoreVersionController(deps: JobDeps, options: CoreVersionOptions = {}): CoreVersionController {
  const { config, log } = deps;
  const node = nodeKey(config.currentNodeName);
  const doFetch = options.fetch ?? fetch;
  const fanOutTimeoutMs = options.fanOutTimeoutMs ?? 3000;
  const concurrency = options.fanOutConcurrency ?? 16;
  let lastFan: FanOutOutcome | null = null;
  let running: Promise<void> | null = null;
  let pending = false;

  async function run(ctx: RunContext): Promise<RunOutcome<CoreVersionResult>> {
    // Every call of this run stops when the run's time limit passes: an abandoned run writes nothing late.
    const kube = deps.kube?.withSignal(ctx.signal) ?? null;
    const versions: VersionSpec[] = [];
    if (kube) {
      for (const cm of await kube.listConfigMaps(config.coreVersionCmLabels)) {
        const parsed = parseVersionConfigMap(cm);
        if (parsed.kind === "version") {
          versions.push(parsed.version);
        } else if (parsed.quiet) {
          log.debug("Skipped ConfigMap {configMap}: {reason}", { configMap: parsed.configMap, reason: parsed.reason });
        } else {
          log.info("Skipped version ConfigMap {configMap}: {reason}", {
            configMap: parsed.configMap,
            reason: parsed.reason,
          });
        }
      }
    }
    const listing = await listImages({
      kind: config.imageStore,
      dockerHost: config.dockerHost,
      runCommand: deps.runCommand,
      containerdAddress: options.containerdAddress,
      signal: ctx.signal,
    });
    const inventory = new Set(listing.refs.map(normalizeImageRef));
    const name = availabilityConfigMapName(node);
    const input = { versions, inventory, now: deps.clock.now(), reportIntervalMs: config.versionCheckReportInterval };
    let plan = planAvailability({ ...input, previous: null });
    let written = false;
    if (kube && ctx.dryRun) {
      plan = planAvailability({ ...input, previous: await kube.getConfigMap(name) });
    } else if (kube) {
      const applied = await applyConfigMap(kube, name, {
        plan: (current) => ({ plan: planAvailability({ ...input, previous: current }), current }),
        desired: ({ plan, current }) =>
          plan.write
            ? {
              metadata: { name, labels: current?.metadata?.labels, annotations: current?.metadata?.annotations },
              data: { ...current?.data, ...plan.data },
            }
            : null,
      });
      plan = applied.plan.plan;
      written = applied.written;
      if (written) log.info("Wrote ConfigMap {name}: {existing}", { name, existing: plan.data.existingVersions });
    }
    const result: CoreVersionResult = {
      node,
      store: listing.store,
      versions: plan.versions,
      existingVersions: plan.existingVersions,
      changed: kube ? plan.changed : false,
    };
    const counts = `${plan.existingVersions.length} of ${plan.versions.length} versions available`;
    const store = `${listing.store} (${listing.source}) lists ${inventory.size} image references`;
    let summary: string;
    if (!kube) {
      summary = `Local mode: no version ConfigMaps to check; ${store}`;
    } else if (ctx.dryRun) {
      summary = `${counts}; ${store}; dry run: ConfigMap ${name} ${plan.write ? "would be written" : "is up to date"}`;
    } else {
      summary = `${counts}; ${store}; ConfigMap ${name} ${written ? "written" : "unchanged"}`;
    }
    return { summary, result };
  }

  async function callPeer(pod: V1Pod): Promise<FanOutPeer> {
    const ip = pod.status?.podIP ?? "";
    const peer = { pod: pod.metadata?.name ?? "", node: pod.spec?.nodeName ?? "", ip };
    const host = ip.includes(":") ? `[${ip}]` : ip;
    const timeout = AbortSignal.timeout(fanOutTimeoutMs);
    try {
      const response = await doFetch(`http://${host}:${config.port}/api/v1/InnerCheckCoreVersion`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...options.fanOutHeaders?.() },
        body: JSON.stringify({ HostName: node }),
        signal: timeout,
      });
      await response.body?.cancel();
      return { ...peer, ok: response.ok, status: response.status };
    } catch (error) {
      const why = timeout.aborted
        ? `timed out after ${fanOutTimeoutMs / 1000} s`
        : ((error as Error & { cause?: Error }).cause?.message ?? (error as Error).message);
      return { ...peer, ok: false, error: why };
    }
  }

  async function fanOutOnce(): Promise<void> {
    const kube = deps.kube;
    if (!kube) {
      lastFan = { time: deps.clock.now().toISOString(), peers: [], error: "Local mode: no other daemons to notify" };
      return;
    }
    let pods: V1Pod[];
    try {
      pods = await kube.listPods({ namespace: kube.namespace, labelSelector: config.polarstackDaemonPodLabels });
    } catch (error) {
      const message = `Cannot notify the other daemons: ${(error as Error).message}`;
      log.warn(message);
      lastFan = { time: deps.clock.now().toISOString(), peers: [], error: message };
      return;
    }
    const targets = pods.filter((pod) =>
      nodeKey(pod.spec?.nodeName ?? "") !== node && (pod.status?.podIP ?? "") !== ""
    );
    const peers: FanOutPeer[] = new Array(targets.length);
    let next = 0;
    async function worker(): Promise<void> {
      while (next < targets.length) {
        const index = next++;
        peers[index] = await callPeer(targets[index]);
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
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
    lastFan = { time: deps.clock.now().toISOString(), peers };
  }

  async function fanOutLoop(): Promise<void> {
    while (pending) {
      pending = false;
      await fanOutOnce();
    }
  }

  return {
    name: "core-version",
    schedule: { cron: "*/10 * * * *" },
    runAtStart: true,
    timeoutMs: 60_000,
    run,
    fanOut() {
      pending = true;
      if (running) return;
      running = fanOutLoop()
        .catch((error) => log.error("Fan-out failed: {error}", { error: (error as Error).message }))
        .finally(() => (running = null));
    },
    fanOutState: () => (lastFan ? { fanOut: lastFan } : {}),
    async whenFanOutIdle() {
      while (running) await running;
    },
  };
}
