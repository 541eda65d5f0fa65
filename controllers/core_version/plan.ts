/** Pure decisions of the core-version job: which versions are available here, and what the availability ConfigMap holds. */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { nodeKey } from "../../core/addresses.ts";
import { kubeTime } from "../../k8s/values.ts";
import { inventoryHolds, inventoryIds, normalizeImageRef } from "./image_ref.ts";
import type { VersionSpec } from "./versions.ts";

/** What the job observed, for `planCoreVersion`. */
export interface CoreVersionObserved {
  /** The versions read from their ConfigMaps. */
  readonly versions: readonly VersionSpec[];
  /** The local store's references, normalised with `normalizeImageRef`. */
  readonly inventory: ReadonlySet<string>;
  /** Each normalised reference's image ID, when the store lists IDs (the Docker Engine does); absent: none known. */
  readonly imageIds?: ReadonlyMap<string, string>;
  /** The availability ConfigMap as it is now, or null. */
  readonly previous: V1ConfigMap | null;
  /** The time of the check. */
  readonly now: Date;
}

/** How `planCoreVersion` decides. */
export interface CoreVersionPlanOptions {
  /** This host's Node name (names the availability ConfigMap). */
  readonly node: string;
  /** Rewrite at least this often, even when nothing changed (milliseconds). */
  readonly reportIntervalMs: number;
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
  /**
   * The ID (config digest) of each image found here, keyed as written in the ConfigMap, so that a peer copying the
   * version knows what to expect; only when the store lists IDs.
   */
  readonly imageIds?: Record<string, string>;
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
export interface CoreVersionPlan {
  /** Every version, in ConfigMap name order. */
  readonly versions: VersionAvailability[];
  /** Names of the available versions (each once). */
  readonly existingVersions: string[];
  /** What the ConfigMap's three keys should hold. */
  readonly data: AvailabilityData;
  /** The desired ConfigMap: the previous one's labels, annotations and other keys kept, the three keys replaced. */
  readonly configMap: V1ConfigMap;
  /** Whether something but `checkTime` differs from the previous ConfigMap. */
  readonly changed: boolean;
  /** Whether to write: changed, missing, or the last write is at least `reportIntervalMs` old. */
  readonly write: boolean;
}

/** The name of this node's availability ConfigMap. */
export function availabilityConfigMapName(node: string): string {
  return `polarstack-daemon-version-availability-${nodeKey(node)}`;
}

function byConfigMap(a: VersionSpec, b: VersionSpec): number {
  return a.configMap < b.configMap ? -1 : a.configMap > b.configMap ? 1 : 0;
}

/** The IDs of the images the store lists under their name (or as their full ID). */
function idsOf(images: readonly string[], known: ReadonlyMap<string, string>): Record<string, string> {
  const found: Record<string, string> = {};
  for (const image of images) {
    const id = known.get(normalizeImageRef(image));
    if (id) found[image] = id;
  }
  return found;
}

/** Decides which versions are available and whether the availability ConfigMap must be written. */
export function planCoreVersion(observed: CoreVersionObserved, options: CoreVersionPlanOptions): CoreVersionPlan {
  const { inventory, previous, now } = observed;
  const ids = inventoryIds(inventory);
  const versions = [...observed.versions].sort(byConfigMap).map((v): VersionAvailability => {
    const missing = v.images.filter((image) => !inventoryHolds(inventory, image, { ids }));
    const version = {
      name: v.name,
      configMap: v.configMap,
      images: [...v.images],
      missing,
      available: !missing.length,
    };
    return observed.imageIds ? { ...version, imageIds: idsOf(v.images, observed.imageIds) } : version;
  });
  const existingVersions = [...new Set(versions.filter((v) => v.available).map((v) => v.name))];
  const data: AvailabilityData = {
    existingVersions: existingVersions.join(","),
    checkTime: kubeTime(now),
    details: JSON.stringify(versions),
  };
  const configMap: V1ConfigMap = {
    metadata: {
      name: availabilityConfigMapName(options.node),
      labels: previous?.metadata?.labels,
      annotations: previous?.metadata?.annotations,
    },
    data: { ...previous?.data, ...data },
  };
  const old = previous?.data;
  const changed = !old || old.existingVersions !== data.existingVersions || old.details !== data.details;
  const lastWrite = old?.checkTime ? Date.parse(old.checkTime) : NaN;
  const stale = Number.isNaN(lastWrite) || now.getTime() - lastWrite >= options.reportIntervalMs;
  return { versions, existingVersions, data, configMap, changed, write: changed || stale };
}
