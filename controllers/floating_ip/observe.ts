/**
 * The floating-IP job's observation, pure: the cached MPDClusters and Leases and the host's tagged addresses -> what
 * the plan reads. The I/O (the caches, `ip addr show`) stays in the job.
 */
import type { TaggedAddress as HostTagged } from "../../host/ip_addr.ts";
import { FLOATING_IP_CLUSTER_ANNOTATION, floatingIpLeaseName, type Lease } from "../../k8s/leases.ts";
import { desiredFloatingIp } from "./desired.ts";
import type { ClusterObserved, LeaseObserved, TaggedAddress } from "./types.ts";

/** When this node first saw each Lease's resourceVersion (by name): the Lease lasts at least that long from then. */
export type LeaseSightings = Map<string, { readonly resourceVersion: string; readonly at: Date }>;

function time(value: unknown): Date | null {
  if (typeof value !== "string" && !(value instanceof Date)) return null;
  const date = new Date(value);
  return Number.isFinite(date.getTime()) ? date : null;
}

/** A Lease as the plan reads it; `sightings` is updated with its resourceVersion when it is new. */
export function leaseObserved(lease: Lease, options: { sightings: LeaseSightings; now: Date }): LeaseObserved {
  const name = lease.metadata?.name ?? "";
  const resourceVersion = lease.metadata?.resourceVersion ?? "";
  const seen = options.sightings.get(name);
  const at = seen?.resourceVersion === resourceVersion ? seen.at : options.now;
  options.sightings.set(name, { resourceVersion, at });
  const holder = lease.spec?.holderIdentity;
  const duration = lease.spec?.leaseDurationSeconds;
  return {
    holderIdentity: typeof holder === "string" ? holder : null,
    renewTime: time(lease.spec?.renewTime),
    leaseDurationSeconds: typeof duration === "number" ? duration : null,
    resourceVersion,
    observedAt: at,
  };
}

function clusterId(object: unknown): string | null {
  const metadata = (object as { metadata?: { namespace?: unknown; name?: unknown } } | null)?.metadata;
  const { namespace, name } = metadata ?? {};
  return typeof namespace === "string" && typeof name === "string" && namespace && name ? `${namespace}/${name}` : null;
}

/**
 * Every MPDCluster as the plan reads it, with its Lease. Two clusters whose plain Lease names meet (`a-b`/`c` and
 * `a`/`b-c`), or a cluster whose plain-named Lease fences another cluster, use the hashed name instead.
 */
export function clusterObservations(
  clusters: readonly unknown[],
  leases: ReadonlyMap<string, { readonly lease: Lease; readonly observed: LeaseObserved }>,
  options: { clientNic: string },
): ClusterObserved[] {
  const plainNames = clusters.map((object) => {
    const id = clusterId(object);
    if (id === null) return null;
    const [namespace, name] = id.split("/", 2);
    return floatingIpLeaseName(namespace, name);
  });
  const count = new Map<string, number>();
  for (const name of plainNames) if (name !== null) count.set(name, (count.get(name) ?? 0) + 1);
  return clusters.map((object, i) => {
    const desired = desiredFloatingIp(object, options);
    const id = clusterId(object);
    const plain = plainNames[i];
    let leaseName = plain ?? "";
    if (id !== null && plain !== null) {
      const owner = leases.get(plain)?.lease.metadata?.annotations?.[FLOATING_IP_CLUSTER_ANNOTATION];
      if ((count.get(plain) ?? 0) > 1 || (owner !== undefined && owner !== id)) {
        const [namespace, name] = id.split("/", 2);
        leaseName = floatingIpLeaseName(namespace, name, { hashed: true });
      }
    }
    return { desired, leaseName, lease: leases.get(leaseName)?.observed ?? null };
  });
}

/** The address a `fip<8 hex>` macvlan's name spells, or null. */
function addressOfVirtualIf(device: string): string | null {
  const m = /^fip([0-9a-f]{8})$/.exec(device);
  return m ? m[1].match(/../g)!.map((h) => parseInt(h, 16)).join(".") : null;
}

/**
 * The host's tagged addresses as the plan reads them. A macvlan of ours that lost its address (a half-done add)
 * is the address its name spells, with no prefix (-1), so no shape matches it and it is removed or replaced.
 */
export function planTagged(tagged: readonly HostTagged[]): TaggedAddress[] {
  return tagged.flatMap((t) => {
    const address = t.ip ?? addressOfVirtualIf(t.device);
    if (address === null) return [];
    return [{ address, prefix: t.prefix ?? -1, mode: t.mode, nic: t.nic, device: t.device }];
  });
}

/** The host's form of a tagged address, for its removal. */
export function hostTagged(t: TaggedAddress): HostTagged {
  return t.prefix < 0
    ? { mode: t.mode, nic: t.nic, device: t.device, ip: null, prefix: null }
    : { mode: t.mode, nic: t.nic, device: t.device, ip: t.address, prefix: t.prefix };
}
