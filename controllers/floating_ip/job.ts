/**
 * The floating-IP job: puts each MPDCluster's leader address on the leader's host, fenced by a Lease per cluster
 * and by a duplicate-address probe, and reports `LeaderIPReady`. It watches the MPDClusters and its Leases, runs at
 * once on a change that matters, and every renewal interval otherwise.
 */
import { nodeKey } from "../../core/addresses.ts";
import { JOBS } from "../../core/jobs.ts";
import { linkSignals } from "../../core/signals.ts";
import type { Controller, JobCounter, RunContext, RunOutcome } from "../../core/types.ts";
import { listInterfaces, taggedAddresses } from "../../host/ip_addr.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { createInformer, type Informer, type InformerOptions } from "../../k8s/informer.ts";
import { floatingIpLeaseSource, type Lease } from "../../k8s/leases.ts";
import {
  LEADER_IP_READY,
  type MPDCluster,
  mpdClusterSource,
  slimMpdCluster,
  writeLeaderIpReady,
} from "../../k8s/mpd_clusters.ts";
import type { CacheState } from "../../k8s/config_map_cache.ts";
import type { JobDeps } from "../deps.ts";
import { type ActionApplied, announceInBackground, applyAction, applyRemovals } from "./apply.ts";
import { desiredFloatingIp } from "./desired.ts";
import { viewLease } from "./lease_view.ts";
import { clusterObservations, leaseObserved, type LeaseSightings, planTagged } from "./observe.ts";
import { planFloatingIps } from "./plan.ts";
import { conditionsAfter, type FloatingIpResult, floatingIpResult, floatingIpSummary } from "./result.ts";
import { createFloatingIpSettings } from "./settings.ts";
import type {
  FloatingIpObserved,
  FloatingIpPlan,
  LeaderIpCondition,
  LeaseObserved,
  ProbeResult,
  TaggedAddress,
} from "./types.ts";

// How many addresses one run works on at once (each a probe, a few commands and Lease writes).
const APPLY_CONCURRENCY = 8;
// How long the stop waits for the reports still queued.
const REPORT_GRACE_MS = 5_000;

/** What the job takes from the flags. */
export interface FloatingIpOptions {
  /** This host's Node name (the Leases' holderIdentity). */
  readonly node: string;
  /** `--net-card-name`; empty: `ccm-config` / `NET_CARD_NAME`, else bond1. */
  readonly netCardName: string;
  /** `--job-enable-add-fip`. */
  readonly addEnabled: boolean;
  /** `--job-enable-del-fip`. */
  readonly delEnabled: boolean;
  /** `--fip-lease-duration`, in seconds. */
  readonly leaseDurationSeconds: number;
  /** `--fip-lease-renew-interval`: the job's period and how often a held Lease is renewed. */
  readonly renewIntervalMs: number;
  /** How often `controller-config` and `ccm-config` are read again: 0 when a watched cache serves them. */
  readonly settingsRefreshMs: number;
}

/** The job's timing and its informers' options; the defaults suit the daemon, tests shorten them. */
export interface FloatingIpHooks {
  /** How long after a probe that was answered the next one is due (default 10 s). */
  readonly probeRetryMs?: number;
  /** The time limit of one `ip`, `sysctl` or `arping` (default 5 s). */
  readonly commandTimeoutMs?: number;
  /** How long the first run waits for the first lists (default 5 s). */
  readonly syncWaitMs?: number;
  /** The informers' options besides the clock. */
  readonly informers?: Omit<InformerOptions, "clock">;
}

/** The floating-IP controller: a controller that can also be woken when something it watches changes. */
export interface FloatingIpController extends Controller<FloatingIpResult> {
  /** Sets what to call when a run should come now (the scheduler's trigger). */
  onWake(wake: () => void): void;
  /** The health of its two watches (none in local mode). */
  caches(): CacheState[];
}

