/** Small typed functions over @kubernetes/client-node's CoreV1 request factory, with timeouts, retries and a rate limit. */
import type { CoreV1Event, V1ConfigMap, V1Node, V1Pod } from "@kubernetes/client-node";
// Only the CoreV1 factory: the package's index loads every API group and costs about 40 MB more.
import {
  CoreV1ApiRequestFactory,
  CoreV1ApiResponseProcessor,
} from "@kubernetes/client-node/dist/gen/apis/CoreV1Api.js";
import { createConfiguration } from "@kubernetes/client-node/dist/gen/configuration.js";
import { ServerConfiguration } from "@kubernetes/client-node/dist/gen/servers.js";
import { type RequestContext, ResponseContext } from "@kubernetes/client-node/dist/gen/http/http.js";
import { backoffDelay, isRetryableStatus, parseRetryAfter } from "./backoff.ts";
import { KubeError } from "./errors.ts";
import type { ClusterConnection } from "./kube_config.ts";
import { RateLimiter } from "./rate_limiter.ts";

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
  /** A ConfigMap, or null when it does not exist. */
  getConfigMap(name: string): Promise<V1ConfigMap | null>;
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
  /** Performs a raw request (for APIs outside CoreV1, e.g. TokenReview); returns the parsed JSON body. */
  request(method: string, path: string, options: { body?: unknown; what: string }): Promise<unknown>;
}

/** Options of the real client. */
export interface KubeClientOptions {
  /** Namespace of the daemon's objects. */
  readonly namespace?: string;
  /** User-Agent header. */
  readonly userAgent: string;
  /** Client-side rate limit. */
  readonly qps?: number;
  /** Client-side burst. */
  readonly burst?: number;
  /** Per-request timeout in milliseconds. */
  readonly timeoutMs?: number;
  /** How many times a retryable failure is retried. */
  readonly retries?: number;
  /** The longest backoff in milliseconds. */
  readonly backoffCapMs?: number;
  /** Called before each retry, for logs and metrics. */
  readonly onRetry?: (info: { what: string; attempt: number; delayMs: number; cause: string }) => void;
  /** Called after every response, for metrics and tests. */
  readonly onResponse?: (info: { method: string; status: number }) => void;
}

type Verb = "get" | "create" | "replace" | "list" | "patch";

const STRATEGIC = "application/strategic-merge-patch+json";
const MERGE = "application/merge-patch+json";

