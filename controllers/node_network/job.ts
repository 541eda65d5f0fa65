/**
 * The node-network job: probes the client-network interface (and the BMC address) and keeps the conditions
 * NodeClientNetworkUnavailable, NodeClientIP, NodeOobIP and NodeRefreshFlag on this host's Node.
 */
import { JOBS } from "../../core/jobs.ts";
import type { Controller, JobCounter, RunContext, RunOutcome } from "../../core/types.ts";
import { type OobAnswer, readOobAddress } from "../../host/ipmi.ts";
import { type InterfaceState, type NetProbeOptions, probeInterface } from "../../host/net_probe.ts";
import type { KubeClient } from "../../k8s/client.ts";
import type { JobDeps } from "../deps.ts";
import { clientNetworkEvent, conditionsOf, knownAddressOf, mergeConditions, type NodeCondition } from "./conditions.ts";
import { afterOobAnswer, OOB_UNCHECKED, oobCheckDue, type OobSchedule, oobSwitchedOff } from "./oob_schedule.ts";
import { type NodeNetworkObserved, type NodeNetworkPlan, planNodeNetwork } from "./plan.ts";
import { createNodeNetworkSettings, type NodeNetworkSettings } from "./settings.ts";

const INTERFACE_STATES: readonly InterfaceState[] = ["UP", "DOWN", "UNKNOWN"];

/** What the job takes from the flags. */
export interface NodeNetworkOptions {
  /** This host's Node name, in lower case. */
  readonly node: string;
  /** The interface to probe (`--net-card-name`); empty: the one `ccm-config` names. */
  readonly netCardName: string;
  /** How often the probe runs (`--net-probe-interval`). */
  readonly probeIntervalMs: number;
  /** How often unchanged conditions get a new heartbeat (`--node-status-report-frequency`). */
  readonly reportFrequencyMs: number;
  /**
   * How often `ccm-config` and `controller-config` are read again (default 1 min; 0 with the cluster cache, where a
   * read asks the server nothing and a change is seen at the next probe).
   */
  readonly settingsRefreshMs?: number;
}

