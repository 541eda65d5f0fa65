/** Small typed functions for the cluster calls the daemon makes, with timeouts, retries and a rate limit. */
// Types only from @kubernetes/client-node: its generated CoreV1 client and model serializer cost about 30 MB of
// resident memory on every host, for eight REST paths that are built here.
import { linkSignals } from "../core/signals.ts";
import type { CoreV1Event, V1ConfigMap, V1Node, V1Pod } from "@kubernetes/client-node";
import { KubeError } from "./errors.ts";
import type { ClusterConnection } from "./kube_config.ts";
import { type Call, createTransport, type KubeClientOptions } from "./transport.ts";

export type { KubeClientOptions } from "./transport.ts";

/** Options of list calls. */
export interface ListOptions {
  /** Namespace; all namespaces when absent (pods only). */
  readonly namespace?: string;
  /** Label selector, e.g. `app=polarstack-daemon`. */
  readonly labelSelector?: string;
  /** Field selector, e.g. `spec.nodeName=node-1`. */
  readonly fieldSelector?: string;
}

/** The cluster calls the daemon makes. Every error is a KubeError that names the object. */
export interface KubeClient {
  /** The namespace of the daemon's own objects (`kube-system`). */
  readonly namespace: string;
  /**
   * A ConfigMap, or null when it does not exist. This client always asks the server; a cache-backed one answers from
   * its cache unless `fresh` is set (after a 409, when only the server knows).
   */
  getConfigMap(name: string, options?: { readonly fresh?: boolean }): Promise<V1ConfigMap | null>;
  /** Creates a ConfigMap; 409 AlreadyExists when it exists. */
  createConfigMap(configMap: V1ConfigMap): Promise<V1ConfigMap>;
  /** Replaces a ConfigMap; 409 Conflict when its resourceVersion is stale. */
  replaceConfigMap(configMap: V1ConfigMap): Promise<V1ConfigMap>;
  /** ConfigMaps of the namespace that match a label selector. */
  listConfigMaps(labelSelector: string): Promise<V1ConfigMap[]>;
  /** Pods in a namespace, or in all namespaces. */
  listPods(options?: ListOptions): Promise<V1Pod[]>;
  /** A Node, or null when it does not exist. */
  getNode(name: string): Promise<V1Node | null>;
  /** Strategic-merge PATCH of `nodes/<name>/status`. */
  patchNodeStatus(name: string, patch: unknown): Promise<V1Node>;
  /** Creates an Event. */
  createEvent(event: CoreV1Event): Promise<CoreV1Event>;
  /** Merge-patches an Event (to raise its count). */
  patchEvent(name: string, namespace: string, patch: unknown): Promise<CoreV1Event>;
  /**
   * Performs a raw request (for APIs outside CoreV1, e.g. TokenReview); returns the parsed JSON body. `retries`
   * overrides the client's count (0: the caller backs off itself); `background` puts it behind the jobs' calls in
   * the rate limit.
   */
  request(
    method: string,
    path: string,
    options: {
      body?: unknown;
      what: string;
      query?: Record<string, string | undefined>;
      retries?: number;
      background?: boolean;
      contentType?: string;
    },
  ): Promise<unknown>;
  /**
   * Opens a GET whose answer is a stream of JSON lines (a watch), sent once: see `OpenStream`. `signal` stops it, as
   * the client's own signal does.
   */
  openStream(
    path: string,
    options: { what: string; query?: Record<string, string | undefined>; signal?: AbortSignal; background?: boolean },
  ): Promise<AsyncIterableIterator<unknown>>;
  /**
   * The same client for one job run: when `signal` aborts (the run's time limit), a call in flight is cancelled and a
   * call waiting to retry gives up with its last error, so an abandoned run writes nothing late.
   */
  withSignal(signal: AbortSignal): KubeClient;
}

const STRATEGIC = "application/strategic-merge-patch+json";
const MERGE = "application/merge-patch+json";

const seg = encodeURIComponent;

