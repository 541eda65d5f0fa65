/**
 * Pure decisions of image replication: which versions are missing here and held by a peer (from the peers'
 * availability ConfigMaps, with every image's ID), and which peer to ask.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { nodeKey } from "../../core/addresses.ts";

/** The prefix of every node's availability ConfigMap (the core-version job's). */
const AVAILABILITY_PREFIX = "polarstack-daemon-version-availability-";

const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;

/** One image of a version as a peer holds it. */
export interface PeerImage {
  /** The reference as the version ConfigMap writes it. */
  readonly ref: string;
  /** The image ID (config digest, `sha256:<64 hex>`) the peer has under that reference. */
  readonly id: string;
}

/** What one peer's availability ConfigMap says it holds. */
export interface PeerHoldings {
  /** The peer's node name, lower-cased (from the ConfigMap's name). */
  readonly node: string;
  /** Each version the peer has whole, with the ID of every image; versions without IDs are left out. */
  readonly versions: ReadonlyMap<string, readonly PeerImage[]>;
}

/** Why a peer's ConfigMap was read only in part, or not at all. */
export interface HoldingsProblem {
  /** The ConfigMap. */
  readonly configMap: string;
  /** The cause, one line. */
  readonly reason: string;
}

/** What `readPeerHoldings` made of the listed availability ConfigMaps. */
export interface PeerHoldingsRead {
  /** The peers (this node excluded), in node name order. */
  readonly peers: PeerHoldings[];
  /** ConfigMaps or versions that could not be used, with the reason. */
  readonly problems: HoldingsProblem[];
}

/** One entry of the `details` key, as far as replication reads it. */
interface DetailEntry {
  readonly name?: unknown;
  readonly images?: unknown;
  readonly available?: unknown;
  readonly imageIds?: unknown;
}

/**
 * Reads the other nodes' availability ConfigMaps: `details` (JSON list of `{name, images, available, imageIds}`,
 * `imageIds` mapping each reference to its ID). A version counts only when it is available there and every one of its
 * images has a well-formed ID, since the receiver could not verify a copy otherwise.
 */
export function readPeerHoldings(configMaps: readonly V1ConfigMap[], self: string): PeerHoldingsRead {
  const peers: PeerHoldings[] = [];
  const problems: HoldingsProblem[] = [];
  for (const cm of configMaps) {
    const name = cm.metadata?.name ?? "";
    if (!name.startsWith(AVAILABILITY_PREFIX)) continue;
    const node = nodeKey(name.slice(AVAILABILITY_PREFIX.length));
    if (node === "" || node === nodeKey(self)) continue;
    let details: unknown;
    try {
      details = JSON.parse(cm.data?.details ?? "");
    } catch {
      problems.push({ configMap: name, reason: "its details key is missing or not JSON" });
      continue;
    }
    if (!Array.isArray(details)) {
      problems.push({ configMap: name, reason: "its details key is not a JSON list" });
      continue;
    }
    const versions = new Map<string, PeerImage[]>();
    for (const entry of details as DetailEntry[]) {
      const images = readEntry(entry);
      if (images === null) continue;
      if (typeof images === "string") {
        problems.push({ configMap: name, reason: images });
        continue;
      }
      versions.set(String(entry.name), images);
    }
    peers.push({ node, versions });
  }
  peers.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { peers, problems };
}

/** The images of an available entry; null for an entry that is not available; a reason when it cannot be used. */
function readEntry(entry: DetailEntry): PeerImage[] | string | null {
  if (typeof entry !== "object" || entry === null || typeof entry.name !== "string" || entry.name === "") return null;
  if (entry.available !== true || !Array.isArray(entry.images)) return null;
  const ids = typeof entry.imageIds === "object" && entry.imageIds !== null
    ? entry.imageIds as Record<string, unknown>
    : {};
  const images: PeerImage[] = [];
  for (const ref of entry.images) {
    const id = typeof ref === "string" ? ids[ref] : undefined;
    if (typeof ref !== "string" || typeof id !== "string" || !IMAGE_ID.test(id)) {
      return `version "${entry.name}" gives no image ID for ${JSON.stringify(ref)}`;
    }
    images.push({ ref, id });
  }
  return images.length > 0 ? images : null;
}

