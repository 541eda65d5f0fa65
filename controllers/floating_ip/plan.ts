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
import type { FloatingIpAction, FloatingIpObserved, FloatingIpPlan, FloatingIpPlanOptions } from "./types.ts";
import { decideAssign, decideDuplicate, decideKeep, letGo } from "./decide.ts";
import { byAddress, report, type Run } from "./run.ts";

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