/** What the job remembers between runs. */
interface FloatingIpState {
  readonly sightings: LeaseSightings;
  /**
   * Leases this node wrote that the watch may not have delivered yet, by name, with the version the cache held when
   * the write was answered: the written copy counts only while the cache still holds that version.
   */
  readonly written: Map<string, { readonly lease: Lease; readonly shadows: string | null }>;
  readonly probes: Map<string, ProbeResult>;
  readonly lastChange: Map<string, Date>;
  readonly announcedAt: Map<string, Date>;
  /** When the watch last showed a change of each cluster's address or leader, by `namespace/name`. */
  readonly changedAt: Map<string, Date>;
  /** The announcements still sending, by address: stopped before the address is removed. */
  readonly announcing: Map<string, { readonly stop: AbortController; readonly done: Promise<void> }>;
  /** When a Lease write last failed for want of the API server (ms), or -Infinity. */
  apiFailedAt: number;
  wake: () => void;
  wakeTimer: ReturnType<typeof setTimeout> | null;
  /** The wake that collects the watch's events of the next few milliseconds into one run. */
  batchTimer: ReturnType<typeof setTimeout> | null;
  firstRun: boolean;
  busy: Promise<unknown>;
  /** The `LeaderIPReady` writes still to send, by `namespace/name`: the newest wins. */
  readonly reports: Map<string, LeaderIpCondition>;
  /** The writer sending them, while there are any. */
  reporting: Promise<void> | null;
  /**
   * The clusters as this node's last report left them, with the version the cache held then: the base of the next
   * report while the watch has not brought the write.
   */
  readonly reported: Map<string, { readonly cluster: MPDCluster; readonly shadows: string | null }>;
  /** Ends the writer (the daemon's stop). */
  readonly reportStop: AbortController;
}

interface Caches {
  readonly clusters: Informer<MPDCluster>;
  readonly leases: Informer<Lease>;
  /** What each watches, for `/api/v1/status`. */
  readonly what: { readonly clusters: string; readonly leases: string };
}

/** The job's parts, handed to the steps of a run. */
interface FloatingIpJob {
  readonly deps: JobDeps;
  readonly options: FloatingIpOptions;
  readonly hooks: Required<Omit<FloatingIpHooks, "informers">>;
  readonly caches: Caches | null;
  readonly settings: ReturnType<typeof createFloatingIpSettings>;
  readonly state: FloatingIpState;
}

/** What one run saw. */
interface Seen {
  readonly observed: FloatingIpObserved;
  readonly leases: ReadonlyMap<string, Lease>;
  readonly leaseByAddress: Map<string, { holder: string | null; expiresAt: Date | null }>;
  readonly api: KubeClient | null;
}

function clusterKey(object: MPDCluster): string {
  return `${object.metadata?.namespace ?? ""}/${object.metadata?.name ?? ""}`;
}

function createCaches(deps: JobDeps, hooks: FloatingIpHooks, state: FloatingIpState): Caches | null {
  if (deps.kube === null) return null;
  const informerOptions = { ...hooks.informers, clock: deps.clock, log: deps.log };
  const sources = { clusters: mpdClusterSource(deps.kube), leases: floatingIpLeaseSource(deps.kube) };
  const clusters = createInformer(sources.clusters, informerOptions);
  const leases = createInformer(sources.leases, informerOptions);
  // Only a change of what a cluster asks for, or of a Lease's holder, wakes the job: the operator's other status
  // writes and every holder's renewals do not.
  clusters.onChange(({ type, object, previous }) => {
    const asked = (o: MPDCluster | undefined) => o && JSON.stringify(desiredFloatingIp(o, { clientNic: "" }));
    if (type === "MODIFIED" && asked(object) === asked(previous)) return;
    state.changedAt.set(clusterKey(object), deps.clock.now());
    wakeSoon(state);
  });
  leases.onChange(({ type, object, previous }) => {
    const name = object.metadata?.name ?? "";
    const pending = state.written.get(name);
    if (
      pending && (type === "DELETED" || pending.lease.metadata?.resourceVersion === object.metadata?.resourceVersion)
    ) {
      state.written.delete(name);
    }
    if (type === "MODIFIED" && object.spec?.holderIdentity === previous?.spec?.holderIdentity) return;
    wakeSoon(state);
  });
  return { clusters, leases, what: { clusters: sources.clusters.what, leases: sources.leases.what } };
}

// A failover moves many leaders at once, and the old holder clears their Leases within milliseconds of each other:
// one run a moment later takes them all side by side, where a run per event would take them one probe after another.
const WAKE_BATCH_MS = 50;

function wakeSoon(state: FloatingIpState): void {
  if (state.batchTimer !== null) return;
  state.batchTimer = setTimeout(() => {
    state.batchTimer = null;
    state.wake();
  }, WAKE_BATCH_MS);
}