/** Creates the client for one connection. */
export function createKubeClient(connection: ClusterConnection, options: KubeClientOptions): KubeClient {
  const namespace = options.namespace ?? "kube-system";
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(connection.server, {}),
    authMethods: {},
  });
  const factory = new CoreV1ApiRequestFactory(configuration);
  const processor = new CoreV1ApiResponseProcessor();
  const limiter = new RateLimiter({ qps: options.qps ?? 5, burst: options.burst ?? 10 });
  const httpClient = connection.caCert || connection.clientCert
    ? Deno.createHttpClient({
      caCerts: connection.caCert ? [connection.caCert] : undefined,
      cert: connection.clientCert,
      key: connection.clientKey,
    })
    : undefined;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const retries = options.retries ?? 5;
  let token = connection.token;
  let tokenReadAt = 0;

  function bearer(): string | undefined {
    if (connection.tokenFile && performance.now() - tokenReadAt > 60_000) {
      try {
        token = Deno.readTextFileSync(connection.tokenFile).trim();
        tokenReadAt = performance.now();
      } catch (error) {
        throw new KubeError(`Cannot read token file "${connection.tokenFile}": ${(error as Error).message}`, {
          status: 0,
        });
      }
    }
    return token;
  }

  async function sendOnce(ctx: RequestContext, what: string): Promise<ResponseContext> {
    await limiter.take();
    const headers: Record<string, string> = { ...ctx.getHeaders(), "User-Agent": options.userAgent };
    const auth = bearer();
    if (auth) headers.Authorization = `Bearer ${auth}`;
    const signal = AbortSignal.timeout(timeoutMs);
    let response: Response;
    let text: string;
    try {
      response = await fetch(ctx.getUrl(), {
        method: ctx.getHttpMethod().toString(),
        headers,
        body: ctx.getBody() as BodyInit | undefined,
        signal,
        client: httpClient,
      });
      text = await response.text();
    } catch (error) {
      const cause = signal.aborted ? `no answer within ${timeoutMs} ms` : (error as Error).message;
      options.onResponse?.({ method: ctx.getHttpMethod().toString(), status: 0 });
      throw new KubeError(`Cannot ${what}: ${cause}`, { status: 0 });
    }
    options.onResponse?.({ method: ctx.getHttpMethod().toString(), status: response.status });
    const responseHeaders: Record<string, string> = {};
    response.headers.forEach((value, key) => (responseHeaders[key] = value));
    if (response.status >= 400) {
      let reason = "";
      let detail = "";
      try {
        const status = JSON.parse(text) as { reason?: string; message?: string };
        reason = status.reason ?? "";
        detail = status.message ?? "";
      } catch {
        detail = text.slice(0, 200);
      }
      const head = `${response.status} ${response.statusText || reason}`.trim();
      const error = new KubeError(`Cannot ${what}: ${head}${detail ? `: ${detail}` : ""}`, {
        status: response.status,
        reason,
      });
      (error as KubeError & { retryAfter?: string | null }).retryAfter = response.headers.get("retry-after");
      throw error;
    }
    const bytes = new TextEncoder().encode(text);
    return new ResponseContext(response.status, responseHeaders, {
      text: () => Promise.resolve(text),
      binary: () => Promise.resolve(bytes as unknown as Buffer),
    });
  }

  async function send(build: () => Promise<RequestContext>, what: string, contentType?: string) {
    for (let attempt = 0;; attempt++) {
      const ctx = await build();
      if (contentType) ctx.setHeaderParam("Content-Type", contentType);
      try {
        return await sendOnce(ctx, what);
      } catch (error) {
        if (!(error instanceof KubeError) || !isRetryableStatus(error.status) || attempt >= retries) throw error;
        const asked = parseRetryAfter((error as KubeError & { retryAfter?: string }).retryAfter, new Date());
        const delayMs = Math.min(
          options.backoffCapMs ?? 30_000,
          asked ?? backoffDelay(attempt, { capMs: options.backoffCapMs }),
        );
        options.onRetry?.({ what, attempt: attempt + 1, delayMs, cause: error.message });
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
  }

  function describe(verb: Verb, kind: string, name?: string): string {
    return name === undefined ? `${verb} ${kind}` : `${verb} ${kind} "${name}"`;
  }

  return {
    namespace,
    async getConfigMap(name) {
      try {
        const res = await send(
          () => factory.readNamespacedConfigMap(name, namespace),
          describe("get", "ConfigMap", name),
        );
        return (await processor.readNamespacedConfigMapWithHttpInfo(res)).data;
      } catch (error) {
        if (error instanceof KubeError && error.status === 404) return null;
        throw error;
      }
    },
    async createConfigMap(configMap) {
      const name = configMap.metadata?.name ?? "";
      const res = await send(
        () => factory.createNamespacedConfigMap(namespace, configMap),
        describe("create", "ConfigMap", name),
      );
      return (await processor.createNamespacedConfigMapWithHttpInfo(res)).data;
    },
    async replaceConfigMap(configMap) {
      const name = configMap.metadata?.name ?? "";
      const res = await send(
        () => factory.replaceNamespacedConfigMap(name, namespace, configMap),
        describe("replace", "ConfigMap", name),
      );
      return (await processor.replaceNamespacedConfigMapWithHttpInfo(res)).data;
    },
    async listConfigMaps(labelSelector) {
      const res = await send(
        () => factory.listNamespacedConfigMap(namespace, undefined, undefined, undefined, undefined, labelSelector),
        `list ConfigMaps in "${namespace}" with labels "${labelSelector}"`,
      );
      return (await processor.listNamespacedConfigMapWithHttpInfo(res)).data.items;
    },
    async listPods(list = {}) {
      const where = list.namespace ? `in "${list.namespace}"` : "in all namespaces";
      const selectors = [
        list.labelSelector && `labels "${list.labelSelector}"`,
        list.fieldSelector && `fields "${list.fieldSelector}"`,
      ]
        .filter(Boolean).join(" and ");
      const what = `list Pods ${where}${selectors ? ` with ${selectors}` : ""}`;
      const res = list.namespace
        ? await send(
          () =>
            factory.listNamespacedPod(
              list.namespace!,
              undefined,
              undefined,
              undefined,
              list.fieldSelector,
              list.labelSelector,
            ),
          what,
        )
        : await send(
          () => factory.listPodForAllNamespaces(undefined, undefined, list.fieldSelector, list.labelSelector),
          what,
        );
      const info = list.namespace
        ? await processor.listNamespacedPodWithHttpInfo(res)
        : await processor.listPodForAllNamespacesWithHttpInfo(res);
      return info.data.items;
    },
    async getNode(name) {
      try {
        const res = await send(() => factory.readNode(name), describe("get", "Node", name));
        return (await processor.readNodeWithHttpInfo(res)).data;
      } catch (error) {
        if (error instanceof KubeError && error.status === 404) return null;
        throw error;
      }
    },
    async patchNodeStatus(name, patch) {
      const res = await send(
        () => factory.patchNodeStatus(name, patch),
        `patch status of Node "${name}"`,
        STRATEGIC,
      );
      return (await processor.patchNodeStatusWithHttpInfo(res)).data;
    },
    async createEvent(event) {
      const ns = event.metadata?.namespace ?? "default";
      const res = await send(
        () => factory.createNamespacedEvent(ns, event),
        `create Event "${event.reason}" on ${event.involvedObject?.kind} "${event.involvedObject?.name}"`,
      );
      return (await processor.createNamespacedEventWithHttpInfo(res)).data;
    },
    async patchEvent(name, ns, patch) {
      const res = await send(
        () => factory.patchNamespacedEvent(name, ns, patch),
        describe("patch", "Event", name),
        MERGE,
      );
      return (await processor.patchNamespacedEventWithHttpInfo(res)).data;
    },
    async request(method, path, { body, what }) {
      const res = await send(() => {
        const ctx = configuration.baseServer.makeRequestContext(path, method as never);
        ctx.setHeaderParam("Accept", "application/json");
        if (body !== undefined) {
          ctx.setHeaderParam("Content-Type", "application/json");
          ctx.setBody(JSON.stringify(body));
        }
        return Promise.resolve(ctx);
      }, what);
      const text = await res.body.text();
      return text ? JSON.parse(text) : null;
    },
  };
}
