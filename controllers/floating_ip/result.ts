/** The floating-IP job's result, pure: the plan, what was applied and what the job remembers -> the API's JSON. */
import { virtualIfName } from "../../host/ip_addr.ts";
import type { ActionApplied } from "./apply.ts";
import type { FloatingIpAction, FloatingIpPlan, LeaderIpCondition, TaggedAddress } from "./types.ts";

/** One address this node holds or should hold, or was told about. */
export interface FloatingIpEntry {
  /** The IPv4 address. */
  readonly address: string;
  /** `namespace/name` of the cluster asking for it, or null (none, or more than one). */
  readonly cluster: string | null;
  /** The mode asked for, or the one it is held in. */
  readonly mode: string | null;
  /** The NIC asked for, or the one it is held on. */
  readonly nic: string | null;
  /** The interface that carries it here, or null when this host does not hold it. */
  readonly device: string | null;
  /** Whether this host carries the address after the run. */
  readonly held: boolean;
  /** What the plan did about it (`hold`, `acquire`, `probe-then-add`, `release`, `wait`, `none`). */
  readonly action: FloatingIpAction["kind"];
  /** Why. */
  readonly reason: string;
  /** Said in sentence case. */
  readonly message: string;
  /** The Lease as this node sees it, or null when there is none. */
  readonly lease: { readonly holder: string | null; readonly expiresAt: string | null } | null;
  /** When this host last added or removed it (since the daemon started), or null. */
  readonly lastChange: string | null;
  /** When this host last started announcing it, or null. */
  readonly announcedAt: string | null;
  /** What failed when the action was applied, or null. */
  readonly error: string | null;
}

/** The result of one run: `once floating-ip --json` and `GET /api/v1/floating-ips`. */
export interface FloatingIpResult {
  /** This host's Node name. */
  readonly node: string;
  /** Whether the cluster's caches and writes could be relied on in this run (else every address is kept). */
  readonly apiReachable: boolean;
  /** `controller-config` / `enableVip`. */
  readonly enableVip: boolean;
  /** MPDClusters in the cache. */
  readonly clusters: number;
  /** Every address known here, in address order. */
  readonly addresses: FloatingIpEntry[];
  /** The `LeaderIPReady` conditions this node reports. */
  readonly conditions: readonly LeaderIpCondition[];
  /** Whether nothing was applied (a dry run, or local mode). */
  readonly dryRun: boolean;
}

/** What the result needs besides the plan. */
export interface ResultInputs {
  readonly node: string;
  readonly plan: FloatingIpPlan;
  /** What applying each action did, by address (none in a dry run). */
  readonly applied: ReadonlyMap<string, ActionApplied>;
  /** The tagged addresses before the run, by address. */
  readonly tagged: ReadonlyMap<string, readonly TaggedAddress[]>;
  /** Each address's Lease as this node saw it. */
  readonly leases: ReadonlyMap<string, { holder: string | null; expiresAt: Date | null }>;
  readonly lastChange: ReadonlyMap<string, Date>;
  readonly announcedAt: ReadonlyMap<string, Date>;
  readonly apiReachable: boolean;
  readonly enableVip: boolean;
  readonly clusters: number;
  readonly dryRun: boolean;
}

function entry(action: FloatingIpAction, inputs: ResultInputs): FloatingIpEntry {
  const { address } = action;
  const applied = inputs.applied.get(address);
  const before = inputs.tagged.get(address) ?? [];
  const remaining = before.filter((t) => !applied?.removed.includes(t.device));
  const device = applied?.added
    ? (action.ip!.mode === "MultiIP" ? action.ip!.nic : virtualIfName(address))
    : remaining[0]?.device ?? null;
  const lease = inputs.leases.get(address);
  return {
    address,
    cluster: action.cluster ? `${action.cluster.namespace}/${action.cluster.name}` : null,
    mode: action.ip?.mode ?? before[0]?.mode ?? null,
    nic: action.ip?.nic ?? before[0]?.nic ?? null,
    device,
    held: device !== null,
    action: action.kind,
    reason: applied?.conflict ? "IPConflict" : action.reason,
    message: applied?.error ?? action.message,
    lease: lease ? { holder: lease.holder, expiresAt: lease.expiresAt?.toISOString() ?? null } : null,
    lastChange: inputs.lastChange.get(address)?.toISOString() ?? null,
    announcedAt: inputs.announcedAt.get(address)?.toISOString() ?? null,
    error: applied?.error ?? null,
  };
}

/** Builds the run's result. */
export function floatingIpResult(inputs: ResultInputs): FloatingIpResult {
  return {
    node: inputs.node,
    apiReachable: inputs.apiReachable,
    enableVip: inputs.enableVip,
    clusters: inputs.clusters,
    addresses: inputs.plan.actions.map((action) => entry(action, inputs)),
    conditions: inputs.plan.conditions,
    dryRun: inputs.dryRun,
  };
}

/** One readable line about the run. */
export function floatingIpSummary(result: FloatingIpResult): string {
  const held = result.addresses.filter((a) => a.held).map((a) => a.address);
  const failed = result.addresses.filter((a) => a.error !== null).length;
  const parts = [
    `${held.length} floating IP(s) held${held.length > 0 ? ` (${held.slice(0, 5).join(", ")})` : ""}`,
    `${result.clusters} MPDCluster(s) watched`,
  ];
  if (!result.apiReachable) parts.push("the API server cannot be relied on: everything kept as it is");
  if (failed > 0) parts.push(`${failed} failed`);
  return parts.join("; ");
}

/**
 * The conditions to write after applying: a probe that another host answered says `IPConflict`, and an address
 * just added says `AddressHeld`, at once rather than at the next run.
 */
export function conditionsAfter(
  plan: FloatingIpPlan,
  applied: ReadonlyMap<string, ActionApplied>,
): LeaderIpCondition[] {
  const byCluster = new Map<string, { address: string; ip: FloatingIpAction["ip"]; done: ActionApplied }>();
  for (const action of plan.actions) {
    const done = applied.get(action.address);
    if (done && action.cluster) {
      byCluster.set(`${action.cluster.namespace}/${action.cluster.name}`, {
        address: action.address,
        ip: action.ip,
        done,
      });
    }
  }
  return plan.conditions.map((condition) => {
    const found = byCluster.get(`${condition.cluster.namespace}/${condition.cluster.name}`);
    if (found?.done.conflict) {
      return {
        ...condition,
        status: "False",
        reason: "IPConflict",
        message: `${found.address}: another host answered the duplicate-address probe`,
      };
    }
    if (found?.done.added && found.ip) {
      return {
        ...condition,
        status: "True",
        reason: "AddressHeld",
        message: `${found.address} is on ${found.ip.nic} (${found.ip.mode})`,
      };
    }
    return condition;
  });
}
