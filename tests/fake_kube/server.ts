/**
 * A fake Kubernetes API server for tests: real HTTPS, bearer tokens, core v1 `configmaps`, `nodes` (+`/status`),
 * `pods` (+`/status`, and `/api/v1/pods` across namespaces), `events`, `coordination.k8s.io/v1` `leases`, the
 * custom resource `mpd.polardb.aliyun.com/v1` `mpdclusters` (+`/status`), and `authentication.k8s.io/v1`
 * `tokenreviews`. It behaves like the real server where the daemon can tell: `resourceVersion` (one counter, a
 * string; a write that changes nothing keeps it, as the real server does), 409 Conflict on a stale update, 409
 * AlreadyExists, 404 NotFound, 422 Invalid (names, ConfigMap keys and its 1048576-byte limit, Event namespaces, Lease
 * durations, a custom resource's PUT without resourceVersion), 415 for an unknown PATCH type, 400 for a bad selector
 * or body, all as `Status` objects. A resource with a status subresource keeps its status on writes of the main
 * resource, and `/status` writes change only the status. Lease times are stored as MicroTime (UTC, microseconds).
 *
 * Every collection can be watched (`?watch=true`, see `watch.ts`): from a list's `metadata.resourceVersion`, with
 * label and field selectors, bookmarks and `timeoutSeconds`; the server keeps the last `historyLimit` events, and a
 * watch from an older version gets the real 410 Expired ERROR event.
 *
 * Tokens carry audiences, as the real server's do: a token is bound to `API_AUDIENCE` unless given others; an API
 * request with a token not bound to `API_AUDIENCE` gets 401, and a TokenReview authenticates a token only for the
 * audiences it asks for (`spec.audiences`, default `API_AUDIENCE`), answering their intersection in `status.audiences`.
 * `peerToken` is the daemon's service account token bound to `polarstack-daemon` (a projected token, as the kubelet
 * mounts it): a TokenReview for that audience accepts it, the API refuses it.
 *
 * RBAC is enforced as on the real server (`rbac.ts`): by default with the Role, ClusterRole and bindings of the
 * project's `manifests/` (plus the bootstrap discovery roles), so the daemon's token (`token`) may do exactly what
 * the manifests grant and gets the real 403 Forbidden Status for anything else (a watch needs the `watch` verb).
 * `adminToken` authenticates as `system:admin` in `system:masters`, which may do anything: use it (or `put`/`get`) to
 * seed or inspect objects over HTTP. `rbac: false` turns the check off; `rbac: { objects }` uses other RBAC objects.
 *
 * In a test:
 * ```ts
 * const server = await startFakeKubeApiServer({ seed: [node] });
 * const kube = createKubeClient(server.connection(), { userAgent: "test" });
 * server.injectFault({ method: "GET", pathPrefix: "/api/v1/nodes/", count: 2, status: 503 });
 * ```
 * As its own process, see `cli.ts` (`fakeKubeApiServerCommand`) and the `/_fake/` control API in `control.ts`.
 */
import type { ClusterConnection } from "../../k8s/kube_config.ts";
import { ADMIN_USER, DEFAULT_USER, FakeTokens, type FakeUser } from "./auth.ts";
import { caCertificate, certificateFor } from "./certs.ts";
import { controlAnswer, type FakeRequest } from "./control.ts";
import { type FakeFault, FakeFaults, faultAnswer, sleep } from "./faults.ts";
import { createResourceHandlers } from "./handlers.ts";
import { BOOTSTRAP_RBAC, createRbacAuthorizer, forbiddenStatus, parseRbacYaml, requestAttributes } from "./rbac.ts";
import { type FakeResource, type KubeObject, RESOURCES } from "./resources.ts";
import { dropped, failure, json, methodNotAllowed } from "./responses.ts";
import { isWatch, parseRoute } from "./routes.ts";
import { FakeStore } from "./store.ts";
import { type FakeWatchInfo, WatchHub } from "./watch.ts";

