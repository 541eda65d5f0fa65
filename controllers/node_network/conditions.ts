/** The Node conditions of the node-network job: their shape, their times, and how they are read back and compared. */
import type { V1Node } from "@kubernetes/client-node";
import { JOBS } from "../../core/jobs.ts";
import type { DaemonEvent } from "../../core/types.ts";
import { kubeTime } from "../../k8s/values.ts";

/** A Node condition as the API server has it (times as RFC 3339 text). */
export interface NodeCondition {
  /** The condition type. */
  readonly type: string;
  /** True, False or Unknown. */
  readonly status: string;
  /** A short reason. */
  readonly reason?: string;
  /** A readable message. */
  readonly message?: string;
  /** When it was last reported. */
  readonly lastHeartbeatTime?: string;
  /** When its status last changed. */
  readonly lastTransitionTime?: string;
}

/** A condition as the probe wants it, before times are set. */
export interface DesiredCondition {
  /** The condition type. */
  readonly type: string;
  /** True or False. */
  readonly status: "True" | "False";
  /** The reason. */
  readonly reason: string;
  /** The message. */
  readonly message: string;
}

/** An address worth keeping as "last known": not empty and not `0.0.0.0` (the original's rule). */
export function knownAddress(text: string | null | undefined): string | null {
  return text && text !== "0.0.0.0" ? text : null;
}

/** The address a condition of the given type carries, if it is worth keeping. */
export function knownAddressOf(conditions: readonly NodeCondition[], type: string): string | null {
  return knownAddress(conditions.find((c) => c.type === type)?.message);
}

/** What the times of the conditions are set from. */
export interface StampInput {
  /** The Node's conditions as last read or written. */
  readonly current: readonly NodeCondition[];
  /** The conditions the probe wants. */
  readonly desired: readonly DesiredCondition[];
  /** The time. */
  readonly now: Date;
}

/**
 * Gives every desired condition its times: `lastHeartbeatTime` is now; `lastTransitionTime` is kept
 * from the current condition when the status is the same, else now.
 */
export function stampConditions({ current, desired, now }: StampInput): NodeCondition[] {
  const at = kubeTime(now);
  return desired.map((d) => {
    const old = current.find((c) => c.type === d.type);
    const keep = old !== undefined && old.status === d.status && old.lastTransitionTime;
    return { ...d, lastHeartbeatTime: at, lastTransitionTime: keep ? old.lastTransitionTime : at };
  });
}

/** Whether a condition on the Node says what the desired one says (times aside). */
export function sameContent(a: NodeCondition, b: DesiredCondition): boolean {
  return a.status === b.status && (a.reason ?? "") === b.reason && (a.message ?? "") === b.message;
}

function timeText(value: unknown): string | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : kubeTime(value);
  return typeof value === "string" ? value : undefined;
}

/** The conditions of a Node, times as the API server's text (the client turns them into Date objects). */
export function conditionsOf(node: V1Node | null | undefined): NodeCondition[] {
  return (node?.status?.conditions ?? []).map((c) => ({
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message,
    lastHeartbeatTime: timeText(c.lastHeartbeatTime),
    lastTransitionTime: timeText(c.lastTransitionTime),
  }));
}

/** The conditions after a strategic-merge patch of `written` (merged by type). */
export function mergeConditions(current: readonly NodeCondition[], written: readonly NodeCondition[]): NodeCondition[] {
  const byType = new Map(current.map((c) => [c.type, c]));
  for (const c of written) byType.set(c.type, c);
  return [...byType.values()];
}

/** The Event for a write that turns NodeClientNetworkUnavailable True, or back to False, on a Node; else null. */
export function clientNetworkEvent(
  node: string,
  { before, written }: { before: readonly NodeCondition[]; written: readonly NodeCondition[] },
): DaemonEvent | null {
  const now = written.find((c) => c.type === "NodeClientNetworkUnavailable");
  if (!now) return null;
  const old = before.find((c) => c.type === "NodeClientNetworkUnavailable");
  const message = `Client network of Node "${node}": ${now.message}`;
  if (now.status === "True" && old?.status !== "True") {
    return { job: JOBS.nodeNetwork.name, type: "Warning", reason: "ClientNetworkUnavailable", message };
  }
  if (now.status === "False" && old?.status === "True") {
    return { job: JOBS.nodeNetwork.name, type: "Normal", reason: "ClientNetworkAvailable", message };
  }
  return null;
}
