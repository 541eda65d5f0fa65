/** How long a Lease holds, as this node may rely on it, whatever the clocks of the other nodes say. */
import { nodeKey } from "../../core/addresses.ts";
import type { LeaseObserved } from "./types.ts";

/** A Lease as this node may rely on it: its holder, whether that is this node, and until when it holds. */
export interface LeaseView {
  readonly holder: string | null;
  readonly ours: boolean;
  readonly expiresAt: Date | null;
  readonly live: boolean;
}

/** The holder and the expiry of a Lease, as this node may rely on them. */
export function viewLease(
  lease: LeaseObserved | null,
  { me, now, fallbackSeconds }: { me: string; now: Date; fallbackSeconds: number },
): LeaseView {
  const holder = lease?.holderIdentity ? lease.holderIdentity : null;
  if (lease === null || holder === null) return { holder: null, ours: false, expiresAt: null, live: false };
  const d = lease.leaseDurationSeconds;
  const ms = (typeof d === "number" && Number.isFinite(d) && d > 0 ? d : fallbackSeconds) * 1000;
  // a renewTime further ahead than one duration is no clock skew: this node does not rely on it
  const renew = lease.renewTime?.getTime();
  const fromRenew = renew !== undefined && Number.isFinite(renew) && renew - now.getTime() <= ms
    ? renew + ms
    : -Infinity;
  const seen = lease.observedAt?.getTime();
  const fromSeen = seen !== undefined && Number.isFinite(seen) ? seen + ms : -Infinity;
  const end = Math.max(fromRenew, fromSeen);
  return {
    holder,
    ours: nodeKey(holder) === me,
    expiresAt: Number.isFinite(end) ? new Date(end) : null,
    live: end > now.getTime(),
  };
}
