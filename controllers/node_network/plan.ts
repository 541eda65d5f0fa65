/**
 * The plan of the node-network job, pure: what the probe observed and the Node's conditions as last written, at
 * a time -> the four conditions and the one PATCH to send (or none).
 */
import type { OobAnswer } from "../../host/ipmi.ts";
import type { InterfaceState } from "../../host/net_probe.ts";
import { type DesiredCondition, knownAddress, type NodeCondition, sameContent, stampConditions } from "./conditions.ts";

/** What one run observed: the conditions are decided from it. */
export interface NodeNetworkObserved {
  /** The interface name. */
  readonly nic: string;
  /** Its state. */
  readonly state: InterfaceState;
  /** Its first IPv4 address, or null. */
  readonly ipv4: string | null;
  /** The last known client IP (kept in the message when there is none now). */
  readonly lastIp: string | null;
  /** Whether NodeOobIP is reported (`controller-config` / `isCheckOObIP`). */
  readonly checkOob: boolean;
  /** The last OOB answer, or null while the first check is pending (then NodeOobIP is left out). */
  readonly oob: OobAnswer | null;
  /** The last known OOB address (kept in the message on error). */
  readonly lastOobIp: string | null;
}

const REASONS: Record<InterfaceState, string> = { UP: "StateUP", DOWN: "StateDown", UNKNOWN: "StateUnKnown" };

/** Decides the conditions with the original's statuses, reasons and messages. */
export function desiredConditions(input: NodeNetworkObserved): DesiredCondition[] {
  const reason = REASONS[input.state];
  const out: DesiredCondition[] = [
    {
      type: "NodeClientNetworkUnavailable",
      status: input.state === "UP" ? "False" : "True",
      reason,
      message: `${input.nic} ${reason}`,
    },
    input.ipv4 !== null
      ? { type: "NodeClientIP", status: "True", reason: input.nic, message: input.ipv4 }
      : { type: "NodeClientIP", status: "False", reason: input.nic, message: knownAddress(input.lastIp) ?? "0.0.0.0" },
  ];
  if (input.checkOob && input.oob !== null) {
    out.push(
      input.oob.ok ? { type: "NodeOobIP", status: "True", reason: "PowerOn", message: input.oob.ip } : {
        type: "NodeOobIP",
        status: "False",
        reason: `error: ${input.oob.error}`,
        message: knownAddress(input.lastOobIp) ?? "0.0.0.0",
      },
    );
  }
  out.push({ type: "NodeRefreshFlag", status: "True", reason: "Refresh", message: "Refresh" });
  return out;
}

/** What the patch plan looks at. */
export interface PatchPlanInput {
  /** The Node's conditions as last read or written. */
  readonly current: readonly NodeCondition[];
  /** The conditions the probe wants. */
  readonly desired: readonly DesiredCondition[];
  /** The time. */
  readonly now: Date;
  /** How often unchanged conditions get a new heartbeat. */
  readonly reportFrequencyMs: number;
}

/** The strategic-merge patch body of `nodes/<name>/status`. */
export interface ConditionPatch {
  /** Only the conditions, merged by type. */
  readonly status: { readonly conditions: NodeCondition[] };
}

function heartbeatDue(old: NodeCondition | undefined, { now, reportFrequencyMs }: PatchPlanInput): boolean {
  const at = old?.lastHeartbeatTime ? Date.parse(old.lastHeartbeatTime) : NaN;
  if (Number.isNaN(at)) return true;
  // a heartbeat far in the future means the clock went back: report rather than wait for it
  return now.getTime() - at >= reportFrequencyMs || at - now.getTime() > reportFrequencyMs;
}

/**
 * Decides the one PATCH to send, or null. It carries every condition whose status, reason or message
 * changed; when any of ours is due for a heartbeat (its `lastHeartbeatTime` is `reportFrequencyMs` old),
 * all of ours, so that the heartbeats stay together and one write per period refreshes them.
 */
export function planConditionPatch(input: PatchPlanInput): ConditionPatch | null {
  const stamped = stampConditions(input);
  const old = (type: string) => input.current.find((c) => c.type === type);
  const due = input.desired.some((d) => heartbeatDue(old(d.type), input));
  const send = due ? stamped : stamped.filter((s, i) => {
    const o = old(s.type);
    return o === undefined || !sameContent(o, input.desired[i]);
  });
  return send.length === 0 ? null : { status: { conditions: send } };
}

/** What one run is to do. */
export interface NodeNetworkPlan {
  /** All of ours as they would be written, with times (the run's result shows them). */
  readonly conditions: NodeCondition[];
  /** The PATCH to send, or null when nothing changed and no heartbeat is due. */
  readonly patch: ConditionPatch | null;
  /** Whether any status, reason or message differs from the Node's (else the run is routine). */
  readonly changed: boolean;
}

/** Plans one run: the conditions the observation calls for, stamped against the Node's, and the PATCH. */
export function planNodeNetwork(
  observed: NodeNetworkObserved,
  on: Omit<PatchPlanInput, "desired">,
): NodeNetworkPlan {
  const desired = desiredConditions(observed);
  const changed = desired.some((d) => {
    const old = on.current.find((c) => c.type === d.type);
    return old === undefined || !sameContent(old, d);
  });
  return {
    conditions: stampConditions({ current: on.current, desired, now: on.now }),
    patch: planConditionPatch({ ...on, desired }),
    changed,
  };
}
