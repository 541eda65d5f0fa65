/** What the floating-IP plan reads (the observation) and what it decides (the plan): the job's vocabulary. */
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
  /**
   * For `acquire`: once the Lease write succeeded, probe and add at once, as `probe-then-add` does (nothing of the
   * address is on this host, adding is allowed and no answered probe is waiting out its retry). The write is the
   * conditional one that fences, so the next run need not renew first.
   */
  readonly probeAfter?: boolean;
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
