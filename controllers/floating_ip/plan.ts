/**
 * The plan of the floating-IP job, pure: every cluster's desired address, this node's tagged addresses, the Leases,
 * the switches and the last probes, at a time -> one action per address and the `LeaderIPReady` conditions this
 * node reports.
 *
 * Why two hosts never hold an address at once:
 * - An address is added only by `probe-then-add`, which the plan gives only to the desired holder while the
 *   cluster's Lease names this node and has not expired, and which carries a renewal the job writes (PUT with the
 *   Lease's resourceVersion) before it probes: a node that lost the Lease gets 409 and adds nothing. A node takes
 *   a Lease only when it is free or expired, so of the nodes that reach the API server, one at a time holds it.
 * - A holder keeps renewing its Lease for as long as the address is on it, even when it may not remove it
 *   (`--job-enable-del-fip=false`), and clears the Lease only in the action that removed the address, after the
 *   removal. So the Lease stays taken while an old holder that can still reach the API server carries the address.
 * - A holder that cannot reach the API server keeps its address and cannot renew; its Lease expires and another
 *   node may take it, but it adds only when its RFC 5227 probe stays silent, and the old holder still answers ARP
 *   for the address: `IPConflict`, no add. The probe also fences across Leases (two clusters, one after the other,
 *   asking for one address), and two clusters asking for it at the same time get neither (`DuplicateAddress`).
 * - A holder that finds its address while the Lease is another node's, unexpired, removes its own copy.
 * What remains is a holder that has lost both the API server and the wire: its clients cannot reach it either.
 */
import { nodeKey } from "../../core/addresses.ts";
import type {
  ClusterRef,
  DesiredFloatingIp,
  DesiredRefusal,
  FloatingIpSpec,
  IpMode,
  LeaderProblem,
} from "./desired.ts";

/** An address this daemon tagged on this host (its label, or its `fip…` macvlan), as the host reports it. */
export interface TaggedAddress {
  /** The IPv4 address. */
  readonly address: string;
  /** Its prefix length. */
  readonly prefix: number;
  /** How it is carried. */
  readonly mode: IpMode;
  /** The physical NIC (for VirtualIF, the macvlan's parent). */
  readonly nic: string;
  /** The interface that carries it: the NIC (MultiIP) or the macvlan (VirtualIF). */
  readonly device: string;
}

/** A cluster's Lease as last read. */
export interface LeaseObserved {
  /** `spec.holderIdentity`, null or empty when free. */
  readonly holderIdentity: string | null;
  /** `spec.renewTime`, null when absent or unreadable. */
  readonly renewTime: Date | null;
  /** `spec.leaseDurationSeconds`, null when absent. */
  readonly leaseDurationSeconds: number | null;
  /** `metadata.resourceVersion`, for the conditional write. */
  readonly resourceVersion: string;
  /** When this node first saw this resourceVersion: the Lease then lasts at least that long, whatever the clocks. */
  readonly observedAt?: Date;
}

/** One cluster as the plan sees it. */
export interface ClusterObserved {
  /** What the cluster asks for. */
  readonly desired: DesiredFloatingIp;
  /** The name of its Lease in the daemon's namespace. */
  readonly leaseName: string;
  /** Its Lease, or null when none exists. */
  readonly lease: LeaseObserved | null;
}

/** The last duplicate-address probe of an address. */
export interface ProbeResult {
  /** Whether anyone answered. */
  readonly conflict: boolean;
  /** When. */
  readonly at: Date;
}

/** What one run observed. */
export interface FloatingIpObserved {
  /** Every MPDCluster of the cache, valid or not. */
  readonly clusters: readonly ClusterObserved[];
  /** The addresses this daemon tagged on this host. */
  readonly tagged: readonly TaggedAddress[];
  /** The names of this host's interfaces (to tell a missing NIC). */
  readonly interfaces: readonly string[];
  /** `controller-config` / `enableVip`, already read as a lenient boolean. */
  readonly enableVip: boolean;
  /** Whether the API server answered this run (else the cache and Leases may be stale). */
  readonly apiReachable: boolean;
  /** The last probe of each address, by address. */
  readonly probes: ReadonlyMap<string, ProbeResult>;
  /** The time. */
  readonly now: Date;
}