export { ADMIN_USER, API_AUDIENCE, DEFAULT_USER } from "./auth.ts";
export type { FakeUser } from "./auth.ts";
export type { FakeRequest } from "./control.ts";
export type { FakeFault } from "./faults.ts";
export type { FakeResource, KubeObject } from "./resources.ts";
export type { FakeWatchInfo } from "./watch.ts";

/** Options of `startFakeKubeApiServer`. */
export interface FakeKubeApiServerOptions {
  /** Objects to start with (apiVersion, kind, metadata). */
  seed?: object[];
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Listen address; 127.0.0.1 by default. */
  hostname?: string;
  /** The service account's bearer token; random by default. */
  token?: string;
  /**
   * RBAC: `"manifests"` (the default) enforces the RBAC objects of the project's `manifests/*.yaml`, `{ objects }`
   * enforces those objects, `false` allows every authenticated request. The bootstrap discovery roles always apply.
   */
  rbac?: "manifests" | false | { objects: object[] };
  /** How many past events a watch may resume from; 1000 by default. */
  historyLimit?: number;
  /** How often a watch that allows bookmarks gets one, in ms; 1000 by default. */
  bookmarkIntervalMs?: number;
  /** How long a watch without `timeoutSeconds` lasts, in seconds; 1800 (the real server's minimum) by default. */
  watchTimeoutSeconds?: number;
}

/** A running fake API server. */
export interface FakeKubeApiServer {
  /** Base URL, e.g. `https://127.0.0.1:41234`. */
  readonly url: string;
  /** PEM of the CA that signed the server's certificate. */
  readonly caCert: string;
  /** A valid bearer token of the daemon's service account (`DEFAULT_USER`). */
  readonly token: string;
  /** A bearer token of `ADMIN_USER` (the superuser group, never refused by RBAC): for seeding and inspecting. */
  readonly adminToken: string;
  /** A token of `DEFAULT_USER` bound to the audience `polarstack-daemon` only (not to the API server). */
  readonly peerToken: string;
  /** A kubeconfig file (temporary) for the server, the CA and the token. */
  readonly kubeconfigPath: string;
  /** The connection for `createKubeClient`. */
  connection(): ClusterConnection;
  /** Every request so far, in order of arrival. */
  readonly requests: FakeRequest[];
  /** Empties the request log. */
  clearRequests(): void;
  /** Makes `token` authenticate as `user`. */
  addToken(token: string, user: FakeUser): void;
  /** A copy of a stored object, or undefined. */
  get(resource: FakeResource, namespace: string | undefined, name: string): KubeObject | undefined;
  /** Copies of the stored objects of a resource (of one namespace, or all). */
  list(resource: FakeResource, namespace?: string): KubeObject[];
  /** Creates or updates an object directly in the store (bumps the resourceVersion); returns the stored copy. */
  put(object: object): KubeObject;
  /** Removes an object directly from the store. */
  remove(resource: FakeResource, namespace: string | undefined, name: string): void;
  /**
   * Adds a fault for the next matching requests. It also hits the open watches it matches: a drop cuts them, a
   * status ends them with an ERROR event of that Status, a delay alone stalls them.
   */
  injectFault(fault: FakeFault): void;
  /** Drops the faults not yet used up. */
  clearFaults(): void;
  /** Forgets every past event: a watch from an earlier resourceVersion gets 410 Expired. */
  compact(): void;
  /** Ends every open watch, cleanly or (`cut`) by cutting its connection; returns how many there were. */
  dropWatches(options?: { cut?: boolean }): number;
  /** The open watches. */
  watches(): FakeWatchInfo[];
  /** Stops the server and removes its temporary files. */
  close(): Promise<void>;
}

/** An API request as the server reads it: the request, its URL, its decoded path segments and its body. */
interface Incoming {
  readonly request: Request;
  readonly url: URL;
  readonly segments: readonly string[];
  readonly text: string;
}

