/** The decisions for one address: keep it, take it, let it go, or report why not. */
import type { DesiredFloatingIp } from "./desired.ts";
import type {
  ActionReason,
  ClusterObserved,
  ConditionReason,
  FloatingIpAction,
  LeaseWrite,
  TaggedAddress,
} from "./types.ts";
import { disabledMessage, leaseOf, leaseWrite, renewal, report, type Run, sameShape } from "./run.ts";

/** Whether an answered probe of the address is still waiting out its retry. */
function probeWaiting(run: Run, address: string): boolean {
  const probe = run.observed.probes.get(address);
  return probe?.conflict === true && run.observed.now.getTime() < probe.at.getTime() + run.options.probeRetryMs;
}

/** An address this node may not keep: remove it (with del enabled), then clear the Leases it held for it. */
export function letGo(
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
export function decideDuplicate(run: Run, address: string, owners: readonly ClusterObserved[]): FloatingIpAction {
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
export function decideKeep(run: Run, c: ClusterObserved): FloatingIpAction {
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
export function decideAssign(run: Run, c: ClusterObserved): FloatingIpAction {
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
    const probeAfter = adding && nicPresent && tagged.length === 0 && !probeWaiting(run, address);
    return {
      ...base,
      kind: "acquire",
      leases: [take],
      reason: "Acquiring",
      message: `Taking the Lease of ${address}`,
      probeAfter,
    };
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
      probeAfter: !probeWaiting(run, address),
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