/** Makes the floating-IP controller; its watches start with the first run. */
export function createFloatingIpController(
  deps: JobDeps,
  options: FloatingIpOptions,
  hooks: FloatingIpHooks = {},
): FloatingIpController {
  const state: FloatingIpState = {
    sightings: new Map(),
    written: new Map(),
    probes: new Map(),
    lastChange: new Map(),
    announcedAt: new Map(),
    changedAt: new Map(),
    announcing: new Map(),
    apiFailedAt: -Infinity,
    wake: () => {},
    wakeTimer: null,
    batchTimer: null,
    firstRun: true,
    busy: Promise.resolve(),
    reports: new Map(),
    reporting: null,
    reported: new Map(),
    reportStop: new AbortController(),
  };
  const job: FloatingIpJob = {
    deps,
    options,
    hooks: {
      probeRetryMs: hooks.probeRetryMs ?? 10_000,
      commandTimeoutMs: hooks.commandTimeoutMs ?? 5_000,
      syncWaitMs: hooks.syncWaitMs ?? 5_000,
    },
    caches: createCaches(deps, hooks, state),
    settings: createFloatingIpSettings(deps.log, {
      netCardName: options.netCardName,
      refreshMs: options.settingsRefreshMs,
    }),
    state,
  };
  return {
    name: JOBS.floatingIp.name,
    schedule: { everyMs: options.renewIntervalMs },
    runAtStart: true,
    // a probe (1 s), an add (4 commands) and the Lease writes, with room for a slow API server
    timeoutMs: Math.max(options.renewIntervalMs * 2, 15_000),
    onWake(wake) {
      state.wake = wake;
    },
    caches() {
      const { caches } = job;
      if (caches === null) return [];
      return [
        { what: caches.what.clusters, ...caches.clusters.state() },
        { what: caches.what.leases, ...caches.leases.state() },
      ];
    },
    run: oneAtATime(state, async (ctx) => {
      const seen = await observe(job, ctx);
      const plan = planFloatingIps(seen.observed, {
        nodeName: options.node,
        addEnabled: options.addEnabled,
        delEnabled: options.delEnabled,
        leaseDurationSeconds: options.leaseDurationSeconds,
        // renewed on every run: a run every interval keeps the Lease at most one interval old
        renewIntervalMs: options.renewIntervalMs * 0.8,
        probeRetryMs: job.hooks.probeRetryMs,
      });
      const applied = await apply(job, { seen, plan, ctx });
      scheduleWake(job, { plan, now: seen.observed.now });
      return outcome(job, { seen, plan, applied, ctx });
    }),
    async close() {
      if (state.wakeTimer !== null) clearTimeout(state.wakeTimer);
      if (state.batchTimer !== null) clearTimeout(state.batchTimer);
      state.wake = () => {};
      // The last reports get a moment to reach the server (`once` ends right after its run), then are dropped.
      let grace: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([state.reporting, new Promise((r) => grace = setTimeout(r, REPORT_GRACE_MS))]);
      clearTimeout(grace);
      state.reportStop.abort();
      const announcing = [...state.announcing.values()].map((a) => a.done);
      await Promise.all([job.caches?.clusters.stop(), job.caches?.leases.stop(), state.reporting, ...announcing]);
    },
  };
}

// A run that outlived its time limit must finish before the next one reads the state.
function oneAtATime<T>(state: FloatingIpState, run: (ctx: RunContext) => Promise<T>): (ctx: RunContext) => Promise<T> {
  return (ctx) => {
    const next = state.busy.then(() => run(ctx));
    state.busy = next.catch(() => {});
    return next;
  };
}