/** What the plan needs besides the observation. */
export interface FloatingIpPlanOptions {
  /** This node's name (the Leases' holderIdentity). */
  readonly nodeName: string;
  /** `--job-enable-add-fip`. */
  readonly addEnabled: boolean;
  /** `--job-enable-del-fip`. */
  readonly delEnabled: boolean;
  /** The duration written into our Leases, and assumed for a Lease that does not say. */
  readonly leaseDurationSeconds: number;
  /** How old our renewTime may get before the plan renews it. */
  readonly renewIntervalMs: number;
  /** How long after a conflicting probe the next one is due. */
  readonly probeRetryMs: number;
}

/** One Lease write: `take` (create when resourceVersion is null, else PUT), `renew`, or `clear` (holder emptied). */
export interface LeaseWrite {
  /** The Lease's name. */
  readonly name: string;
  /** What the write does. */
  readonly op: "take" | "renew" | "clear";
  /** The resourceVersion to PUT against, or null to create. */
  readonly resourceVersion: string | null;
  /** The holder to write (null on clear). */
  readonly holderIdentity: string | null;
  /** The duration to write. */
  readonly leaseDurationSeconds: number;
  /** The time to write as renewTime (and acquireTime on take). */
  readonly at: Date;
}

/** Why an action is what it is. */
export type ActionReason =
  | "Held"
  | "Acquiring"
  | "Probing"
  | "Reshaping"
  | "NotDesired"
  | "NotLeader"
  | "LeaseHeldElsewhere"
  | "IPConflict"
  | "InterfaceMissing"
  | "Disabled"
  | "DuplicateAddress"
  | "ApiUnreachable"
  | LeaderProblem;

/**
 * What to do about one address, applied in this order: remove `remove` (only what was tagged), write `leases`
 * (stop at the first that fails), then for `probe-then-add` probe and add only when the probe is silent.
 * `hold` renews our Lease; `acquire` takes it; `release` removes the address and then clears the Lease; `wait`
 * and `none` change nothing on the host.
 */
export interface FloatingIpAction {
  /** The kind. */
  readonly kind: "hold" | "acquire" | "probe-then-add" | "release" | "wait" | "none";
  /** The address. */
  readonly address: string;
  /** The cluster asking for it, null when none (or more than one) does. */
  readonly cluster: ClusterRef | null;
  /** The desired shape (the one to add), null when no single cluster asks for it. */
  readonly ip: FloatingIpSpec | null;
  /** Tagged addresses to remove first. */
  readonly remove: readonly TaggedAddress[];
  /** Lease writes, after the removals. */
  readonly leases: readonly LeaseWrite[];
  /** Why. */
  readonly reason: ActionReason;
  /** Said in sentence case, for logs, Events and the API. */
  readonly message: string;
  /** For `wait` on a Lease: its holder and when it expires. */
  readonly heldBy?: { readonly holder: string; readonly expiresAt: Date | null };
}

/** A reason of the `LeaderIPReady` condition. */
export type ConditionReason =
  | "AddressHeld"
  | "Acquiring"
  | "Probing"
  | "IPConflict"
  | "LeaseHeldElsewhere"
  | "InterfaceMissing"
  | "Disabled"
  | "DuplicateAddress"
  | LeaderProblem
  | Exclude<DesiredRefusal, "InvalidObject" | "NotConfigured">;

/** The `LeaderIPReady` condition of one cluster, as this node reports it. */
export interface LeaderIpCondition {
  /** The cluster. */
  readonly cluster: ClusterRef;
  /** True only on the holder with the address up. */
  readonly status: "True" | "False";
  /** Why. */
  readonly reason: ConditionReason;
  /** Said in sentence case. */
  readonly message: string;
}

/** What one run is to do. */
export interface FloatingIpPlan {
  /** One action per address known (desired by a cluster or tagged here), in address order. */
  readonly actions: FloatingIpAction[];
  /**
   * The conditions this node reports: for the clusters whose leader is this node, and for those whose leader is
   * unknown and whose Lease names this node. None while the API server cannot be reached.
   */
  readonly conditions: LeaderIpCondition[];
}

interface LeaseView {
  readonly holder: string | null;
  readonly ours: boolean;
  readonly expiresAt: Date | null;
  readonly live: boolean;
}

