/** What one floating-IP planning run shares between its steps, and the small rules they all use. */
import type { FloatingIpSpec } from "./desired.ts";
import { type LeaseView, viewLease } from "./lease_view.ts";
import type {
  ClusterObserved,
  FloatingIpObserved,
  FloatingIpPlanOptions,
  LeaderIpCondition,
  LeaseWrite,
  TaggedAddress,
} from "./types.ts";

/** Whether a tagged address has the shape the cluster asks for. */
export function sameShape(tagged: TaggedAddress, ip: FloatingIpSpec): boolean {
  return tagged.prefix === ip.mask && tagged.mode === ip.mode && tagged.nic === ip.nic;
}

/** Orders dotted addresses numerically, so plans list them in a stable order. */
export function byAddress(a: string, b: string): number {
  const n = (s: string) => s.split(".").reduce((v, p) => v * 256 + (Number(p) || 0), 0);
  return n(a) - n(b) || (a < b ? -1 : a > b ? 1 : 0);
}

/** What one planning run shares between its steps. */
export interface Run {
  readonly me: string;
  readonly observed: FloatingIpObserved;
  readonly options: FloatingIpPlanOptions;
  readonly taggedBy: ReadonlyMap<string, TaggedAddress[]>;
  readonly conditions: LeaderIpCondition[];
}

/** The write of one of this node's Leases, at the plan's time. */
export function leaseWrite(
  run: Run,
  lease: { name: string; op: LeaseWrite["op"]; resourceVersion: string | null },
): LeaseWrite {
  return {
    ...lease,
    holderIdentity: lease.op === "clear" ? null : run.options.nodeName,
    leaseDurationSeconds: run.options.leaseDurationSeconds,
    at: run.observed.now,
  };
}

/** The cluster's Lease as this node may rely on it. */
export function leaseOf(run: Run, c: ClusterObserved): LeaseView {
  return viewLease(c.lease, { me: run.me, now: run.observed.now, fallbackSeconds: run.options.leaseDurationSeconds });
}

/** Our Lease's renewal when it is due: lapsed, old, unreadable, or ahead of our clock. */
export function renewal(run: Run, c: ClusterObserved): LeaseWrite[] {
  const now = run.observed.now.getTime();
  const renewedAt = c.lease?.renewTime?.getTime() ?? NaN;
  const due = !leaseOf(run, c).live || !(now - renewedAt < run.options.renewIntervalMs) || renewedAt > now;
  return due ? [leaseWrite(run, { name: c.leaseName, op: "renew", resourceVersion: c.lease!.resourceVersion })] : [];
}

/** Adds a `LeaderIPReady` condition that this node reports. */
export function report(run: Run, condition: LeaderIpCondition): void {
  run.conditions.push(condition);
}

/** Why an address is not added: which switch is off. */
export function disabledMessage(address: string, enableVip: boolean): string {
  return enableVip
    ? `Not adding ${address}: adding is disabled (--job-enable-add-fip=false)`
    : `Not adding ${address}: controller-config enableVip is false`;
}