const MANIFESTS_DIR = new URL("../../manifests/", import.meta.url);
const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** Every object of the project's `manifests/*.yaml` (read at each start: tests may run after an edit). */
async function manifestObjects(): Promise<object[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(MANIFESTS_DIR)) {
    if (entry.isFile && /\.ya?ml$/.test(entry.name)) names.push(entry.name);
  }
  const texts = await Promise.all(names.sort().map((name) => Deno.readTextFile(new URL(name, MANIFESTS_DIR))));
  return texts.flatMap((text, i) => parseRbacYaml(text, `manifests/${names[i]}`));
}

function kubeconfigText(url: string, caCert: string, token: string): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: fake",
    "  cluster:",
    `    server: ${url}`,
    `    certificate-authority-data: ${btoa(caCert)}`,
    "users:",
    "- name: fake",
    "  user:",
    `    token: ${JSON.stringify(token)}`,
    "contexts:",
    "- name: fake",
    "  context:",
    "    cluster: fake",
    "    user: fake",
    "    namespace: kube-system",
    "current-context: fake",
    "",
  ].join("\n");
}

/** The command line that runs the fake API server as its own process, with `flags` (see `cli.ts`). */
export function fakeKubeApiServerCommand(flags: readonly string[]): string[] {
  return [Deno.execPath(), "run", "-A", new URL("./cli.ts", import.meta.url).pathname, ...flags];
}

/** The flags of a process seeded from `<dir>/seed.json` that writes `<dir>/kubeconfig`, on a free port. */
export function seededServerFlags(dir: string, options: { token?: string } = {}): string[] {
  const token = options.token === undefined ? [] : ["--token", options.token];
  return ["--port", "0", "--seed", `${dir}/seed.json`, "--kubeconfig-out", `${dir}/kubeconfig`, ...token];
}