async function observe(job: FloatingIpJob, ctx: RunContext): Promise<Seen> {
  const { deps, caches, state, options } = job;
  const api = deps.kube?.withSignal(ctx.signal) ?? null;
  if (caches) {
    caches.clusters.start();
    caches.leases.start();
    if (state.firstRun) {
      // only the first run waits for the lists (so that `once` sees the cluster); later ones use what is cached
      const wait = linkSignals([ctx.signal], { timeoutMs: job.hooks.syncWaitMs });
      await Promise.all([caches.clusters.whenSynced(wait.signal), caches.leases.whenSynced(wait.signal)]);
      wait.dispose();
    }
  }
  state.firstRun = false;
  // While the watches cannot be held, nothing is changed anyway: the settings are not read, which spares the
  // client's rate limit for the jobs that must still report.
  const fresh = cachesFresh(job, deps.clock.now());
  const settings = fresh ? await job.settings(api, deps.clock.now().getTime()) : job.settings.last();
  const interfaces = await listInterfaces(deps.runCommand, {
    timeoutMs: job.hooks.commandTimeoutMs,
    signal: ctx.signal,
  });
  const now = deps.clock.now();
  const tagged = planTagged(taggedAddresses(interfaces));

  const leases = new Map<string, Lease>();
  for (const lease of caches?.leases.list() ?? []) leases.set(lease.metadata?.name ?? "", lease);
  for (const [name, { lease, shadows }] of state.written) {
    // The watch can deliver a write before its answer arrives, and later versions after it: then the cache wins.
    if ((leases.get(name)?.metadata?.resourceVersion ?? null) === shadows) leases.set(name, lease);
    else state.written.delete(name);
  }
  const leaseViews = new Map<string, { lease: Lease; observed: LeaseObserved }>();
  for (const [name, lease] of leases) {
    leaseViews.set(name, { lease, observed: leaseObserved(lease, { sightings: state.sightings, now }) });
  }
  for (const name of state.sightings.keys()) if (!leases.has(name)) state.sightings.delete(name);

  const clusters = clusterObservations(caches?.clusters.list() ?? [], leaseViews, { clientNic: settings.clientNic });
  const leaseByAddress = new Map<string, { holder: string | null; expiresAt: Date | null }>();
  for (const c of clusters) {
    if (c.desired.kind === "refuse" || c.lease === null) continue;
    const view = viewLease(c.lease, { me: nodeKey(options.node), now, fallbackSeconds: options.leaseDurationSeconds });
    leaseByAddress.set(c.desired.ip.address, { holder: view.holder, expiresAt: view.expiresAt });
  }
  const observed: FloatingIpObserved = {
    clusters,
    tagged,
    interfaces: interfaces.map((i) => i.name),
    enableVip: settings.enableVip,
    apiReachable: fresh && settings.known && cachesFresh(job, now),
    probes: state.probes,
    now,
  };
  return { observed, leases, leaseByAddress, api };
}

/** Whether both lists are done, both watches current, and no write failed for want of the API server lately. */
function cachesFresh(job: FloatingIpJob, now: Date): boolean {
  const { caches, state, options } = job;
  if (caches === null) return false;
  const staleMs = options.renewIntervalMs * 2;
  for (const cache of [caches.clusters, caches.leases]) {
    const s = cache.state();
    if (!s.synced || s.ageMs === null || s.ageMs > staleMs) return false;
  }
  return now.getTime() - state.apiFailedAt > staleMs;
}

function needsApplying(action: FloatingIpPlan["actions"][number]): boolean {
  return action.remove.length > 0 || action.leases.length > 0 || action.kind === "probe-then-add";
}

async function apply(
  job: FloatingIpJob,
  { seen, plan, ctx }: { seen: Seen; plan: FloatingIpPlan; ctx: RunContext },
): Promise<Map<string, ActionApplied>> {
  const { deps, state } = job;
  const applied = new Map<string, ActionApplied>();
  if (ctx.dryRun || seen.api === null) return applied;
  const applyDeps = {
    kube: seen.api,
    runCommand: deps.runCommand,
    clock: deps.clock,
    events: deps.events,
    log: deps.log,
    leases: seen.leases,
    onLeaseWritten: (lease: Lease) => {
      const name = lease.metadata?.name ?? "";
      const cached = job.caches?.leases.get(lease.metadata?.namespace, name)?.metadata?.resourceVersion ?? null;
      state.written.set(name, { lease, shadows: cached });
    },
    probes: state.probes,
    announce: (device: string, ip: string) => announce(job, { device, ip }),
    commandTimeoutMs: job.hooks.commandTimeoutMs,
    signal: ctx.signal,
  };
  // The addresses are independent: a probe (1 s) of one must not hold up the move of another.
  const pending = plan.actions.filter(needsApplying);
  // Every removal of the run comes first, so that the Leases this host lets go are cleared together: the next holder
  // then takes them in one run, where a Lease cleared a removal later would wait for that run's probes.
  const removals = new Map<string, { removed: string[]; error: string | null }>();
  await eachAtOnce(pending.filter((a) => a.remove.length > 0), async (action) => {
    // An announcement still sending after the removal would claim the address for this host: the next holder's
    // probe would hear it, and clients could be pointed back here.
    await stopAnnouncing(job, action.address);
    removals.set(action.address, await applyRemovals(applyDeps, action));
  });
  await eachAtOnce(pending, async (action) => {
    const done = await applyAction(applyDeps, action, removals.get(action.address));
    applied.set(action.address, done);
    const now = deps.clock.now();
    if (done.removed.length > 0 || done.added) state.lastChange.set(action.address, now);
    if (done.apiFailed) state.apiFailedAt = now.getTime();
    if (done.error) deps.log.warn("{error}", { error: done.error });
    // after a Lease write the next run holds (or, for an acquire without probe, probes) at once
    if (done.error === null && action.kind === "acquire") state.wake();
  });
  queueReports(job, { seen, conditions: conditionsAfter(plan, applied) });
  return applied;
}

