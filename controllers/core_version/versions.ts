/** Reading the operator's minor-version ConfigMaps: a version's name and its images. */
import type { V1ConfigMap } from "@kubernetes/client-node";

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
