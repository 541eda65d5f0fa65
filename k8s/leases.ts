/**
 * Leases (`coordination.k8s.io/v1`) in the daemon's namespace: get, create, and update with the resourceVersion read
 * (a 409 Conflict means another holder wrote first), and the name of a floating IP's Lease.
 */
import type { V1Lease, V1LeaseSpec } from "@kubernetes/client-node";
import { sha256Hex } from "../core/sha256.ts";
import type { KubeClient } from "./client.ts";
import { KubeError } from "./errors.ts";
import type { ListWatch } from "./informer.ts";
import { collectionSource } from "./list_watch.ts";

/** A Lease's spec as it is sent and received: its times are MicroTime strings (see `microTime`). */
export type LeaseSpec = Omit<V1LeaseSpec, "acquireTime" | "renewTime"> & {
  /** When the current holder took the Lease. */
  acquireTime?: string;
  /** When the holder last renewed it. */
  renewTime?: string;
};

/** A Lease as it is sent and received. */
export type Lease = Omit<V1Lease, "spec"> & {
  /** Holder, duration, times and transitions. */
  spec?: LeaseSpec;
};

const MAX_NAME = 63;

/** The label on every floating-IP Lease this daemon creates: the Lease informer's selector. */
export const FLOATING_IP_LEASE_LABEL = "polarstack.io/floating-ip";
/** The annotation that names the cluster (`<namespace>/<name>`) a floating-IP Lease fences. */
export const FLOATING_IP_CLUSTER_ANNOTATION = "polarstack.io/mpdcluster";
const HASH_CHARS = 10;
const seg = encodeURIComponent;

function leaseBody(kube: KubeClient, lease: Lease): Lease {
  return {
    ...lease,
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { ...lease.metadata, namespace: kube.namespace },
  };
}

function leasesPath(kube: KubeClient): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${seg(kube.namespace)}/leases`;
}

/**
 * The name of the Lease of a cluster's floating IP: `polarstack-fip-<namespace>-<name>`; when that is longer than 63
 * characters (or not a valid name), a readable prefix of it, `-`, and 10 hex digits of a SHA-256 of
 * `<namespace>/<name>`, so distinct long names stay distinct. `hashed` asks for the second form whatever the length:
 * for two clusters whose plain names meet (`a-b`/`c` and `a`/`b-c`).
 */
export function floatingIpLeaseName(namespace: string, name: string, options: { hashed?: boolean } = {}): string {
  const plain = `polarstack-fip-${namespace}-${name}`;
  if (!options.hashed && plain.length <= MAX_NAME && isDnsSubdomain(plain)) return plain;
  const hash = sha256Hex(`${namespace}/${name}`).slice(0, HASH_CHARS);
  const prefix = plain.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, MAX_NAME - 1 - HASH_CHARS)
    .replace(/-+$/, "");
  return `${prefix}-${hash}`;
}

/** Whether `name` is a valid DNS-1123 subdomain (the rule for most object names, Leases included). */
export function isDnsSubdomain(name: string): boolean {
  return name.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name);
}

/** A Lease of the daemon's namespace, or null when it does not exist. */
export async function getLease(kube: KubeClient, name: string): Promise<Lease | null> {
  try {
    return await kube.request("GET", `${leasesPath(kube)}/${seg(name)}`, { what: `get Lease "${name}"` }) as Lease;
  } catch (error) {
    if (error instanceof KubeError && error.status === 404) return null;
    throw error;
  }
}

/** Creates a Lease in the daemon's namespace; a KubeError with status 409 (AlreadyExists) when it exists. */
export async function createLease(kube: KubeClient, lease: Lease): Promise<Lease> {
  const name = lease.metadata?.name ?? "";
  const body = leaseBody(kube, lease);
  return await kube.request("POST", leasesPath(kube), { body, what: `create Lease "${name}"` }) as Lease;
}

/**
 * Replaces a Lease with the resourceVersion it carries (the one read); a KubeError with status 409 (Conflict) when
 * another writer changed it since.
 */
export async function updateLease(kube: KubeClient, lease: Lease): Promise<Lease> {
  const name = lease.metadata?.name ?? "";
  if (!lease.metadata?.resourceVersion) {
    throw new KubeError(`Cannot update Lease "${name}": it carries no resourceVersion`, { status: 0 });
  }
  const body = leaseBody(kube, lease);
  return await kube.request("PUT", `${leasesPath(kube)}/${seg(name)}`, {
    body,
    what: `update Lease "${name}"`,
  }) as Lease;
}

/** The informer's source: the floating-IP Leases of the daemon's namespace (by their label). */
export function floatingIpLeaseSource(kube: KubeClient): ListWatch<Lease> {
  return collectionSource<Lease>(kube, {
    path: leasesPath(kube),
    what: `floating-IP Leases in namespace "${kube.namespace}"`,
    labelSelector: `${FLOATING_IP_LEASE_LABEL}=true`,
  });
}