/** Where the probe reads the host, and the job's timing; the defaults suit the daemon, tests shorten them. */
export interface NodeNetworkHooks extends NetProbeOptions {
  /** How long a successful `ipmitool` answer holds (default 1 h); also the longest wait between retries. */
  readonly oobRefreshMs?: number;
  /** The first retry after a failed `ipmitool`, doubling with every failure in a row up to `oobRefreshMs` (1 min). */
  readonly oobRetryMs?: number;
  /** The time limit of one `ipmitool` run (default 20 s). */
  readonly oobTimeoutMs?: number;
  /** How long the first run waits for the first OOB answer, so that `once` can show it (default 1.5 s). */
  readonly firstOobWaitMs?: number;
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

/** What the job remembers between runs. */
interface NodeNetworkState {
  /** The Node's conditions as last read or written; null: read the Node first (at start, after a failed write). */
  known: NodeCondition[] | null;
  /** The last client IP the probe saw. */
  lastIp: string | null;
  /** The answers and timing of the `ipmitool` checks. */
  oob: OobSchedule;
  /** The `ipmitool` check under way, if any: one at a time, and a probe never waits for it (but the first). */
  oobRunning: Promise<void> | null;
  /** Whether the first run is still to come. */
  firstRun: boolean;
  /** The last run, which the next one waits for. */
  busy: Promise<unknown>;
}

/** The job's parts, handed to the steps of a run. */
interface NodeNetworkJob {
  readonly deps: JobDeps;
  readonly options: NodeNetworkOptions;
  readonly hooks: NodeNetworkHooks;
  readonly settings: NodeNetworkSettings;
  readonly state: NodeNetworkState;
}

/** What one run saw: the observation, the Node's conditions it is planned against, the cluster for this run. */
interface Seen {
  readonly observed: NodeNetworkObserved;
  readonly current: readonly NodeCondition[];
  readonly api: KubeClient | null;
}

/** Makes the node-network controller: probe every `--net-probe-interval`, one PATCH per change or heartbeat. */
export function createNodeNetworkController(
  deps: JobDeps,
  options: NodeNetworkOptions,
  hooks: NodeNetworkHooks = {},
): Controller<NodeNetworkResult> {
  const settings = createNodeNetworkSettings(deps.log, {
    netCardName: options.netCardName,
    refreshMs: options.settingsRefreshMs ?? 60_000,
  });
  const state: NodeNetworkState = {
    known: null,
    lastIp: null,
    oob: OOB_UNCHECKED,
    oobRunning: null,
    firstRun: true,
    busy: Promise.resolve(),
  };
  const job: NodeNetworkJob = { deps, options, hooks, settings, state };
  return {
    name: JOBS.nodeNetwork.name,
    schedule: { everyMs: options.probeIntervalMs },
    runAtStart: true,
    timeoutMs: Math.max(options.probeIntervalMs, 2_000),
    // One run: observe the host (the settings, the Node), plan the conditions, write them, say what happened.
    run: oneAtATime(state, async (ctx) => {
      const seen = await observe(job, ctx);
      const plan = planNodeNetwork(seen.observed, {
        current: seen.current,
        now: deps.clock.now(),
        reportFrequencyMs: options.reportFrequencyMs,
      });
      const written = await apply(job, { seen, plan, ctx });
      return outcome(job, { seen, plan, written, ctx });
    }),
  };
}

// A run that outlived its time limit must finish before the next one reads the state.
function oneAtATime<T>(state: NodeNetworkState, run: (ctx: RunContext) => Promise<T>): (ctx: RunContext) => Promise<T> {
  return (ctx) => {
    const next = state.busy.then(() => run(ctx));
    state.busy = next.catch(() => {});
    return next;
  };
}

async function observe(job: NodeNetworkJob, ctx: RunContext): Promise<Seen> {
  const { deps, settings, state } = job;
  const startedAt = deps.clock.now().getTime();
  // Every call of this run stops when the run's time limit passes: an abandoned run writes nothing late.
  const api = deps.kube?.withSignal(ctx.signal) ?? null;
  const nic = await settings.interfaceName(api, startedAt);
  const checkOob = await settings.checkOob(api, startedAt);
  if (checkOob) await checkOobInBackground(job, startedAt);
  else state.oob = oobSwitchedOff(state.oob);
  state.firstRun = false;

  const probe = await probeInterface(nic, job.hooks);
  state.known ??= api === null ? [] : await readNode(api, job.options.node);
  const current = state.known;
  const observed: NodeNetworkObserved = {
    nic,
    state: probe.state,
    ipv4: probe.ipv4,
    lastIp: state.lastIp ?? knownAddressOf(current, "NodeClientIP"),
    checkOob,
    oob: checkOob ? state.oob.answer : null,
    lastOobIp: state.oob.lastIp ?? knownAddressOf(current, "NodeOobIP"),
  };
  if (probe.ipv4 !== null) state.lastIp = probe.ipv4;
  return { observed, current, api };
}

/** Sends the planned PATCH (not in a dry run; in local mode only remembers it); returns whether it was sent. */
async function apply(
  job: NodeNetworkJob,
  { seen, plan, ctx }: { seen: Seen; plan: NodeNetworkPlan; ctx: RunContext },
): Promise<boolean> {
  const { deps, state, options: { node } } = job;
  if (plan.patch === null || ctx.dryRun) return false;
  const written = plan.patch.status.conditions;
  if (seen.api !== null) {
    if (ctx.signal.aborted) throw new Error(`Cannot patch status of Node "${node}": the run was aborted`);
    try {
      const fromServer = conditionsOf(await seen.api.patchNodeStatus(node, plan.patch));
      state.known = fromServer.length > 0 ? fromServer : mergeConditions(seen.current, written);
    } catch (error) {
      state.known = null;
      throw error;
    }
  } else {
    state.known = mergeConditions(seen.current, written);
  }
  const event = clientNetworkEvent(node, { before: seen.current, written });
  if (event !== null) deps.events.record(event);
  return seen.api !== null;
}

function outcome(
  job: NodeNetworkJob,
  { seen, plan, written, ctx }: { seen: Seen; plan: NodeNetworkPlan; written: boolean; ctx: RunContext },
): RunOutcome<NodeNetworkResult> {
  const { nic, state, ipv4, checkOob, oob } = seen.observed;
  const result: NodeNetworkResult = {
    node: job.options.node,
    nic,
    state,
    ipv4,
    oobIp: oob?.ok ? oob.ip : null,
    conditions: plan.conditions,
    written,
  };
  const count = plan.patch?.status.conditions.length;
  const action = count === undefined
    ? "nothing to write"
    : ctx.dryRun || job.deps.kube === null
    ? `would write ${count} conditions`
    : `wrote ${count} conditions`;
  return {
    summary: `${nic} ${state} ${ipv4 ?? "no IPv4"}, OOB ${oobText(checkOob, oob)}; ${action}`,
    result,
    // One series per state, 1 for the one seen: a dashboard and an alert select the state by its label.
    counters: INTERFACE_STATES.map((each): JobCounter => ({
      name: "node_network_client_state",
      help: "State of the client-network interface (1 for the state seen); not UP is NodeClientNetworkUnavailable True",
      kind: "gauge",
      value: each === state ? 1 : 0,
      labels: { state: each },
    })),
    routine: !plan.changed,
  };
}

function oobText(checkOob: boolean, oob: OobAnswer | null): string {
  if (!checkOob) return "not checked";
  if (oob === null) return "pending";
  return oob.ok ? oob.ip : "error";
}

/** Starts `ipmitool` when a check is due and none runs; only the first run waits for it, and briefly. */
async function checkOobInBackground(job: NodeNetworkJob, startedAt: number): Promise<void> {
  const { deps, hooks, state } = job;
  if (state.oobRunning === null && oobCheckDue(state.oob, startedAt)) {
    const timing = { firstRetryMs: hooks.oobRetryMs ?? 60_000, holdMs: hooks.oobRefreshMs ?? 3_600_000 };
    state.oobRunning = readOobAddress(deps.runCommand, { timeoutMs: hooks.oobTimeoutMs ?? 20_000 })
      .then((answer) => {
        if (!answer.ok && state.oob.answer?.ok !== false) {
          deps.log.warn("Cannot read the OOB address: {error}", { error: answer.error });
        }
        state.oob = afterOobAnswer(state.oob, answer, { startedAt, timing });
      })
      .finally(() => (state.oobRunning = null));
  }
  if (state.firstRun && state.oobRunning) await settleWithin(state.oobRunning, hooks.firstOobWaitMs ?? 1_500);
}

async function settleWithin(promise: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function readNode(api: KubeClient, node: string): Promise<NodeCondition[]> {
  const found = await api.getNode(node);
  if (found === null) throw new Error(`Node "${node}" not found: check --current-node-name`);
  return conditionsOf(found);
}