/** Calls `fn` for each item, at most APPLY_CONCURRENCY at once. */
async function eachAtOnce<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
  };
  await Promise.all(Array.from({ length: Math.min(APPLY_CONCURRENCY, queue.length) }, worker));
}

function announce(job: FloatingIpJob, target: { device: string; ip: string }): void {
  const { deps, state } = job;
  state.announcedAt.set(target.ip, deps.clock.now());
  state.announcing.get(target.ip)?.stop.abort();
  // Not tied to the run's signal: the announcement must finish even when the run ends first.
  const stop = new AbortController();
  const done = announceInBackground({
    runCommand: deps.runCommand,
    log: deps.log,
    commandTimeoutMs: job.hooks.commandTimeoutMs,
    signal: stop.signal,
  }, target).finally(() => {
    if (state.announcing.get(target.ip)?.done === done) state.announcing.delete(target.ip);
  });
  state.announcing.set(target.ip, { stop, done });
}

async function stopAnnouncing(job: FloatingIpJob, address: string): Promise<void> {
  const running = job.state.announcing.get(address);
  if (!running) return;
  running.stop.abort();
  await running.done;
}

/**
 * Queues each `LeaderIPReady` this node reports, for a writer that runs beside the jobs' runs: a report is one or two
 * API calls, and a run that waited for them (behind the rate limit, in a failover of many clusters) could not take the
 * next Lease its peer released meanwhile.
 */
function queueReports(
  job: FloatingIpJob,
  { seen, conditions }: { seen: Seen; conditions: readonly LeaderIpCondition[] },
): void {
  if (job.caches === null || seen.api === null || !seen.observed.apiReachable) return;
  for (const condition of conditions) {
    job.state.reports.set(`${condition.cluster.namespace}/${condition.cluster.name}`, condition);
  }
  startReporting(job);
}

function startReporting(job: FloatingIpJob): void {
  const { state } = job;
  if (state.reporting !== null || state.reports.size === 0 || state.reportStop.signal.aborted) return;
  state.reporting = sendReports(job).finally(() => {
    state.reporting = null;
    startReporting(job);
  });
}

/** Writes the queued reports one by one, each only when the cached cluster does not already say it. */
async function sendReports(job: FloatingIpJob): Promise<void> {
  const { deps, caches, state } = job;
  if (caches === null || deps.kube === null) return;
  const kube = deps.kube.withSignal(state.reportStop.signal);
  for (const [key, condition] of state.reports) {
    state.reports.delete(key);
    const { namespace, name } = condition.cluster;
    const inCache = caches.clusters.get(namespace, name);
    const mine = state.reported.get(key);
    const cacheVersion = inCache?.metadata?.resourceVersion ?? null;
    const cached = mine && mine.shadows === cacheVersion ? mine.cluster : inCache;
    if (mine && mine.shadows !== cacheVersion) state.reported.delete(key);
    const current = (Array.isArray(cached?.status?.conditions) ? cached.status.conditions : [])
      .find((c) => c?.type === LEADER_IP_READY);
    if (
      current?.status === condition.status && current.reason === condition.reason &&
      current.message === condition.message
    ) continue;
    try {
      const done = await writeLeaderIpReady(kube, condition.cluster, {
        condition: { status: condition.status, reason: condition.reason, message: condition.message },
        clock: deps.clock,
        cached,
      });
      if (done.written && done.cluster) {
        state.reported.set(key, { cluster: slimMpdCluster(done.cluster), shadows: cacheVersion });
      }
    } catch (error) {
      if (!state.reportStop.signal.aborted) deps.log.warn("{error}", { error: (error as Error).message });
    }
    if (state.reportStop.signal.aborted) return;
  }
}