/** A version to copy here, and who holds it. */
export interface ReplicationCandidate {
  /** The version's name. */
  readonly version: string;
  /** Its image references, as the version ConfigMap writes them. */
  readonly images: readonly string[];
  /** The peers that hold it whole, each with the IDs it advertises, in node name order. */
  readonly sources: readonly { readonly node: string; readonly images: readonly PeerImage[] }[];
}

/** A version as the local core-version check saw it. */
export interface LocalVersion {
  /** Its name. */
  readonly name: string;
  /** Its images. */
  readonly images: readonly string[];
  /** Whether all are here. */
  readonly available: boolean;
}

/**
 * The versions missing here that some peer holds whole with the same images, in version name order. `only` narrows
 * to one version (the POST and `once --version`); `from` to one peer (`--from`).
 */
export function planReplication(
  local: readonly LocalVersion[],
  peers: readonly PeerHoldings[],
  options: { only?: string; from?: string } = {},
): ReplicationCandidate[] {
  const from = options.from === undefined ? undefined : nodeKey(options.from);
  const candidates: ReplicationCandidate[] = [];
  const seen = new Set<string>();
  for (const version of [...local].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (version.available || seen.has(version.name)) continue;
    if (options.only !== undefined && version.name !== options.only) continue;
    seen.add(version.name);
    const wanted = [...new Set(version.images)].sort();
    const sources = [];
    for (const peer of peers) {
      if (from !== undefined && peer.node !== from) continue;
      const held = peer.versions.get(version.name);
      // A peer whose ConfigMap lists other images for the version saw another ConfigMap: not a source.
      if (!held || !sameRefs(held.map((i) => i.ref), wanted)) continue;
      sources.push({ node: peer.node, images: held });
    }
    if (sources.length > 0) candidates.push({ version: version.name, images: wanted, sources });
  }
  return candidates;
}

function sameRefs(a: readonly string[], sortedB: readonly string[]): boolean {
  const sortedA = [...new Set(a)].sort();
  return sortedA.length === sortedB.length && sortedA.every((ref, i) => ref === sortedB[i]);
}

/** FNV-1a of a string: a stable tie-break, so receivers that see equal loads still pick different peers. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * Orders peers best first: fewest transfers in progress (a peer whose count is unknown goes after every known
 * one), then a hash of receiver and peer, so equal peers are spread over the receivers instead of all picking one.
 */
export function rankPeers(
  peers: readonly string[],
  receiver: string,
  options: { load: ReadonlyMap<string, number> },
): string[] {
  const key = (peer: string) => options.load.get(peer) ?? Number.POSITIVE_INFINITY;
  return [...new Set(peers)].sort((a, b) => {
    const byLoad = key(a) - key(b);
    if (byLoad !== 0 && !Number.isNaN(byLoad)) return byLoad;
    return fnv1a(`${receiver}/${a}`) - fnv1a(`${receiver}/${b}`) || (a < b ? -1 : a > b ? 1 : 0);
  });
}

/** A copy whose loaded image is not the one advertised. */
export interface ImageMismatch {
  /** Always `ImageMismatch`. */
  readonly failure: "ImageMismatch";
  /** One line naming the reference and the three IDs. */
  readonly message: string;
}

/**
 * Checks a loaded image: its local ID must equal both the peer's `X-Image-Id` and the ID in the peer's details.
 * A missing local ID (the load made no image under the reference) is a mismatch too.
 */
export function verifyLoaded(
  image: PeerImage,
  loaded: { header: string | null; local: string | null },
): ImageMismatch | null {
  if (loaded.local !== null && loaded.local === image.id && loaded.header === image.id) return null;
  return {
    failure: "ImageMismatch",
    message: `Image ${image.ref} does not match: loaded ${loaded.local ?? "nothing"}, the peer sent ` +
      `${loaded.header ?? "no X-Image-Id"}, its details say ${image.id}`,
  };
}
