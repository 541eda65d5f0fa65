/**
 * The node-network job: probes the client-network interface (and the BMC address) and keeps the
 * conditions NodeClientNetworkUnavailable, NodeClientIP, NodeOobIP and NodeRefreshFlag on this host's Node.
 */
import type { V1Node } from "@kubernetes/client-node";
import { type OobAnswer, readOobAddress } from "../host/ipmi.ts";
import { type InterfaceState, type NetProbeOptions, probeInterface } from "../host/net_probe.ts";
import type { KubeClient } from "../k8s/client.ts";
import { createSettingReader } from "../k8s/config_maps.ts";
import { KubeError } from "../k8s/errors.ts";
import { kubeTime, parseLenientBool } from "../k8s/values.ts";
import type { JobDeps } from "./deps.ts";
import type { Controller, RunContext, RunOutcome } from "../core/types.ts";

/** The condition types this job owns, in the order they are written. */
export const NODE_NETWORK_CONDITIONS = [
  "NodeClientNetworkUnavailable",
  "NodeClientIP",
  "NodeOobIP",
  "NodeRefreshFlag",
] as const;

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

/** What the conditions are decided from. */
export interface DesiredInput {
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

/** An address worth keeping as "last known": not empty and not `0.0.0.0` (the original's rule). */
export function knownAddress(text: string | null | undefined): string | null {
  return text && text !== "0.0.0.0" ? text : null;
}

/** Decides the conditions with the original's statuses, reasons and messages. */
export function desiredConditions(input: DesiredInput): DesiredCondition[] {
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

/**
 * Gives every desired condition its times: `lastHeartbeatTime` is now; `lastTransitionTime` is kept
 * from the current condition when the status is the same, else now.
 */
export function stampConditions(
  { current, desired, now }: Pick<PatchPlanInput, "current" | "desired" | "now">,
): NodeCondition[] {
  const at = kubeTime(now);
  return desired.map((d) => {
    const old = current.find((c) => c.type === d.type);
    const keep = old !== undefined && old.status === d.status && old.lastTransitionTime;
    return { ...d, lastHeartbeatTime: at, lastTransitionTime: keep ? old.lastTransitionTime : at };
  });
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

function sameContent(a: NodeCondition, b: DesiredCondition): boolean {
  return a.status === b.status && (a.reason ?? "") === b.reason && (a.message ?? "") === b.message;
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

/** The result of one run: the JSON of `once node-network --json` and `GET /api/v1/node-network`. */
export interface NodeNetworkResult {
  /** This host's Node name. */
  readonly node: string;
  /** The interface probed. */
  readonly nic: string;
  /** Its state. */
  readonly state: InterfaceState;
  /** Its first IPv4 address, or null. */
  readonly ipv4: string | null;
  /** The BMC address, or null (not checked, pending, or failed). */
  readonly oobIp: string | null;
  /** The conditions as they would be written (all of ours, with times). */
  readonly conditions: NodeCondition[];
  /** Whether this run sent a PATCH. */
  readonly written: boolean;
}

/** Tuning of the job; the defaults suit the daemon, tests shorten them. */
export interface NodeNetworkOptions extends NetProbeOptions {
  /** How often the ConfigMaps `ccm-config` and `controller-config` are re-read (default 1 min). */
  readonly configRefreshMs?: number;
  /** How long a successful `ipmitool` answer holds (default 1 h); also the longest wait between retries. */
  readonly oobRefreshMs?: number;
  /** The first retry after a failed `ipmitool`, doubling with every failure in a row up to `oobRefreshMs` (1 min). */
  readonly oobRetryMs?: number;
  /** The time limit of one `ipmitool` run (default 20 s). */
  readonly oobTimeoutMs?: number;
  /** How long the first run waits for the first OOB answer, so that `once` can show it (default 1.5 s). */
  readonly firstOobWaitMs?: number;
}

const DEFAULT_NIC = "bond1";

/** When to run `ipmitool` again: `holdMs` after a success, else `firstRetryMs` doubled per failure in a row, capped. */
export function nextOobCheckDelayMs(failuresInRow: number, options: { firstRetryMs: number; holdMs: number }): number {
  if (failuresInRow === 0) return options.holdMs;
  return Math.min(options.firstRetryMs * 2 ** Math.min(failuresInRow - 1, 30), options.holdMs);
}

interface Cached<T> {
  value: T;
  readAt: number;
}

function timeText(value: unknown): string | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : kubeTime(value);
  return typeof value === "string" ? value : undefined;
}

// The client turns times into Date objects; they are kept as the API server's text.
function conditionsOf(node: V1Node | null | undefined): NodeCondition[] {
  return (node?.status?.conditions ?? []).map((c) => ({
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message,
    lastHeartbeatTime: timeText(c.lastHeartbeatTime),
    lastTransitionTime: timeText(c.lastTransitionTime),
  }));
}

function mergeConditions(current: readonly NodeCondition[], written: readonly NodeCondition[]): NodeCondition[] {
  const byType = new Map(current.map((c) => [c.type, c]));
  for (const c of written) byType.set(c.type, c);
  return [...byType.values()];
}

function wait(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Makes the node-network controller: probe every `--net-probe-interval`, one PATCH per change or heartbeat. */
export function createNodeNetworkController(
  deps: JobDeps,
  options: NodeNetworkOptions = {},
): Controller<NodeNetworkResult> {
  const { config, kube, clock, log } = deps;
  const node = config.currentNodeName;
  const configRefreshMs = options.configRefreshMs ?? 60_000;
  const oobRefreshMs = options.oobRefreshMs ?? 3_600_000;
  const oobRetryMs = options.oobRetryMs ?? 60_000;
  const oobTimeoutMs = options.oobTimeoutMs ?? 20_000;
  const firstOobWaitMs = options.firstOobWaitMs ?? 1_500;

  let nicSetting: Cached<string> | null = null;
  let oobSetting: Cached<boolean> | null = null;
  // null = read the Node first (at start, and after a failed write)
  let known: NodeCondition[] | null = kube === null ? [] : null;
  let lastIp: string | null = null;
  let oobAnswer: OobAnswer | null = null;
  let lastOobIp: string | null = null;
  // null: check at the next probe
  let oobNextAt: number | null = null;
  let oobFailures = 0;
  let oobRunning: Promise<void> | null = null;
  let firstRun = true;
  let busy: Promise<unknown> = Promise.resolve();

  const readSetting = createSettingReader(log);

  async function interfaceName(now: number, api: KubeClient | null): Promise<string> {
    if (config.netCardName) return config.netCardName;
    if (api === null) return DEFAULT_NIC;
    if (nicSetting && now - nicSetting.readAt < configRefreshMs) return nicSetting.value;
    let value = nicSetting?.value ?? DEFAULT_NIC;
    try {
      value = (await readSetting(api, { configMap: "ccm-config", key: "NET_CARD_NAME", fallback: DEFAULT_NIC }))
        ?.trim() || DEFAULT_NIC;
    } catch (error) {
      if (error instanceof KubeError && error.stopped) throw error;
      log.warn("Cannot read the interface name, using {nic}: {error}", { nic: value, error: (error as Error).message });
    }
    if (nicSetting && nicSetting.value !== value) log.info("Client-network interface is now {nic}", { nic: value });
    nicSetting = { value, readAt: now };
    return value;
  }

  async function checkOobSetting(now: number, api: KubeClient | null): Promise<boolean> {
    if (api === null) return true;
    if (oobSetting && now - oobSetting.readAt < configRefreshMs) return oobSetting.value;
    let value = oobSetting?.value ?? true;
    try {
      const text = await readSetting(api, { configMap: "controller-config", key: "isCheckOObIP", fallback: "true" });
      value = parseLenientBool(text, true);
    } catch (error) {
      if (error instanceof KubeError && error.stopped) throw error;
      log.warn("Cannot read isCheckOObIP, using {value}: {error}", { value, error: (error as Error).message });
    }
    oobSetting = { value, readAt: now };
    return value;
  }

  function startOobCheck(now: number): void {
    if (oobRunning || (oobNextAt !== null && now < oobNextAt)) return;
    oobRunning = readOobAddress(deps.runCommand, { timeoutMs: oobTimeoutMs })
      .then((answer) => {
        if (!answer.ok && (oobAnswer === null || oobAnswer.ok)) {
          log.warn("Cannot read the OOB address: {error}", { error: answer.error });
        }
        oobAnswer = answer;
        oobFailures = answer.ok ? 0 : oobFailures + 1;
        // A success holds for an hour; a failure (a BMC that is still booting) is retried soon, then less often.
        oobNextAt = now + nextOobCheckDelayMs(oobFailures, { firstRetryMs: oobRetryMs, holdMs: oobRefreshMs });
        if (answer.ok) lastOobIp = knownAddress(answer.ip) ?? lastOobIp;
      })
      .finally(() => (oobRunning = null));
  }

  async function readNode(api: KubeClient): Promise<NodeCondition[]> {
    const found = await api.getNode(node);
    if (found === null) throw new Error(`Node "${node}" not found: check --current-node-name`);
    return conditionsOf(found);
  }

  function recordTransition(before: readonly NodeCondition[], written: readonly NodeCondition[]): void {
    const now = written.find((c) => c.type === "NodeClientNetworkUnavailable");
    if (!now) return;
    const old = before.find((c) => c.type === "NodeClientNetworkUnavailable");
    if (now.status === "True" && old?.status !== "True") {
      deps.events.record({
        job: "node-network",
        type: "Warning",
        reason: "ClientNetworkUnavailable",
        message: `Client network of Node "${node}": ${now.message}`,
      });
    } else if (now.status === "False" && old?.status === "True") {
      deps.events.record({
        job: "node-network",
        type: "Normal",
        reason: "ClientNetworkAvailable",
        message: `Client network of Node "${node}": ${now.message}`,
      });
    }
  }

  async function probeOnce(ctx: RunContext): Promise<RunOutcome<NodeNetworkResult>> {
    const startedAt = clock.now().getTime();
    // Every call of this run stops when the run's time limit passes: an abandoned run writes nothing late.
    const api = kube?.withSignal(ctx.signal) ?? null;
    const nic = await interfaceName(startedAt, api);
    const checkOob = await checkOobSetting(startedAt, api);
    if (checkOob) {
      startOobCheck(startedAt);
      if (firstRun && oobRunning) {
        const timer = wait(firstOobWaitMs);
        await Promise.race([oobRunning, timer.promise]);
        timer.cancel();
      }
    } else {
      oobAnswer = null;
      oobNextAt = null;
      oobFailures = 0;
    }
    firstRun = false;

    const probe = await probeInterface(nic, options);
    if (known === null) known = await readNode(api!);
    const nodeIp = knownAddress(known.find((c) => c.type === "NodeClientIP")?.message);
    const nodeOobIp = knownAddress(known.find((c) => c.type === "NodeOobIP")?.message);
    const desired = desiredConditions({
      nic,
      state: probe.state,
      ipv4: probe.ipv4,
      lastIp: lastIp ?? nodeIp,
      checkOob,
      oob: checkOob ? oobAnswer : null,
      lastOobIp: lastOobIp ?? nodeOobIp,
    });
    if (probe.ipv4 !== null) lastIp = probe.ipv4;
    const now = clock.now();
    const onNode = known;
    const changed = desired.some((d) => {
      const old = onNode.find((c) => c.type === d.type);
      return old === undefined || !sameContent(old, d);
    });
    const conditions = stampConditions({ current: known, desired, now });
    const patch = planConditionPatch({
      current: known,
      desired,
      now,
      reportFrequencyMs: config.nodeStatusReportFrequency,
    });

    let written = false;
    if (patch !== null && !ctx.dryRun) {
      if (api === null) {
        recordTransition(known, patch.status.conditions);
        known = mergeConditions(known, patch.status.conditions);
      } else {
        if (ctx.signal.aborted) throw new Error(`Cannot patch status of Node "${node}": the run was aborted`);
        const before = known;
        try {
          const updated = await api.patchNodeStatus(node, patch);
          const fromServer = conditionsOf(updated);
          known = fromServer.length > 0 ? fromServer : mergeConditions(before, patch.status.conditions);
        } catch (error) {
          known = null;
          throw error;
        }
        written = true;
        recordTransition(before, patch.status.conditions);
      }
    }

    const oobIp = checkOob && oobAnswer?.ok ? oobAnswer.ip : null;
    const result: NodeNetworkResult = { node, nic, state: probe.state, ipv4: probe.ipv4, oobIp, conditions, written };
    const oobText = !checkOob ? "not checked" : oobAnswer === null ? "pending" : oobAnswer.ok ? oobAnswer.ip : "error";
    const action = patch === null
      ? "nothing to write"
      : ctx.dryRun || kube === null
      ? `would write ${patch.status.conditions.length} conditions`
      : `wrote ${patch.status.conditions.length} conditions`;
    return {
      summary: `${nic} ${probe.state} ${probe.ipv4 ?? "no IPv4"}, OOB ${oobText}; ${action}`,
      result,
      routine: !changed,
    };
  }

  return {
    name: "node-network",
    schedule: { everyMs: config.netProbeInterval },
    runAtStart: true,
    timeoutMs: Math.max(config.netProbeInterval, 2_000),
    run(ctx) {
      // a run that outlived its time limit must finish before the next one reads the shared state
      const next = busy.then(() => probeOnce(ctx));
      busy = next.catch(() => {});
      return next;
    },
  };
}