/** Creates the client for one connection. */
export function createKubeClient(connection: ClusterConnection, options: KubeClientOptions): KubeClient {
  const namespace = options.namespace ?? "kube-system";
  const { send, stream } = createTransport(connection, options);

  /** The items of a list answer; an answer without them is an error, never an empty list. */
  function itemsOf<T>(list: { items?: unknown } | null, what: string): T[] {
    if (!Array.isArray(list?.items)) {
      throw new KubeError(`Cannot ${what}: the answer has no items`, { status: 200 });
    }
    return list.items as T[];
  }

  async function orNull<T>(promise: Promise<T>): Promise<T | null> {
    try {
      return await promise;
    } catch (error) {
      if (error instanceof KubeError && error.status === 404) return null;
      throw error;
    }
  }

  const configMaps = `/api/v1/namespaces/${seg(namespace)}/configmaps`;

  function forRun(stop?: AbortSignal): KubeClient {
    const call = <T>(request: Call) => send<T>(request, stop);
    return {
      namespace,
      getConfigMap(name) {
        return orNull(
          call<V1ConfigMap>({ method: "GET", path: `${configMaps}/${seg(name)}`, what: `get ConfigMap "${name}"` }),
        );
      },
      createConfigMap(configMap) {
        const name = configMap.metadata?.name ?? "";
        return call({ method: "POST", path: configMaps, body: configMap, what: `create ConfigMap "${name}"` });
      },
      replaceConfigMap(configMap) {
        const name = configMap.metadata?.name ?? "";
        return call({
          method: "PUT",
          path: `${configMaps}/${seg(name)}`,
          body: configMap,
          what: `replace ConfigMap "${name}"`,
        });
      },
      async listConfigMaps(labelSelector) {
        const what = `list ConfigMaps in "${namespace}" with labels "${labelSelector}"`;
        const list = await call<{ items?: unknown }>({
          method: "GET",
          path: configMaps,
          query: { labelSelector },
          what,
        });
        return itemsOf<V1ConfigMap>(list, what);
      },
      async listPods(list = {}) {
        const where = list.namespace ? `in "${list.namespace}"` : "in all namespaces";
        const selectors = [
          list.labelSelector && `labels "${list.labelSelector}"`,
          list.fieldSelector && `fields "${list.fieldSelector}"`,
        ].filter(Boolean).join(" and ");
        const what = `list Pods ${where}${selectors ? ` with ${selectors}` : ""}`;
        const pods = await call<{ items?: unknown }>({
          method: "GET",
          path: list.namespace ? `/api/v1/namespaces/${seg(list.namespace)}/pods` : "/api/v1/pods",
          query: { labelSelector: list.labelSelector, fieldSelector: list.fieldSelector },
          what,
        });
        // A failed or malformed list is never "no pods": the log cleanup would take every instance for gone.
        return itemsOf<V1Pod>(pods, what);
      },
      getNode(name) {
        return orNull(call<V1Node>({ method: "GET", path: `/api/v1/nodes/${seg(name)}`, what: `get Node "${name}"` }));
      },
      patchNodeStatus(name, patch) {
        return call({
          method: "PATCH",
          path: `/api/v1/nodes/${seg(name)}/status`,
          body: patch,
          contentType: STRATEGIC,
          what: `patch status of Node "${name}"`,
        });
      },
      createEvent(event) {
        const ns = event.metadata?.namespace ?? "default";
        return call({
          method: "POST",
          path: `/api/v1/namespaces/${seg(ns)}/events`,
          body: event,
          what: `create Event "${event.reason}" on ${event.involvedObject?.kind} "${event.involvedObject?.name}"`,
          // A report no decision waits for: the jobs' calls go first.
          background: true,
        });
      },
      patchEvent(name, ns, patch) {
        return call({
          method: "PATCH",
          path: `/api/v1/namespaces/${seg(ns)}/events/${seg(name)}`,
          body: patch,
          contentType: MERGE,
          background: true,
          what: `patch Event "${name}"`,
        });
      },
      request(method, path, { body, what, query, retries, background, contentType }) {
        return call({ method: method as Call["method"], path, body, what, query, retries, background, contentType });
      },
      openStream(path, { what, query, signal, background }) {
        const both = signal && stop ? linkSignals([stop, signal]).signal : signal ?? stop;
        return stream({ method: "GET", path, query, what, background }, both);
      },
      withSignal: (signal) => forRun(stop ? linkSignals([stop, signal]).signal : signal),
    };
  }
  return forRun();
}
