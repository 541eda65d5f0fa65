/**
 * One cache of one kind of object and selector, kept current by list+watch: list (remembering the list's
 * resourceVersion), then watch from it with bookmarks; a dropped stream resumes from the last resourceVersion, a 410
 * Expired re-lists, and errors back off with jitter. The cache is never emptied on an error: while the watch cannot
 * be held the last objects stay, and the state says how old they are and why.
 */
import type { V1ObjectMeta } from "@kubernetes/client-node";
import type { Clock, Logger } from "../core/types.ts";
import { backoffDelay } from "./backoff.ts";
import { KubeError } from "./errors.ts";
import { delay } from "./transport.ts";

/** What the informer needs of an object: its metadata. */
export interface KubeObjectLike {
  /** Name, namespace and resourceVersion. */
  readonly metadata?: V1ObjectMeta;
}

/** One line of a watch stream as the server sends it; checked by the informer. */
export interface RawWatchEvent {
  /** `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`. */
  readonly type?: unknown;
  /** The object, the bookmark's metadata, or a Status for ERROR. */
  readonly object?: unknown;
}

/** A list of a collection with the resourceVersion to watch from. */
export interface ListResult<T> {
  /** The objects. */
  readonly items: readonly T[];
  /** The list's `metadata.resourceVersion`. */
  readonly resourceVersion: string;
}

/** Where an informer lists and watches one collection (one kind and selector). */
export interface ListWatch<T> {
  /** Names the collection in errors: `MPDClusters in all namespaces`. */
  readonly what: string;
  /** Lists the collection once (no retry: the informer backs off). */
  list(signal: AbortSignal): Promise<ListResult<T>>;
  /** Opens a watch from `resourceVersion` with bookmarks; rejects with a KubeError (410: expired). */
  watch(
    resourceVersion: string,
    options: { signal: AbortSignal; timeoutSeconds: number },
  ): Promise<AsyncIterable<RawWatchEvent>>;
}

/** A change of the cache, after it was applied. */
export interface InformerChange<T> {
  /** What happened to the object. */
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  /** The object now (for DELETED: its last state). */
  readonly object: T;
  /** The object before a MODIFIED or a DELETED, as the cache had it. */
  readonly previous?: T;
}

/** The health of the cache, for `/readyz` and `/api/v1/status`. */
export interface InformerState {
  /** A first list has succeeded: the cache holds the collection (as of `ageMs` ago). */
  readonly synced: boolean;
  /** A watch is open: the cache follows the server. */
  readonly watching: boolean;
  /** The resourceVersion the cache is at ("" before the first list). */
  readonly resourceVersion: string;
  /** How long ago the cache was last known to match the server (0 while watching); null before the first list. */
  readonly ageMs: number | null;
  /** The last failure, with its time; it stays after recovery (see `watching`). */
  readonly lastError: { readonly message: string; readonly at: Date } | null;
  /** Failures since the last list or watch that worked. */
  readonly failures: number;
  /** Lists sent that succeeded (the first one and every re-list). */
  readonly lists: number;
}

/** Options of `createInformer`. */
export interface InformerOptions {
  /** Where the age of the cache and the time of errors come from. */
  readonly clock: Clock;
  /** The backoff's jitter, a number in [0, 1) per call; Math.random by default. */
  readonly random?: () => number;
  /** First backoff delay in ms (default 500). */
  readonly backoffBaseMs?: number;
  /** The longest backoff delay in ms (default 30000). */
  readonly backoffCapMs?: number;
  /**
   * How long the server keeps one watch open, in seconds; default a jittered 300 to 600 (so a thousand hosts do not
   * re-watch at once). The watch is also abandoned this much plus 30 s later, should the server never end it.
   */
  readonly watchTimeoutSeconds?: number;
  /** For listener failures and recoveries. */
  readonly log?: Logger;
}