/** Starts a fake API server on a free port (or `options.port`) and waits until it listens. */
export async function startFakeKubeApiServer(options: FakeKubeApiServerOptions = {}): Promise<FakeKubeApiServer> {
  const hostname = options.hostname ?? "127.0.0.1";
  const store = new FakeStore({ historyLimit: options.historyLimit });
  const watches = new WatchHub(store, {
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 1000,
    defaultTimeoutSeconds: options.watchTimeoutSeconds ?? 1800,
  });
  const handlers = createResourceHandlers(store);
  const tokens = new FakeTokens();
  const token = options.token ?? `fake-${crypto.randomUUID()}`;
  tokens.add(token, DEFAULT_USER);
  const adminToken = `fake-admin-${crypto.randomUUID()}`;
  tokens.add(adminToken, ADMIN_USER);
  const peerToken = `fake-peer-${crypto.randomUUID()}`;
  tokens.add(peerToken, { ...DEFAULT_USER, audiences: ["polarstack-daemon"] });
  const rbac = options.rbac ?? "manifests";
  const authorizer = rbac === false ? null : createRbacAuthorizer([
    ...BOOTSTRAP_RBAC,
    ...(rbac === "manifests" ? await manifestObjects() : rbac.objects),
  ]);
  const requests: FakeRequest[] = [];
  const faults = new FakeFaults();
  const closing = new AbortController();
  for (const object of options.seed ?? []) store.put(object);

  function injectFault(fault: FakeFault): void {
    faults.add(fault);
    watches.fault(fault);
  }

  const context = { requests, tokens, store, watches, injectFault, clearFaults: () => faults.clear() };

  function api({ request, url, segments, text }: Incoming): Response {
    const method = request.method;
    const body = { contentType: request.headers.get("content-type"), text };
    if (segments.join("/") === "apis/authentication.k8s.io/v1/tokenreviews") {
      return method === "POST" ? tokens.review(text) : methodNotAllowed();
    }
    if (segments.length === 1 && segments[0] === "version") {
      return json({ major: "1", minor: "30", gitVersion: "v1.30.0-fake", platform: "linux/amd64" });
    }
    const route = parseRoute(segments);
    if (!route) return failure(404, "the server could not find the requested resource");
    if (route.name === undefined) {
      if (method === "GET") return isWatch(url) ? watches.open(route, url) : handlers.list(route, url);
      if (method !== "POST" || (RESOURCES[route.resource].namespaced && route.namespace === undefined)) {
        return methodNotAllowed();
      }
    }
    if (method === "GET") return handlers.get(route);
    if (method === "PATCH") return handlers.patch(route, body);
    if (method === "DELETE" && !route.status) return handlers.remove(route);
    if (method === "POST") return handlers.create(route, body);
    if (method === "PUT") return handlers.replace(route, body);
    return methodNotAllowed();
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const segments = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    if (segments[0] === "_fake") {
      return tokens.holderOf(request) ? await controlAnswer(request, segments, context) : failure(401, "Unauthorized");
    }
    const text = await request.text();
    const entry: FakeRequest = {
      method: request.method,
      path: url.pathname,
      query: url.search.slice(1),
      userAgent: request.headers.get("user-agent") ?? "",
      status: 0,
      contentType: request.headers.get("content-type") ?? "",
      body: text,
      time: Date.now(),
    };
    requests.push(entry);
    const response = await answer({ request, url, segments, text });
    entry.status = response?.status ?? 0;
    return response ?? dropped();
  }

  /** The answer to an API request, or null to drop the connection. */
  async function answer(incoming: Incoming): Promise<Response | null> {
    const { request, url, segments, text } = incoming;
    const watching = request.method === "GET" && isWatch(url) && parseRoute(segments)?.name === undefined;
    const fault = faults.take(request.method, url.pathname, watching);
    if (fault?.delayMs) await sleep(fault.delayMs, closing.signal);
    if (fault?.drop) return null;
    if (fault?.status) return faultAnswer({ ...fault, status: fault.status });
    if (["healthz", "livez", "readyz"].includes(segments[0]) && segments.length === 1) {
      return new Response("ok", { headers: { "Content-Type": "text/plain; charset=utf-8" } });
    }
    const user = tokens.userOf(request);
    if (!user) return failure(401, "Unauthorized");
    if (authorizer) {
      const attributes = requestAttributes(request.method, url);
      const decision = authorizer.authorize(user, attributes);
      if (!decision.allowed) {
        const { message, details } = forbiddenStatus(user, attributes, decision.reason);
        return failure(403, message, { details });
      }
    }
    if (text.length > MAX_BODY_BYTES) return failure(413, `Request entity too large: limit is ${MAX_BODY_BYTES}`);
    return api(incoming);
  }

  const [{ cert, key }, caCert] = await Promise.all([certificateFor(hostname), caCertificate()]);
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname,
    port: options.port ?? 0,
    cert,
    key,
    signal: closing.signal,
    onListen: (addr) => listening.resolve(addr),
    onError: (error) => failure(500, `fake API server error: ${(error as Error).message}`),
  }, handle);
  const addr = await listening.promise;
  const host = hostname === "0.0.0.0" ? "127.0.0.1" : hostname === "::" ? "::1" : hostname;
  const url = `https://${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
  const dir = await Deno.makeTempDir({ prefix: "fake-kube-" });
  const kubeconfigPath = `${dir}/kubeconfig`;
  await Deno.writeTextFile(kubeconfigPath, kubeconfigText(url, caCert, token));

  return {
    url,
    caCert,
    token,
    adminToken,
    peerToken,
    kubeconfigPath,
    requests,
    connection: () => ({ server: url, caCert, token, source: `fake API server ${url}` }),
    clearRequests: () => void (requests.length = 0),
    addToken: (added, user) => tokens.add(added, user),
    get: (resource, namespace, name) => store.get(resource, namespace, name),
    list: (resource, namespace) => store.list(resource, namespace),
    put: (object) => store.put(object),
    remove: (resource, namespace, name) => void store.remove(resource, namespace, name),
    injectFault,
    clearFaults: () => faults.clear(),
    compact: () => store.compact(),
    dropWatches: (how) => watches.drop(how),
    watches: () => watches.list(),
    async close() {
      closing.abort();
      // Open watches would keep the server from finishing.
      watches.drop();
      await server.finished;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
