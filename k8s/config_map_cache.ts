/**
 * The ConfigMaps the daemon reads, kept in memory by informers (one list+watch per name, by field selector, and one
 * per label selector) and served through the KubeClient interface, so a job reads `kube.getConfigMap()` as before and
 * the API server is asked nothing. A cache that has not listed yet is never taken for "no such ConfigMap": a run
 * waits for its first list (until the run's signal stops it, naming the cache's last error), and a read without a
 * run's signal asks the server. While a watch cannot be held, the last objects are served and `states()` says how old.
 * ConfigMaps the daemon writes itself without a watch are remembered from its own writes.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import type { Clock, Logger } from "../core/types.ts";
import type { KubeClient } from "./client.ts";
import { KubeError } from "./errors.ts";
import { createInformer, type Informer, type InformerChange, type InformerState } from "./informer.ts";
import { collectionSource } from "./list_watch.ts";

/** What the cache keeps. */
export interface ConfigMapCacheOptions {
  /** ConfigMaps watched by name (a field selector each). */
  readonly names: readonly string[];
  /** Label selectors watched (the version ConfigMaps). */
  readonly labelSelectors: readonly string[];
  /** ConfigMaps the daemon writes and nobody else: read once, then known from the daemon's own writes. */
  readonly remembered: readonly string[];
  /** Where the age of a cache comes from. */
  readonly clock: Clock;
  /** For listener failures. */
  readonly log?: Logger;
  /** The jitter of backoffs and watch lengths, in [0, 1); Math.random by default. */
  readonly random?: () => number;
  /** How long one watch lasts, in seconds; default a jittered 2700 to 3600 per informer. */
  readonly watchTimeoutSeconds?: number;
}

/** One informer's health, named. */
export interface CacheState extends InformerState {
  /** What it caches: `ConfigMap "ccm-config"`, `ConfigMaps with labels "a=b"`. */
  readonly what: string;
}

/** The caches of ConfigMaps and the client that reads through them. */
export interface ConfigMapCache {
  /** A client like the one it wraps whose ConfigMap reads come from the caches. */
  readonly kube: KubeClient;
  /** Calls `listener` with every change of a watched name or selector after the initial list; returns the unsubscribe call. */
  onChange(nameOrSelector: string, listener: (change: InformerChange<V1ConfigMap>) => void): () => void;
  /** The health of every informer. */
  states(): CacheState[];
  /** Starts every informer. */
  start(): void;
  /** Stops every informer; the caches stay. */
  stop(): Promise<void>;
}

interface Entry {
  readonly what: string;
  readonly informer: Informer<V1ConfigMap>;
}

/** Creates the caches of `options` over `kube` (nothing is sent before `start()`). */
export function createConfigMapCache(kube: KubeClient, options: ConfigMapCacheOptions): ConfigMapCache {
  const random = options.random ?? Math.random;
  const namespace = kube.namespace;
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`;
  const byName = new Map<string, Entry>();
  const bySelector = new Map<string, Entry>();
  const memory = new Map<string, V1ConfigMap | null>();
  const remembered = new Set(options.remembered);

  function informerOf(collection: { what: string; fieldSelector?: string; labelSelector?: string }): Entry {
    const what = `${collection.what} in ${namespace}`;
    const informer = createInformer<V1ConfigMap>(collectionSource(kube, { path, ...collection, what }), {
      clock: options.clock,
      log: options.log,
      random,
      // The first retries 1-2 s apart, not 0.25-0.5 s: in an outage five informers would take most of the client's
      // rate limit (5 requests a second) from the jobs.
      backoffBaseMs: 2000,
      // Within the 30-60 min the real server gives a watch that names no timeout: at most 1.33 re-watches an hour
      // per informer (5 of them stay under 7 an hour beside the 60 heartbeats), still spread over the hosts.
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? Math.round(2700 + 900 * random()),
    });
    return { what, informer };
  }
  for (const name of new Set(options.names)) {
    byName.set(name, informerOf({ what: `ConfigMap "${name}"`, fieldSelector: `metadata.name=${name}` }));
  }
  for (const selector of new Set(options.labelSelectors)) {
    bySelector.set(selector, informerOf({ what: `ConfigMaps with labels "${selector}"`, labelSelector: selector }));
  }
  const entries = [...byName.values(), ...bySelector.values()];

  /**
   * Waits for the first list of `entry` while `stop` lets it; without a run's signal, says to ask the server. Waiting
   * rather than asking: at a start during an outage the jobs would retry the same objects beside the informers.
   */
  async function listed(entry: Entry, stop: AbortSignal | undefined): Promise<boolean> {
    if (entry.informer.synced) return true;
    if (!stop) return false;
    if (await entry.informer.whenSynced(stop)) return true;
    const last = entry.informer.state().lastError;
    throw new KubeError(
      `Cannot read ${entry.what}: it was not listed yet${last ? ` (${last.message})` : ""} and the run was stopped`,
      { status: 0, stopped: true },
    );
  }

  function reading(inner: KubeClient, stop?: AbortSignal): KubeClient {
    async function fromServer(name: string): Promise<V1ConfigMap | null> {
      const found = await inner.getConfigMap(name);
      if (remembered.has(name)) memory.set(name, found);
      return found;
    }
    function wrote(written: V1ConfigMap): V1ConfigMap {
      const name = written.metadata?.name ?? "";
      if (remembered.has(name)) memory.set(name, written);
      return written;
    }
    return {
      ...inner,
      async getConfigMap(name, read) {
        if (read?.fresh) return fromServer(name);
        const entry = byName.get(name);
        if (entry && await listed(entry, stop)) return entry.informer.get(namespace, name) ?? null;
        if (memory.has(name)) return memory.get(name) ?? null;
        return fromServer(name);
      },
      async createConfigMap(configMap) {
        return wrote(await inner.createConfigMap(configMap));
      },
      async replaceConfigMap(configMap) {
        return wrote(await inner.replaceConfigMap(configMap));
      },
      async listConfigMaps(labelSelector) {
        const entry = bySelector.get(labelSelector);
        if (entry && await listed(entry, stop)) return entry.informer.list();
        return inner.listConfigMaps(labelSelector);
      },
      // The server calls stop on every signal given; the wait for a first list on the last one (a run's).
      withSignal: (signal) => reading(inner.withSignal(signal), signal),
    };
  }

  return {
    kube: reading(kube),
    onChange(nameOrSelector, listener) {
      const entry = byName.get(nameOrSelector) ?? bySelector.get(nameOrSelector);
      if (!entry) throw new Error(`No cache of ConfigMap "${nameOrSelector}"`);
      const { informer } = entry;
      return informer.onChange((change) => {
        // The first list tells what was there already, not what changed.
        const state = informer.state();
        if (state.lists === 1 && !state.watching) return;
        listener(change);
      });
    },
    states: () => entries.map(({ what, informer }) => ({ what, ...informer.state() })),
    start: () => entries.forEach((entry) => entry.informer.start()),
    stop: async () => void await Promise.all(entries.map((entry) => entry.informer.stop())),
  };
}

/** A line on a cache that is not following the server, or null when it is: for `/readyz`. */
export function cacheTrouble(state: CacheState): string | null {
  const error = state.lastError ? `: ${state.lastError.message}` : "";
  if (!state.synced) return `${state.what} not listed yet${error}`;
  // Between two watches (one ended on its timeout) nothing failed: only a failing cache is worth a line.
  if (state.watching || state.failures === 0) return null;
  const age = Math.round((state.ageMs ?? 0) / 1000);
  return `${state.what} not watched for ${age} s, the last objects are used${error}`;
}