/** Wakes the job when a Lease it waits for expires, or when a probe is due again. */
function scheduleWake(job: FloatingIpJob, { plan, now }: { plan: FloatingIpPlan; now: Date }): void {
  const { state } = job;
  let at = Infinity;
  for (const action of plan.actions) {
    if (action.kind !== "wait") continue;
    const expires = action.heldBy?.expiresAt?.getTime();
    if (expires !== undefined) at = Math.min(at, expires);
    const probe = state.probes.get(action.address);
    if (action.reason === "IPConflict" && probe) at = Math.min(at, probe.at.getTime() + job.hooks.probeRetryMs);
  }
  if (state.wakeTimer !== null) clearTimeout(state.wakeTimer);
  state.wakeTimer = null;
  if (!Number.isFinite(at) || at - now.getTime() >= job.options.renewIntervalMs) return;
  state.wakeTimer = setTimeout(() => {
    state.wakeTimer = null;
    state.wake();
  }, Math.max(0, at - now.getTime()) + 50);
}

/** Each address's Lease as this node sees it after the run: a write it made counts. */
function leasesAfter(
  { seen, plan, applied }: { seen: Seen; plan: FloatingIpPlan; applied: Map<string, ActionApplied> },
): Map<string, { holder: string | null; expiresAt: Date | null }> {
  const leases = new Map(seen.leaseByAddress);
  for (const action of plan.actions) {
    const written = applied.get(action.address)?.leasesWritten ?? 0;
    const last = action.leases[written - 1];
    if (written === 0 || last === undefined) continue;
    leases.set(action.address, {
      holder: last.holderIdentity,
      expiresAt: last.op === "clear" ? null : new Date(last.at.getTime() + last.leaseDurationSeconds * 1000),
    });
  }
  return leases;
}

function outcome(
  job: FloatingIpJob,
  { seen, plan, applied, ctx }: {
    seen: Seen;
    plan: FloatingIpPlan;
    applied: Map<string, ActionApplied>;
    ctx: RunContext;
  },
): RunOutcome<FloatingIpResult> {
  const { state, options, caches } = job;
  const tagged = new Map<string, TaggedAddress[]>();
  for (const t of seen.observed.tagged) tagged.set(t.address, [...(tagged.get(t.address) ?? []), t]);
  const result = floatingIpResult({
    node: options.node,
    plan,
    applied,
    tagged,
    leases: leasesAfter({ seen, plan, applied }),
    lastChange: state.lastChange,
    announcedAt: state.announcedAt,
    apiReachable: seen.observed.apiReachable,
    enableVip: seen.observed.enableVip,
    clusters: caches?.clusters.list().length ?? 0,
    dryRun: ctx.dryRun || seen.api === null,
  });
  const added = [...applied.values()].filter((a) => a.added).length;
  const conflicts = [...applied.values()].filter((a) => a.conflict).length;
  const counters: JobCounter[] = [
    {
      name: "floating_ip_held",
      help: "Floating IPs this host carries",
      kind: "gauge",
      value: result.addresses.filter((a) => a.held).length,
    },
    { name: "floating_ip_moves_total", help: "Floating IPs added on this host", value: added },
    { name: "floating_ip_conflicts_total", help: "Duplicate-address probes another host answered", value: conflicts },
  ];
  for (const action of plan.actions) {
    if (!applied.get(action.address)?.added || action.cluster === null) continue;
    const changed = state.changedAt.get(`${action.cluster.namespace}/${action.cluster.name}`);
    const announced = state.announcedAt.get(action.address);
    if (!changed || !announced) continue;
    counters.push({
      name: "floating_ip_announce_seconds",
      help: "From seeing a cluster's leader change to the announcement of its address on the new leader",
      kind: "histogram",
      buckets: [0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 30],
      value: Math.max(0, announced.getTime() - changed.getTime()) / 1000,
    });
  }
  const changedSomething = applied.size > 0 && [...applied.values()].some((a) => a.added || a.removed.length > 0);
  return { summary: floatingIpSummary(result), result, counters, routine: !changedSomething };
}
