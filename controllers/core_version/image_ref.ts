/** Image references: one spelling for every way of writing an image, and whether the local store holds one. */

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

/** The image IDs (`sha256:<hex>`) among an inventory's normalised references, for `inventoryHolds`. */
export function inventoryIds(inventory: ReadonlySet<string>): string[] {
  return [...inventory].filter((ref) => ref.startsWith("sha256:"));
}

/**
 * Whether the store holds an image, found as `docker image inspect` finds it: by name, by full ID, or by a short ID
 * (`3f57d9401f8d`, `sha256:3f57d9401f8d`) when exactly one ID starts with it. The IDs are the inventory's
 * `sha256:` entries (the Docker Engine lists every image's `Id`; containerd lists the IDs the kubelet's pulls added).
 */
export function inventoryHolds(
  inventory: ReadonlySet<string>,
  image: string,
  options: { ids: readonly string[] },
): boolean {
  if (inventory.has(normalizeImageRef(image))) return true;
  const prefix = ID_PREFIX.exec(image.trim())?.[1];
  if (prefix === undefined) return false;
  return options.ids.filter((id) => id.startsWith(`sha256:${prefix}`)).length === 1;
}
