/** A planned Lease write as the object sent: created, taken, renewed or cleared, the rest of the Lease kept. */
import {
  FLOATING_IP_CLUSTER_ANNOTATION,
  FLOATING_IP_LEASE_LABEL,
  type Lease,
  type LeaseSpec,
} from "../../k8s/leases.ts";
import { microTime } from "../../k8s/values.ts";
import type { ClusterRef } from "./desired.ts";
import type { LeaseWrite } from "./types.ts";

/** The Lease to send for `write`: a new one (no `current`), or `current` with its spec changed as the write says. */
export function leaseForWrite(
  write: LeaseWrite,
  options: { current: Lease | null; cluster: ClusterRef | null },
): Lease {
  const at = microTime(write.at);
  const spec: LeaseSpec = { ...options.current?.spec };
  if (write.op === "clear") {
    delete spec.holderIdentity;
  } else {
    if (write.op === "take" || spec.holderIdentity !== write.holderIdentity) {
      spec.acquireTime = at;
      spec.leaseTransitions = (spec.leaseTransitions ?? -1) + 1;
    }
    spec.holderIdentity = write.holderIdentity ?? undefined;
    spec.leaseDurationSeconds = write.leaseDurationSeconds;
  }
  spec.renewTime = at;
  const metadata = options.current?.metadata ?? { name: write.name };
  const owner = options.cluster ? `${options.cluster.namespace}/${options.cluster.name}` : undefined;
  return {
    ...options.current,
    metadata: {
      ...metadata,
      name: write.name,
      resourceVersion: write.resourceVersion ?? undefined,
      labels: { ...metadata.labels, [FLOATING_IP_LEASE_LABEL]: "true" },
      annotations: owner ? { ...metadata.annotations, [FLOATING_IP_CLUSTER_ANNOTATION]: owner } : metadata.annotations,
    },
    spec,
  };
}
