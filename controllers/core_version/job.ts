/** The core-version job: which engine versions have all their images on this host; availability ConfigMap; fan-out. */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { JOBS } from "../../core/jobs.ts";
import type { Controller, JobCounter, RunContext, RunOutcome } from "../../core/types.ts";
import { type ImageListing, type ImageStoreKind, listImages } from "../../host/image_store.ts";
import { listContainerdImageIds } from "../../host/image_stream.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { applyConfigMap } from "../../k8s/config_maps.ts";
import { createPeerTokenReader } from "../../k8s/peer_token.ts";
import type { JobDeps } from "../deps.ts";
import { createFanOut, type FanOutOutcome } from "./fan_out.ts";
import { normalizeImageRef } from "./image_ref.ts";
import {
  availabilityConfigMapName,
  type CoreVersionObserved,
  type CoreVersionPlan,
  planCoreVersion,
  type VersionAvailability,
} from "./plan.ts";
import { parseVersionConfigMap, type VersionSpec } from "./versions.ts";

/** The job's options, from the flags. */
export interface CoreVersionOptions {
  /** This host's Node name, lower-cased. */
  readonly node: string;
  /** Label selector of the version ConfigMaps (`--core-version-cm-labels`). */
  readonly versionLabels: string;
  /** Which image store to list (`--image-store`). */
  readonly imageStore: "auto" | "docker" | "containerd";
  /** The Docker Engine's address (`--docker-host`). */
  readonly dockerHost: string;
  /** containerd's socket (`--containerd-address`); empty: ctr's default. */
  readonly containerdAddress: string;
  /** Rewrite the availability ConfigMap at least this often, in milliseconds (`--version-check-report-interval`). */
  readonly reportIntervalMs: number;
  /** Label selector of the other daemons' pods (`--polarstack-daemon-pod-labels`). */
  readonly peerPodLabels: string;
  /** The other daemons' HTTP port (`--port`). */
  readonly peerPort: number;
  /** The token file the fan-out sends from (`--peer-token-file`). */
  readonly peerTokenFile: string;
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

/** What one run saw: the plan's input except the availability ConfigMap (read when applying), and the store's listing. */
interface Observation {
  readonly observed: Omit<CoreVersionObserved, "previous">;
  readonly listing: ImageListing;
}

/** What applying did: the plan made from the ConfigMap as last read, and whether it was written. */
interface Applied {
  readonly plan: CoreVersionPlan;
  readonly written: boolean;
}

/** Creates the `core-version` controller. */
export function createCoreVersionController(deps: JobDeps, options: CoreVersionOptions): CoreVersionController {
  const { log } = deps;
  const name = availabilityConfigMapName(options.node);
  const planOptions = { node: options.node, reportIntervalMs: options.reportIntervalMs };
  const fanOut = createFanOut(deps, {
    node: options.node,
    podLabels: options.peerPodLabels,
    port: options.peerPort,
    headers: peerTokenHeaders(options.peerTokenFile, deps),
  });

  const containerdTarget = { address: options.containerdAddress || undefined };
  // containerd lists no IDs: each is read once from the image's manifest, then kept by manifest digest.
  const manifestConfigs = new Map<string, string>();
  async function containerdIds(): Promise<NonNullable<ImageListing["images"]> | undefined> {
    try {
      return await listContainerdImageIds(deps.runCommand, containerdTarget, { cache: manifestConfigs });
    } catch (error) {
      log.warn("Cannot read the IDs of containerd's images, so peers cannot copy from this host: {error}", {
        error: (error as Error).message,
      });
      return undefined;
    }
  }

  async function observe(kube: KubeClient | null, signal: AbortSignal): Promise<Observation> {
    const versions = kube ? readVersions(await kube.listConfigMaps(options.versionLabels), deps) : [];
    const listing = await listImages({
      kind: options.imageStore,
      dockerHost: options.dockerHost,
      containerdAddress: containerdTarget.address,
      runCommand: deps.runCommand,
      signal,
    });
    const inventory = new Set(listing.refs.map(normalizeImageRef));
    const images = listing.images ?? (listing.store === "containerd" ? await containerdIds() : undefined);
    const imageIds = images ? idsByRef(images) : undefined;
    return { observed: { versions, inventory, imageIds, now: deps.clock.now() }, listing };
  }

  async function apply(
    kube: KubeClient | null,
    plan: (previous: V1ConfigMap | null) => CoreVersionPlan,
    { dryRun }: { dryRun: boolean },
  ): Promise<Applied> {
    if (!kube) return { plan: plan(null), written: false };
    if (dryRun) return { plan: plan(await kube.getConfigMap(name)), written: false };
    const applied = await applyConfigMap(kube, name, { plan, desired: (p) => (p.write ? p.configMap : null) });
    if (applied.written) {
      log.info("Wrote ConfigMap {name}: {existing}", { name, existing: applied.plan.data.existingVersions });
    }
    return applied;
  }

  async function run(ctx: RunContext): Promise<RunOutcome<CoreVersionResult>> {
    // Every call of this run stops when the run's time limit passes: an abandoned run writes nothing late.
    const kube = deps.kube?.withSignal(ctx.signal) ?? null;
    const observation = await observe(kube, ctx.signal);
    // The plan is made from the availability ConfigMap as `apply` reads it (again after a conflict).
    const plan = (previous: V1ConfigMap | null) => planCoreVersion({ ...observation.observed, previous }, planOptions);
    const applied = await apply(kube, plan, { dryRun: ctx.dryRun });
    return outcome(observation, applied, { name, node: options.node, local: !kube, dryRun: ctx.dryRun });
  }

  return {
    name: JOBS.coreVersion.name,
    schedule: { cron: "*/10 * * * *" },
    runAtStart: true,
    timeoutMs: 60_000,
    run,
    fanOut: () => fanOut.request(),
    fanOutState: () => {
      const last = fanOut.last();
      return last ? { fanOut: last } : {};
    },
    whenFanOutIdle: () => fanOut.whenIdle(),
  };
}

/** Each normalised name's image ID (and each ID as its own), from a listing that gives IDs. */
function idsByRef(images: NonNullable<ImageListing["images"]>): Map<string, string> {
  const ids = new Map<string, string>();
  for (const { id, names } of images) {
    if (id === null) continue;
    ids.set(normalizeImageRef(id), id);
    for (const name of names) ids.set(normalizeImageRef(name), id);
  }
  return ids;
}

/** The versions of the listed ConfigMaps; each skipped ConfigMap is logged with the reason. */
function readVersions(configMaps: readonly V1ConfigMap[], deps: Pick<JobDeps, "log">): VersionSpec[] {
  const versions: VersionSpec[] = [];
  for (const cm of configMaps) {
    const parsed = parseVersionConfigMap(cm);
    if (parsed.kind === "version") {
      versions.push(parsed.version);
    } else if (parsed.quiet) {
      deps.log.debug("Skipped ConfigMap {configMap}: {reason}", { configMap: parsed.configMap, reason: parsed.reason });
    } else {
      deps.log.info("Skipped version ConfigMap {configMap}: {reason}", {
        configMap: parsed.configMap,
        reason: parsed.reason,
      });
    }
  }
  return versions;
}

/**
 * The headers that prove to the other daemons who calls: a token bound to their audience, read from its file for
 * every call (the kubelet rotates it), never the token that opens the API server.
 */
function peerTokenHeaders(path: string, deps: Pick<JobDeps, "log">): () => Record<string, string> {
  const peerToken = createPeerTokenReader(path, { log: deps.log });
  return (): Record<string, string> => {
    const token = peerToken();
    return token ? { Authorization: `Bearer ${token}` } : {};
  };
}

/** The run's result and its one-line summary. */
function outcome(
  observation: Observation,
  applied: Applied,
  options: { name: string; node: string; local: boolean; dryRun: boolean },
): RunOutcome<CoreVersionResult> {
  const { listing, observed } = observation;
  const { plan, written } = applied;
  const { name, local, dryRun } = options;
  const result: CoreVersionResult = {
    node: options.node,
    store: listing.store,
    versions: plan.versions,
    existingVersions: plan.existingVersions,
    changed: local ? false : plan.changed,
  };
  const counts = `${plan.existingVersions.length} of ${plan.versions.length} versions available`;
  const store = `${listing.store} (${listing.source}) lists ${observed.inventory.size} image references`;
  let summary: string;
  if (local) {
    summary = `Local mode: no version ConfigMaps to check; ${store}`;
  } else if (dryRun) {
    summary = `${counts}; ${store}; dry run: ConfigMap ${name} ${plan.write ? "would be written" : "is up to date"}`;
  } else {
    summary = `${counts}; ${store}; ConfigMap ${name} ${written ? "written" : "unchanged"}`;
  }
  return { summary, result, counters: versionFigures(plan) };
}

/** How many versions are known and available here, and each version's missing images. */
function versionFigures(plan: CoreVersionPlan): JobCounter[] {
  return [
    {
      name: "core_version_versions",
      help: "Engine versions in the version ConfigMaps",
      kind: "gauge",
      value: plan.versions.length,
    },
    {
      name: "core_version_available_versions",
      help: "Engine versions whose images are all in this host's image store",
      kind: "gauge",
      value: plan.existingVersions.length,
    },
    ...plan.versions.map((version): JobCounter => ({
      name: "core_version_missing_images",
      help: "Images of an engine version that this host's image store lacks",
      kind: "gauge",
      value: version.missing.length,
      labels: { version: version.name },
    })),
  ];
}