/** The holder and the expiry of a Lease, as this node may rely on them. */
function viewLease(
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

function sameShape(tagged: TaggedAddress, ip: FloatingIpSpec): boolean {
  return tagged.prefix === ip.mask && tagged.mode === ip.mode && tagged.nic === ip.nic;
}

function byAddress(a: string, b: string): number {
  const n = (s: string) => s.split(".").reduce((v, p) => v * 256 + (Number(p) || 0), 0);
  return n(a) - n(b) || (a < b ? -1 : a > b ? 1 : 0);
}

/** What one planning run shares between its steps. */
interface Run {
  readonly me: string;
  readonly observed: FloatingIpObserved;
  readonly options: FloatingIpPlanOptions;
  readonly taggedBy: ReadonlyMap<string, TaggedAddress[]>;
  readonly conditions: LeaderIpCondition[];
}

function leaseWrite(
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

function leaseOf(run: Run, c: ClusterObserved): LeaseView {
  return viewLease(c.lease, { me: run.me, now: run.observed.now, fallbackSeconds: run.options.leaseDurationSeconds });
}

/** Our Lease's renewal when it is due: lapsed, old, unreadable, or ahead of our clock. */
function renewal(run: Run, c: ClusterObserved): LeaseWrite[] {
  const now = run.observed.now.getTime();
  const renewedAt = c.lease?.renewTime?.getTime() ?? NaN;
  const due = !leaseOf(run, c).live || !(now - renewedAt < run.options.renewIntervalMs) || renewedAt > now;
  return due ? [leaseWrite(run, { name: c.leaseName, op: "renew", resourceVersion: c.lease!.resourceVersion })] : [];
}

function report(run: Run, condition: LeaderIpCondition): void {
  run.conditions.push(condition);
}

function disabledMessage(address: string, enableVip: boolean): string {
  return enableVip
    ? `Not adding ${address}: adding is disabled (--job-enable-add-fip=false)`
    : `Not adding ${address}: controller-config enableVip is false`;
}

/** An address this node may not keep: remove it (with del enabled), then clear the Leases it held for it. */
function letGo(
  run: Run,
  address: string,
  why: { owners: readonly ClusterObserved[]; reason: ActionReason; text: string },
): FloatingIpAction {
  const tagged = run.taggedBy.get(address) ?? [];
  const single = why.owners.length === 1 && why.owners[0].desired.kind !== "refuse" ? why.owners[0].desired : null;
  const base = { address, cluster: single?.cluster ?? null, ip: single?.ip ?? null };
  const ours = why.owners.filter((c) => leaseOf(run, c).ours);
  if (tagged.length > 0 && !run.options.delEnabled) {
    // the address stays here, so the Lease must stay taken: the next holder waits instead of probing into it
    return {
      ...base,
      kind: ours.length > 0 ? "hold" : "none",
      remove: [],
      leases: ours.flatMap((c) => renewal(run, c)),
      reason: "Disabled",
      message: `Keeping ${address} (${why.text}): removing is disabled (--job-enable-del-fip=false)`,
    };
  }
  const leases = ours.map((c) =>
    leaseWrite(run, { name: c.leaseName, op: "clear", resourceVersion: c.lease!.resourceVersion })
  );
  if (tagged.length === 0 && leases.length === 0) {
    return {
      ...base,
      kind: "none",
      remove: [],
      leases,
      reason: why.reason,
      message: `Not holding ${address}: ${why.text}`,
    };
  }
  return {
    ...base,
    kind: "release",
    remove: tagged,
    leases,
    reason: why.reason,
    message: tagged.length > 0 ? `Removing ${address}: ${why.text}` : `Clearing the Lease of ${address}: ${why.text}`,
  };
}

/** The address that two or more clusters ask for: nobody holds it, and every leader among them says so. */
function decideDuplicate(run: Run, address: string, owners: readonly ClusterObserved[]): FloatingIpAction {
  const names = owners.map((c) => `${c.desired.cluster!.namespace}/${c.desired.cluster!.name}`).sort();
  const text = `${names.join(", ")} all ask for it`;
  for (const c of owners) {
    const reporter = c.desired.kind === "assign" ? c.desired.leader === run.me : leaseOf(run, c).ours;
    if (reporter) {
      report(run, {
        cluster: c.desired.cluster!,
        status: "False",
        reason: "DuplicateAddress",
        message: `${address}: ${text}`,
      });
    }
  }
  return letGo(run, address, { owners, reason: "DuplicateAddress", text });
}

/** The address whose holder is unknown: the node that has it keeps it and its Lease; nobody takes it. */
function decideKeep(run: Run, c: ClusterObserved): FloatingIpAction {
  const desired = c.desired as Extract<DesiredFloatingIp, { kind: "keep" }>;
  const { cluster, ip } = desired;
  const tagged = run.taggedBy.get(ip.address) ?? [];
  const lease = leaseOf(run, c);
  const message = `Keeping the current state of ${ip.address}: ${desired.message}`;
  if (lease.ours || (lease.holder === null && tagged.length > 0)) {
    report(run, { cluster, status: "False", reason: desired.reason, message });
  }
  const hold = tagged.length > 0 && lease.ours;
  return {
    address: ip.address,
    cluster,
    ip,
    kind: hold ? "hold" : "none",
    remove: [],
    leases: hold ? renewal(run, c) : [],
    reason: desired.reason,
    message,
  };
}

/** The address of the one cluster that asks for it, with its leader known. */
function decideAssign(run: Run, c: ClusterObserved): FloatingIpAction {
  const { observed, options } = run;
  const desired = c.desired as Extract<DesiredFloatingIp, { kind: "assign" }>;
  const { cluster, ip } = desired;
  const { address } = ip;
  const tagged = run.taggedBy.get(address) ?? [];
  const held = tagged.filter((t) => sameShape(t, ip));
  const misshapen = tagged.filter((t) => !sameShape(t, ip));
  const lease = leaseOf(run, c);
  const base = { address, cluster, ip, remove: [] as TaggedAddress[], leases: [] as LeaseWrite[] };
  const say = (status: "True" | "False", reason: ConditionReason, message: string) =>
    report(run, { cluster, status, reason, message });
  const adding = observed.enableVip && options.addEnabled;
  const nicPresent = observed.interfaces.includes(ip.nic);

  if (desired.leader !== run.me) {
    return letGo(run, address, { owners: [c], reason: "NotLeader", text: `the leader is on ${desired.leader}` });
  }
  if (lease.holder !== null && !lease.ours && lease.live) {
    const heldBy = { holder: lease.holder, expiresAt: lease.expiresAt };
    const until = lease.expiresAt ? ` until ${lease.expiresAt.toISOString()}` : "";
    say("False", "LeaseHeldElsewhere", `${address}: the Lease is held by ${lease.holder}${until}`);
    if (tagged.length > 0) {
      // another node holds the fence, so this copy may be the second one: it goes (with del enabled)
      const text = `the Lease is held by ${lease.holder}`;
      return { ...letGo(run, address, { owners: [], reason: "LeaseHeldElsewhere", text }), cluster, ip, heldBy };
    }
    const message = `Waiting for the Lease of ${address}, held by ${lease.holder}${until}`;
    return { ...base, kind: "wait", reason: "LeaseHeldElsewhere", message, heldBy };
  }
  if (!lease.ours) {
    // free or expired: take it when this node may add, or when it already carries the address (after a restart)
    if (!adding && tagged.length === 0) {
      say("False", "Disabled", disabledMessage(address, observed.enableVip));
      return { ...base, kind: "none", reason: "Disabled", message: disabledMessage(address, observed.enableVip) };
    }
    if (held.length === 0 && !nicPresent) {
      say("False", "InterfaceMissing", `${address}: interface ${ip.nic} is missing`);
      return {
        ...base,
        kind: "none",
        reason: "InterfaceMissing",
        message: `Not taking ${address}: ${ip.nic} is missing`,
      };
    }
    say("False", "Acquiring", `${address}: taking the Lease`);
    const take = leaseWrite(run, { name: c.leaseName, op: "take", resourceVersion: c.lease?.resourceVersion ?? null });
    return { ...base, kind: "acquire", leases: [take], reason: "Acquiring", message: `Taking the Lease of ${address}` };
  }
  if (held.length > 0) {
    say("True", "AddressHeld", `${address} is on ${ip.nic} (${ip.mode})`);
    const remove = options.delEnabled ? misshapen : [];
    return { ...base, kind: "hold", remove, leases: renewal(run, c), reason: "Held", message: `Holding ${address}` };
  }
  if (misshapen.length > 0) {
    if (!options.delEnabled || !adding) {
      // the old shape still answers for the address: keep it, and the fence with it
      say("True", "AddressHeld", `${address} is on ${misshapen[0].device}, not in the shape asked for`);
      return { ...base, kind: "hold", leases: renewal(run, c), reason: "Held", message: `Holding ${address}` };
    }
    say("False", "Probing", `${address}: moving to ${ip.nic} (${ip.mode})`);
    return {
      ...base,
      kind: "release",
      remove: misshapen,
      leases: renewal(run, c),
      reason: "Reshaping",
      message: `Removing ${address} to add it again as ${ip.mode} on ${ip.nic}`,
    };
  }
  if (!adding) {
    say("False", "Disabled", disabledMessage(address, observed.enableVip));
    return { ...base, kind: "none", reason: "Disabled", message: disabledMessage(address, observed.enableVip) };
  }
  if (!nicPresent) {
    say("False", "InterfaceMissing", `${address}: interface ${ip.nic} is missing`);
    return {
      ...base,
      kind: "none",
      reason: "InterfaceMissing",
      message: `Not adding ${address}: ${ip.nic} is missing`,
    };
  }
  const renew = leaseWrite(run, { name: c.leaseName, op: "renew", resourceVersion: c.lease!.resourceVersion });
  if (!lease.live) {
    // our Lease lapsed: renew it before probing, so that a node that took it meanwhile makes the write fail
    say("False", "Acquiring", `${address}: renewing the lapsed Lease`);
    return {
      ...base,
      kind: "acquire",
      leases: [renew],
      reason: "Acquiring",
      message: `Renewing the Lease of ${address}`,
    };
  }
  const probe = observed.probes.get(address);
  if (probe?.conflict) {
    const retry = new Date(probe.at.getTime() + options.probeRetryMs);
    say("False", "IPConflict", `${address}: another host answered the probe at ${probe.at.toISOString()}`);
    if (observed.now < retry) {
      const message = `Not adding ${address}: another host answers for it; probing again at ${retry.toISOString()}`;
      return { ...base, kind: "wait", leases: renewal(run, c), reason: "IPConflict", message };
    }
  } else {
    say("False", "Probing", `${address}: probing before adding`);
  }
  const message = `Probing ${address}, then adding it as ${ip.mode} on ${ip.nic}`;
  return { ...base, kind: "probe-then-add", leases: [renew], reason: "Probing", message };
}

function groupBy<T>(items: readonly T[], key: (item: T) => string | null): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    if (k === null) continue;
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

/** Plans one run over all clusters at once, in time linear in the clusters and addresses (plus sorting). */
export function planFloatingIps(observed: FloatingIpObserved, options: FloatingIpPlanOptions): FloatingIpPlan {
  const run: Run = {
    me: nodeKey(options.nodeName),
    observed,
    options,
    taggedBy: groupBy(observed.tagged, (t) => t.address),
    conditions: [],
  };
  const claims = groupBy(observed.clusters, (c) => c.desired.kind === "refuse" ? null : c.desired.ip.address);
  const addresses = [...new Set([...claims.keys(), ...run.taggedBy.keys()])].sort(byAddress);

  if (!observed.apiReachable) {
    // partitioned: what this node holds may still be its own; it keeps everything and writes nothing
    const actions = addresses.map((address): FloatingIpAction => {
      const owners = claims.get(address) ?? [];
      const one = owners.length === 1 && owners[0].desired.kind !== "refuse" ? owners[0].desired : null;
      return {
        kind: "none",
        address,
        cluster: one?.cluster ?? null,
        ip: one?.ip ?? null,
        remove: [],
        leases: [],
        reason: "ApiUnreachable",
        message: run.taggedBy.has(address)
          ? `Keeping ${address}: the API server cannot be reached`
          : `Not taking ${address}: the API server cannot be reached`,
      };
    });
    return { actions, conditions: [] };
  }

  const actions = addresses.map((address) => {
    const owners = claims.get(address) ?? [];
    if (owners.length === 0) {
      return letGo(run, address, { owners, reason: "NotDesired", text: "no cluster asks for it" });
    }
    if (owners.length > 1) return decideDuplicate(run, address, owners);
    return owners[0].desired.kind === "keep" ? decideKeep(run, owners[0]) : decideAssign(run, owners[0]);
  });
  for (const { desired: d } of observed.clusters) {
    if (d.kind !== "refuse" || d.cluster === null || d.leader !== run.me) continue;
    if (d.reason === "InvalidObject" || d.reason === "NotConfigured") continue;
    report(run, { cluster: d.cluster, status: "False", reason: d.reason, message: d.message });
  }
  return { actions, conditions: run.conditions };
}