/** A cache of one collection, kept by list+watch. */
export interface Informer<T> {
  /** The cached objects, in no set order. */
  list(): T[];
  /** One cached object, or undefined. */
  get(namespace: string | undefined, name: string): T | undefined;
  /** Whether a first list has succeeded. */
  readonly synced: boolean;
  /** Resolves true once a first list has succeeded, or false when `signal` aborts first. */
  whenSynced(signal: AbortSignal): Promise<boolean>;
  /** The health of the cache. */
  state(): InformerState;
  /** Calls `listener` with every change after the cache applied it; returns the unsubscribe call. */
  onChange(listener: (change: InformerChange<T>) => void): () => void;
  /** Starts listing and watching (again, after a stop); a second call while running does nothing. */
  start(): void;
  /** Stops the watch and any wait; resolves when nothing runs any more. The cache stays. */
  stop(): Promise<void>;
}

// A watch that ends this soon without an event is treated as a failure, so a server that closes every watch at once
// is not asked again in a tight loop.
const MIN_QUIET_WATCH_MS = 1000;
const STALE_MARGIN_MS = 30_000;

/** The cache key of an object: `namespace/name` (`/name` for a cluster-scoped one). */
export function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

/** Creates the informer of one collection; nothing is sent before `start()`. */
export function createInformer<T extends KubeObjectLike>(source: ListWatch<T>, options: InformerOptions): Informer<T> {
  const clock = options.clock;
  const random = options.random ?? Math.random;
  const cache = new Map<string, T>();
  const listeners = new Set<(change: InformerChange<T>) => void>();
  let synced = false;
  let watching = false;
  let resourceVersion = "";
  let currentAt: Date | null = null;
  let lastError: { message: string; at: Date } | null = null;
  let failures = 0;
  let lists = 0;
  let running: { controller: AbortController; done: Promise<void> } | null = null;
  // Who waits for the first list; a waiter that gave up leaves the set, so a long outage holds nothing.
  const waiters = new Set<() => void>();

  function emit(change: InformerChange<T>): void {
    for (const listener of [...listeners]) {
      try {
        listener(change);
      } catch (error) {
        options.log?.warn("A listener of {what} failed: {error}", { what: source.what, error: String(error) });
      }
    }
  }

  function keyOf(object: T): string | undefined {
    const name = object?.metadata?.name;
    return typeof name === "string" && name ? objectKey(object.metadata?.namespace, name) : undefined;
  }

  function fail(error: unknown): void {
    failures++;
    lastError = { message: error instanceof Error ? error.message : String(error), at: clock.now() };
  }

  /** Replaces the cache with a list, then tells the listeners what differs. */
  async function relist(signal: AbortSignal): Promise<void> {
    const result = await source.list(signal);
    const changes: InformerChange<T>[] = [];
    const seen = new Set<string>();
    for (const object of result.items) {
      const key = keyOf(object);
      if (key === undefined) continue;
      seen.add(key);
      const previous = cache.get(key);
      cache.set(key, object);
      if (previous === undefined) changes.push({ type: "ADDED", object });
      else if (previous.metadata?.resourceVersion !== object.metadata?.resourceVersion) {
        changes.push({ type: "MODIFIED", object, previous });
      }
    }
    for (const [key, previous] of [...cache]) {
      if (seen.has(key)) continue;
      cache.delete(key);
      changes.push({ type: "DELETED", object: previous, previous });
    }
    resourceVersion = result.resourceVersion;
    currentAt = clock.now();
    synced = true;
    waiters.forEach((wake) => wake());
    waiters.clear();
    lists++;
    failures = 0;
    changes.forEach(emit);
  }

  /** Applies one event; returns "expired" for a 410 ERROR, throws a KubeError for another ERROR. */
  function apply(event: RawWatchEvent): "expired" | undefined {
    const object = event?.object as T | undefined;
    const version = object?.metadata?.resourceVersion;
    if (event?.type === "ERROR") {
      const status = (event.object ?? {}) as { code?: unknown; message?: unknown };
      if (status.code === 410) return "expired";
      const code = typeof status.code === "number" ? status.code : 0;
      throw new KubeError(`Cannot watch ${source.what}: ${code} ${String(status.message ?? "error event")}`, {
        status: code,
      });
    }
    if (event?.type === "BOOKMARK") {
      if (typeof version === "string" && version) resourceVersion = version;
      return;
    }
    if (event?.type !== "ADDED" && event?.type !== "MODIFIED" && event?.type !== "DELETED") return;
    const key = object && keyOf(object);
    if (key === undefined) return;
    const previous = cache.get(key);
    if (event.type === "DELETED") cache.delete(key);
    else cache.set(key, object!);
    if (typeof version === "string" && version) resourceVersion = version;
    // An ADDED for an object the cache has (a resumed watch) is a modification to a listener.
    const type = event.type === "DELETED" ? "DELETED" : previous === undefined ? "ADDED" : "MODIFIED";
    emit(previous === undefined ? { type, object: object! } : { type, object: object!, previous });
  }

  /** One watch until it ends: "expired" (410), "ended" (closed by the server) or "quiet" (closed at once, empty). */
  async function watchOnce(signal: AbortSignal): Promise<"expired" | "ended" | "quiet"> {
    const timeoutSeconds = options.watchTimeoutSeconds ?? Math.round(300 + 300 * random());
    const controller = new AbortController();
    const stale = setTimeout(() => controller.abort(), (timeoutSeconds * 1000) + STALE_MARGIN_MS);
    const both = AbortSignal.any([signal, controller.signal]);
    const openedAt = performance.now();
    let events = 0;
    try {
      let stream: AsyncIterable<RawWatchEvent>;
      try {
        stream = await source.watch(resourceVersion, { signal: both, timeoutSeconds });
      } catch (error) {
        if (error instanceof KubeError && error.status === 410) return "expired";
        throw error;
      }
      watching = true;
      try {
        for await (const event of stream) {
          if (apply(event) === "expired") return "expired";
          // Only a watch that delivers resets the backoff: one that fails at once must not be retried in a loop.
          if (events++ === 0) failures = 0;
          currentAt = clock.now();
        }
      } catch (error) {
        if (!controller.signal.aborted || signal.aborted) throw error;
        throw new Error(`Cannot watch ${source.what}: the stream stayed open past its timeout of ${timeoutSeconds} s`);
      }
      return events === 0 && performance.now() - openedAt < MIN_QUIET_WATCH_MS ? "quiet" : "ended";
    } finally {
      clearTimeout(stale);
      if (watching) currentAt = clock.now();
      watching = false;
    }
  }

  async function run(signal: AbortSignal): Promise<void> {
    // After a stop, a start resumes from where the cache is; a 410 lists again.
    let needList = !synced;
    let justListed = false;
    while (!signal.aborted) {
      try {
        if (needList) {
          await relist(signal);
          needList = false;
          justListed = true;
        }
        const outcome = await watchOnce(signal);
        if (outcome === "expired") {
          needList = true;
          // Expired right after a list: the server is behind its own list; do not ask again at once.
          if (!justListed) continue;
          throw new Error(`Cannot watch ${source.what}: the list's resourceVersion expired at once`);
        }
        justListed = false;
        if (outcome === "quiet") throw new Error(`Cannot watch ${source.what}: the server ended the watch at once`);
      } catch (error) {
        if (signal.aborted) break;
        justListed = false;
        fail(error);
        const delayMs = backoffDelay(failures - 1, {
          baseMs: options.backoffBaseMs ?? 500,
          capMs: options.backoffCapMs ?? 30_000,
          random: random(),
        });
        await delay(delayMs, signal);
      }
    }
  }

  return {
    list: () => [...cache.values()],
    get: (namespace, name) => cache.get(objectKey(namespace, name)),
    get synced() {
      return synced;
    },
    whenSynced(signal) {
      if (synced) return Promise.resolve(true);
      if (signal.aborted) return Promise.resolve(false);
      return new Promise((resolve) => {
        const wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve(true);
        };
        const onAbort = () => {
          waiters.delete(wake);
          resolve(false);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        waiters.add(wake);
      });
    },
    state() {
      return {
        synced,
        watching,
        resourceVersion,
        ageMs: currentAt === null ? null : watching ? 0 : Math.max(0, clock.now().getTime() - currentAt.getTime()),
        lastError,
        failures,
        lists,
      };
    },
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    start() {
      if (running) return;
      const controller = new AbortController();
      running = { controller, done: run(controller.signal) };
    },
    async stop() {
      if (!running) return;
      const { controller, done } = running;
      controller.abort();
      await done;
      running = null;
    },
  };
}
