/**
 * Applies one floating-IP action, in the order the plan's safety rests on: remove what was tagged, write the Leases
 * (stopping at the first that fails), and only then, for `probe-then-add`, probe the wire and add when it is silent.
 */
import type { Clock, DaemonEvent, EventSink, Logger } from "../../core/types.ts";
import { announceAddress, probeAddress } from "../../host/arping.ts";
import type { CommandRunner } from "../../host/command.ts";
import { addFloatingAddress, removeTagged, virtualIfName } from "../../host/ip_addr.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { KubeError } from "../../k8s/errors.ts";
import { createLease, type Lease, updateLease } from "../../k8s/leases.ts";
import { JOBS } from "../../core/jobs.ts";
import type { ClusterRef } from "./desired.ts";
import { leaseForWrite } from "./lease_write.ts";
import { hostTagged } from "./observe.ts";
import type { FloatingIpAction, ProbeResult } from "./types.ts";

/** What applying one action did. */
export interface ActionApplied {
  /** Tagged addresses removed (by device). */
  readonly removed: string[];
  /** Lease writes that were accepted. */
  readonly leasesWritten: number;
  /** Whether the address was added (and its announcement started). */
  readonly added: boolean;
  /** Whether the probe was answered by another host. */
  readonly conflict: boolean;
  /** The first failure, said in sentence case; null when everything worked. */
  readonly error: string | null;
  /** Whether a Lease write failed for want of the API server (not a lost race). */
  readonly apiFailed: boolean;
}

/** What applying needs. */
export interface ApplyDeps {
  readonly kube: KubeClient;
  readonly runCommand: CommandRunner;
  readonly clock: Clock;
  readonly events: EventSink;
  readonly log: Logger;
  /** The Leases as the observation had them, by name (the base of every PUT). */
  readonly leases: ReadonlyMap<string, Lease>;
  /** Called with every Lease the server accepted. */
  readonly onLeaseWritten: (lease: Lease) => void;
  /** Where probe answers are kept for the next plans. */
  readonly probes: Map<string, ProbeResult>;
  /** Starts the announcement of an added address (it runs on after this action). */
  readonly announce: (device: string, ip: string) => void;
  /** The time limit of one host command. */
  readonly commandTimeoutMs: number;
  /** Aborts the host commands (the run's limit, the daemon's stop). */
  readonly signal: AbortSignal;
}

function clusterEvent(
  cluster: ClusterRef | null,
  event: { type: "Normal" | "Warning"; reason: string; message: string },
): DaemonEvent {
  return {
    job: JOBS.floatingIp.name,
    ...event,
    regarding: cluster ? { apiVersion: "mpd.polardb.aliyun.com/v1", kind: "MPDCluster", ...cluster } : undefined,
  };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Removes what the action removes; never throws: the first failure ends it and is returned. */
export async function applyRemovals(
  deps: ApplyDeps,
  action: FloatingIpAction,
): Promise<{ removed: string[]; error: string | null }> {
  const removed: string[] = [];
  const options = { timeoutMs: deps.commandTimeoutMs, signal: deps.signal };
  for (const tagged of action.remove) {
    try {
      await removeTagged(deps.runCommand, hostTagged(tagged), options);
    } catch (error) {
      return { removed, error: message(error) };
    }
    removed.push(tagged.device);
    deps.events.record(clusterEvent(action.cluster, {
      type: "Normal",
      reason: "FloatingIPRemoved",
      message: `Removed floating IP ${action.address} from ${tagged.device}: ${action.message}`,
    }));
  }
  return { removed, error: null };
}

/**
 * Applies one action; never throws: a failure ends the action and is returned. `removal` is what `applyRemovals`
 * did when it ran first (the action's removals are then not done again).
 */
export async function applyAction(
  deps: ApplyDeps,
  action: FloatingIpAction,
  removal?: { removed: string[]; error: string | null },
): Promise<ActionApplied> {
  const removed: string[] = [];
  let leasesWritten = 0;
  const result = (
    rest: { added?: boolean; conflict?: boolean; error?: string | null; apiFailed?: boolean },
  ): ActionApplied => ({
    removed,
    leasesWritten,
    added: rest.added ?? false,
    conflict: rest.conflict ?? false,
    error: rest.error ?? null,
    apiFailed: rest.apiFailed ?? false,
  });
  const options = { timeoutMs: deps.commandTimeoutMs, signal: deps.signal };

  const removals = removal ?? await applyRemovals(deps, action);
  removed.push(...removals.removed);
  if (removals.error !== null) return result({ error: removals.error });

  for (const write of action.leases) {
    const current = deps.leases.get(write.name) ?? null;
    const body = leaseForWrite(write, { current, cluster: action.cluster });
    try {
      const written = write.resourceVersion === null
        ? await createLease(deps.kube, body)
        : await updateLease(deps.kube, body);
      deps.onLeaseWritten(written);
      leasesWritten++;
    } catch (error) {
      // 409: another node wrote the Lease first; the next plan sees who, from the watch.
      const lost = error instanceof KubeError && error.status === 409;
      const cause = lost ? `another node wrote Lease "${write.name}" first` : message(error);
      const apiFailed = !(error instanceof KubeError) || error.status === 0 || error.status >= 500;
      return result({ error: `Cannot ${write.op} the Lease of ${action.address}: ${cause}`, apiFailed });
    }
  }

  const probes = action.kind === "probe-then-add" || (action.kind === "acquire" && action.probeAfter === true);
  if (!probes || action.ip === null) return result({});
  const ip = action.ip;
  let answer;
  try {
    answer = await probeAddress(deps.runCommand, { nic: ip.nic, ip: ip.address }, {
      ...options,
      timeoutMs: Math.max(options.timeoutMs, 3_000),
    });
  } catch (error) {
    return result({ error: message(error) });
  }
  deps.probes.set(ip.address, { conflict: answer.state === "conflict", at: deps.clock.now() });
  if (answer.state === "conflict") {
    const macs = [...new Set(answer.replies.map((r) => r.mac))].join(", ");
    deps.events.record(clusterEvent(action.cluster, {
      type: "Warning",
      reason: "IPConflict",
      message: `Not adding floating IP ${ip.address} on ${ip.nic}: ${macs} answered the duplicate-address probe`,
    }));
    return result({ conflict: true });
  }
  try {
    await addFloatingAddress(deps.runCommand, { ip: ip.address, prefix: ip.mask, nic: ip.nic, mode: ip.mode }, options);
  } catch (error) {
    return result({ error: message(error) });
  }
  const device = ip.mode === "MultiIP" ? ip.nic : virtualIfName(ip.address);
  deps.announce(device, ip.address);
  deps.events.record(clusterEvent(action.cluster, {
    type: "Normal",
    reason: "FloatingIPAdded",
    message: `Added floating IP ${ip.address}/${ip.mask} on ${device} (${ip.mode}) and announced it`,
  }));
  return result({ added: true });
}

/** Runs one announcement to the end, logging a failure (the address is on the host either way). */
export async function announceInBackground(
  deps: Pick<ApplyDeps, "runCommand" | "log" | "commandTimeoutMs" | "signal">,
  target: { device: string; ip: string },
): Promise<void> {
  try {
    await announceAddress(deps.runCommand, target, { timeoutMs: deps.commandTimeoutMs + 5_000, signal: deps.signal });
  } catch (error) {
    if (!deps.signal.aborted) deps.log.warn("{error}", { error: message(error) });
  }
}
