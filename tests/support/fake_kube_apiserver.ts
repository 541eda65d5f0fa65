/**
 * A fake Kubernetes API server for tests: real HTTPS, bearer tokens, core v1 `configmaps`, `nodes` (+`/status`),
 * `pods` (+`/status`, and `/api/v1/pods` across namespaces), `events`, and `authentication.k8s.io/v1`
 * `tokenreviews`. It behaves like the real server where the daemon can tell: `resourceVersion` (one counter, a
 * string; a write that changes nothing keeps it, as the real server does), 409 Conflict on a stale update, 409
 * AlreadyExists, 404 NotFound, 422 Invalid (names, ConfigMap keys and its 1048576-byte limit, Event namespaces),
 * 415 for an unknown PATCH type, 400 for a bad selector or body, all as `Status` objects. Watch is not served.
 *
 * Tokens carry audiences, as the real server's do: a token is bound to `API_AUDIENCE` unless given others; an API
 * request with a token not bound to `API_AUDIENCE` gets 401, and a TokenReview authenticates a token only for the
 * audiences it asks for (`spec.audiences`, default `API_AUDIENCE`), answering their intersection in `status.audiences`.
 * `peerToken` is the daemon's service account token bound to `polarstack-daemon` (a projected token, as the kubelet
 * mounts it): a TokenReview for that audience accepts it, the API refuses it.
 *
 * RBAC is enforced as on the real server (`fake_kube_rbac.ts`): by default with the Role, ClusterRole and bindings
 * of the project's `manifests/` (plus the bootstrap discovery roles), so the daemon's token (`token`) may do exactly
 * what the manifests grant and gets the real 403 Forbidden Status for anything else. `adminToken` authenticates as
 * `system:admin` in `system:masters`, which may do anything: use it (or `put`/`get`) to seed or inspect objects
 * over HTTP. `rbac: false` turns the check off; `rbac: { objects }` uses other RBAC objects.
 *
 * In a test:
 * ```ts
 * const server = await startFakeKubeApiServer({ seed: [node] });
 * const kube = createKubeClient(server.connection(), { userAgent: "test" });
 * server.injectFault({ method: "GET", pathPrefix: "/api/v1/nodes/", count: 2, status: 503 });
 * ```
 *
 * As its own process (prints `listening on https://127.0.0.1:PORT` when ready, stops on SIGTERM or SIGINT):
 * `deno run -A tests/support/fake_kube_apiserver.ts --port 0 --seed FILE --kubeconfig-out FILE
 * [--hostname ADDR] [--token TOKEN] [--rbac manifests|off]`. Such a process is controlled over HTTPS with the same
 * bearer token:
 * - `GET /_fake/requests` (the request log as JSON), `DELETE /_fake/requests` (clears it);
 * - `POST /_fake/faults` (a fault or a list of faults, as `injectFault` takes), `DELETE /_fake/faults`;
 * - `POST /_fake/tokens` (`{"token", "username", "groups", "audiences"}`, as `addToken`);
 * - `GET /_fake/objects/<resource>[/<namespace>][/<name>]` (an object, or a list when the name is left out),
 *   `PUT /_fake/objects` (an object or a list, stored as `put` does), `DELETE /_fake/objects/<resource>[/<namespace>]/<name>`.
 * `/_fake/` requests are neither logged, nor faulted, nor subject to RBAC (any known token will do). Any listen
 * address other than loopback gets a certificate signed by the same CA at start (needs `openssl`); loopback uses the
 * pre-made one in `certs/`.
 */
import { parseArgs } from "node:util";
import type { ClusterConnection } from "../../k8s/kube_config.ts";
import { jsonPatch, mergePatch, PatchError, strategicMergePatch } from "./fake_kube_patch.ts";
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from "./fake_kube_selectors.ts";
import {
  type FakeResource,
  FakeStore,
  isFakeResource,
  type KubeObject,
  kubeTime,
  RESOURCES,
} from "./fake_kube_store.ts";
import {
  BOOTSTRAP_RBAC,
  createRbacAuthorizer,
  forbiddenStatus,
  parseRbacYaml,
  requestAttributes,
} from "./fake_kube_rbac.ts";
import { invalidMessage, validateObject } from "./fake_kube_validation.ts";

export type { FakeResource } from "./fake_kube_store.ts";

/** Who a bearer token authenticates as. */
export interface FakeUser {
  /** e.g. `system:serviceaccount:kube-system:polarstack-daemon`. */
  readonly username: string;
  /** e.g. `system:authenticated`. */
  readonly groups: readonly string[];
  /** The user's uid (TokenReview reports it). */
  readonly uid?: string;
  /** The audiences the token is bound to; `[API_AUDIENCE]` when absent. */
  readonly audiences?: readonly string[];
}

/** One request the server received (not `/_fake/` ones). */
export interface FakeRequest {
  /** HTTP method. */
  method: string;
  /** URL path, e.g. `/api/v1/namespaces/kube-system/configmaps/x`. */
  path: string;
  /** Raw query string without `?`. */
  query: string;
  /** The User-Agent header. */
  userAgent: string;
  /** The answer's status; 0 for a dropped connection (or until answered). */
  status: number;
  /** The Content-Type header. */
  contentType: string;
  /** The request body as text. */
  body: string;
  /** When it arrived, in ms since the epoch. */
  time: number;
}

/** A fault for the next `count` requests whose method and path match. */
export interface FakeFault {
  /** HTTP method; any when absent. */
  method?: string;
  /** The path must start with this. */
  pathPrefix: string;
  /** How many matching requests get the fault. */
  count: number;
  /** Answer with this status (and a Status body) instead of handling the request. */
  status?: number;
  /** Wait this long before answering (or handling the request normally, if no status or drop is given). */
  delayMs?: number;
  /** Close the connection without a usable answer. */
  drop?: boolean;
  /** Seconds for a `Retry-After` header on the fault's answer. */
  retryAfter?: number;
}

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
  /** Adds a fault for the next matching requests. */
  injectFault(fault: FakeFault): void;
  /** Drops the faults not yet used up. */
  clearFaults(): void;
  /** Stops the server and removes its temporary files. */
  close(): Promise<void>;
}

/** The audience of the API server's own tokens: the real server's default, its service account issuer. */
export const API_AUDIENCE = "https://kubernetes.default.svc.cluster.local";

/** The user of the default token: the service account the daemon runs as. */
export const DEFAULT_USER: FakeUser = {
  username: "system:serviceaccount:kube-system:polarstack-daemon",
  groups: ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
  uid: "6a3c2d0e-0000-4000-8000-00000000cc11",
};

/** The user of the admin token: in the real server's superuser group `system:masters`. */
export const ADMIN_USER: FakeUser = {
  username: "system:admin",
  groups: ["system:masters", "system:authenticated"],
  uid: "6a3c2d0e-0000-4000-8000-0000000ad111",
};

const MANIFESTS_DIR = new URL("../../manifests/", import.meta.url);
const CERTS_DIR = `${import.meta.dirname}/certs`;
const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost", "0.0.0.0", "::"]);
const MAX_BODY_BYTES = 3 * 1024 * 1024;
const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "Conflict",
  410: "Expired",
  413: "RequestEntityTooLarge",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};
const PATCH_TYPES = [
  "application/json-patch+json",
  "application/merge-patch+json",
  "application/strategic-merge-patch+json",
];

const certificates = new Map<string, Promise<{ cert: string; key: string }>>();

/** The server certificate for a listen address: the pre-made loopback one, or one signed now (cached per process). */
function certificateFor(hostname: string): Promise<{ cert: string; key: string }> {
  const host = LOOPBACK.has(hostname) ? "127.0.0.1" : hostname;
  let found = certificates.get(host);
  if (!found) {
    found = host === "127.0.0.1"
      ? Promise.all([
        Deno.readTextFile(`${CERTS_DIR}/server.pem`),
        Deno.readTextFile(`${CERTS_DIR}/server-key.pem`),
      ]).then(([cert, key]) => ({ cert, key }))
      : signCertificate(host);
    certificates.set(host, found);
  }
  return found;
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`Cannot run openssl ${args[0]}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

async function signCertificate(host: string): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "fake-kube-cert-" });
  try {
    const isIp = /^[0-9.]+$/.test(host) || host.includes(":");
    await Deno.writeTextFile(
      `${dir}/ext.cnf`,
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        `subjectAltName=${isIp ? "IP" : "DNS"}:${host}`,
      ].join("\n") + "\n",
    );
    await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${dir}/key.pem`]);
    await openssl(["req", "-new", "-key", `${dir}/key.pem`, "-subj", "/CN=fake-kube-apiserver", "-out", `${dir}/csr`]);
    const serial = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0"));
    await openssl([
      "x509",
      "-req",
      "-in",
      `${dir}/csr`,
      "-CA",
      `${CERTS_DIR}/ca.pem`,
      "-CAkey",
      `${CERTS_DIR}/ca-key.pem`,
      "-set_serial",
      `0x${serial.join("")}`,
      "-days",
      "3650",
      "-extfile",
      `${dir}/ext.cnf`,
      "-out",
      `${dir}/cert.pem`,
    ]);
    return { cert: await Deno.readTextFile(`${dir}/cert.pem`), key: await Deno.readTextFile(`${dir}/key.pem`) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every object of the project's `manifests/*.yaml` (read at each start: tests may run after an edit). */
async function manifestObjects(): Promise<object[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(MANIFESTS_DIR)) {
    if (entry.isFile && /\.ya?ml$/.test(entry.name)) names.push(entry.name);
  }
  const texts = await Promise.all(names.sort().map((name) => Deno.readTextFile(new URL(name, MANIFESTS_DIR))));
  return texts.flatMap((text, i) => parseRbacYaml(text, `manifests/${names[i]}`));
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/** A Status error answer, as the real server sends it; the reason defaults to the usual one of the code. */
function failure(
  code: number,
  message: string,
  options: { reason?: string; details?: Record<string, unknown>; headers?: Record<string, string> } = {},
): Response {
  const body: Record<string, unknown> = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason: options.reason ?? REASONS[code] ?? "",
  };
  if (options.details) body.details = options.details;
  body.code = code;
  return json(body, code, options.headers);
}

function notFound(resource: string, name: string): Response {
  return failure(404, `${resource} "${name}" not found`, { details: { name, kind: resource } });
}

function conflict(resource: string, name: string): Response {
  return failure(
    409,
    `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { details: { name, kind: resource } },
  );
}

function methodNotAllowed(): Response {
  return failure(405, "the server does not allow this method on the requested resource");
}

function isObject(value: unknown): value is Record<string, KubeObject> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Parses a request body as JSON, or returns the 400 answer. */
function parseBody(text: string): { value: KubeObject } | { error: Response } {
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return { error: failure(400, `json parse error: ${(error as Error).message}`) };
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** An answer whose body fails at once, so the connection is torn down and the client sees a network error. */
function dropped(): Response {
  return new Response(
    new ReadableStream({
      start(controller) {
        controller.error(new Error("connection dropped by an injected fault"));
      },
    }),
    { headers: { "Content-Type": "application/json" } },
  );
}

/** The parsed route of an API path. */
interface Route {
  resource: FakeResource;
  /** Namespace from the path; undefined for cluster-scoped resources and all-namespaces lists. */
  namespace?: string;
  name?: string;
  status: boolean;
}

function parseRoute(segments: string[]): Route | null {
  if (segments[0] !== "api" || segments[1] !== "v1") return null;
  let rest = segments.slice(2);
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, sub, ...extra] = rest;
  if (!resource || !isFakeResource(resource) || extra.length > 0) return null;
  const info = RESOURCES[resource];
  if (info.namespaced !== (namespace !== undefined) && !(info.namespaced && name === undefined)) return null;
  if (sub !== undefined && (sub !== "status" || !info.hasStatus)) return null;
  return { resource, namespace, name, status: sub === "status" };
}

/** Copies the parts a write may not change (identity and, by subresource, spec or status) from the stored object. */
function guard(route: Route, existing: KubeObject, incoming: KubeObject): KubeObject {
  const result = route.status ? { ...existing, status: incoming.status } : { ...incoming };
  if (!route.status && RESOURCES[route.resource].hasStatus) {
    if (existing.status === undefined) delete result.status;
    else result.status = existing.status;
  }
  result.apiVersion = existing.apiVersion ?? "v1";
  result.kind = RESOURCES[route.resource].kind;
  result.metadata = {
    ...(route.status ? existing.metadata : incoming.metadata),
    name: existing.metadata.name,
    uid: existing.metadata.uid,
    creationTimestamp: existing.metadata.creationTimestamp,
    resourceVersion: existing.metadata.resourceVersion,
  };
  if (existing.metadata.namespace !== undefined) result.metadata.namespace = existing.metadata.namespace;
  return result;
}

function sameObject(a: KubeObject, b: KubeObject): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(value: KubeObject): KubeObject {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
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

/** The command line that runs the fake API server as its own process, with `flags` (see the module doc). */
export function fakeKubeApiServerCommand(flags: readonly string[]): string[] {
  return [Deno.execPath(), "run", "-A", new URL(import.meta.url).pathname, ...flags];
}

/** Starts a fake API server on a free port (or `options.port`) and waits until it listens. */
export async function startFakeKubeApiServer(options: FakeKubeApiServerOptions = {}): Promise<FakeKubeApiServer> {
  const hostname = options.hostname ?? "127.0.0.1";
  const store = new FakeStore();
  const tokens = new Map<string, FakeUser>();
  const token = options.token ?? `fake-${crypto.randomUUID()}`;
  tokens.set(token, DEFAULT_USER);
  const adminToken = `fake-admin-${crypto.randomUUID()}`;
  tokens.set(adminToken, ADMIN_USER);
  const peerToken = `fake-peer-${crypto.randomUUID()}`;
  tokens.set(peerToken, { ...DEFAULT_USER, audiences: ["polarstack-daemon"] });
  const rbac = options.rbac ?? "manifests";
  const authorizer = rbac === false ? null : createRbacAuthorizer([
    ...BOOTSTRAP_RBAC,
    ...(rbac === "manifests" ? await manifestObjects() : rbac.objects),
  ]);
  const requests: FakeRequest[] = [];
  let faults: FakeFault[] = [];
  const closing = new AbortController();
  for (const object of options.seed ?? []) store.put(object);

  function takeFault(method: string, path: string): FakeFault | undefined {
    const fault = faults.find((f) =>
      f.count > 0 && path.startsWith(f.pathPrefix) && (!f.method || f.method.toUpperCase() === method)
    );
    if (fault) {
      fault.count--;
      faults = faults.filter((f) => f.count > 0);
    }
    return fault;
  }

  /** The user of the request's token (any audience: `/_fake/` requests). */
  function holderOf(request: Request): FakeUser | undefined {
    const header = request.headers.get("authorization") ?? "";
    const match = header.match(/^Bearer\s+(.+)$/i);
    return match ? tokens.get(match[1].trim()) : undefined;
  }

  /** The user of the request's token when it is bound to the API server, as the real authenticator decides. */
  function userOf(request: Request): FakeUser | undefined {
    const user = holderOf(request);
    return user && (user.audiences ?? [API_AUDIENCE]).includes(API_AUDIENCE) ? user : undefined;
  }

  function listAnswer(route: Route, url: URL): Response {
    if (url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1") {
      return failure(400, "watch is not served by the fake API server");
    }
    const info = RESOURCES[route.resource];
    let labels, fields;
    try {
      labels = parseLabelSelector(url.searchParams.get("labelSelector") ?? "");
      fields = parseFieldSelector(url.searchParams.get("fieldSelector") ?? "", info.fields);
    } catch (error) {
      return failure(400, (error as Error).message);
    }
    const items = store.list(route.resource, route.namespace)
      .filter((o) => matchesLabels(labels, o.metadata?.labels) && matchesFields(fields, o))
      .map(({ apiVersion: _a, kind: _k, ...rest }) => rest);
    return json({
      kind: `${info.kind}List`,
      apiVersion: "v1",
      metadata: { resourceVersion: store.resourceVersion },
      items,
    });
  }

  function validated(route: Route, object: KubeObject): Response | null {
    const kind = RESOURCES[route.resource].kind;
    const causes = validateObject(kind, object);
    if (causes.length === 0) return null;
    const name = object.metadata?.name ?? "";
    return failure(422, invalidMessage(kind, name, causes), { details: { name, group: "", kind, causes } });
  }

  function checkIncoming(route: Route, body: KubeObject): Response | null {
    const info = RESOURCES[route.resource];
    if (!isObject(body)) return failure(400, `the body of the request is not a ${info.kind} object`);
    if (body.kind !== undefined && body.kind !== info.kind) {
      return failure(400, `the kind of the object (${body.kind}) does not match the request (${info.kind})`);
    }
    body.metadata ??= {};
    if (!isObject(body.metadata)) return failure(400, "metadata must be an object");
    const ns = body.metadata.namespace;
    if (route.namespace !== undefined && ns !== undefined && ns !== "" && ns !== route.namespace) {
      return failure(400, "the namespace of the provided object does not match the namespace sent on the request");
    }
    if (route.name !== undefined && body.metadata.name !== undefined && body.metadata.name !== route.name) {
      return failure(
        400,
        `the name of the object (${body.metadata.name}) does not match the name on the URL (${route.name})`,
      );
    }
    return null;
  }

  function create(route: Route, body: KubeObject): Response {
    const bad = checkIncoming(route, body);
    if (bad) return bad;
    const info = RESOURCES[route.resource];
    const metadata = body.metadata;
    if (!metadata.name && metadata.generateName) {
      metadata.name = `${metadata.generateName}${crypto.randomUUID().replaceAll("-", "").slice(0, 5)}`;
    }
    if (metadata.resourceVersion) {
      return failure(500, "resourceVersion should not be set on objects to be created");
    }
    if (info.namespaced) metadata.namespace = route.namespace;
    else delete metadata.namespace;
    const object = {
      ...body,
      apiVersion: "v1",
      kind: info.kind,
      metadata: { ...metadata, uid: crypto.randomUUID(), creationTimestamp: kubeTime() },
    };
    const invalid = validated(route, object);
    if (invalid) return invalid;
    if (store.get(route.resource, route.namespace, metadata.name)) {
      return failure(409, `${route.resource} "${metadata.name}" already exists`, {
        reason: "AlreadyExists",
        details: { name: metadata.name, kind: route.resource },
      });
    }
    return json(store.write(route.resource, object), 201);
  }

  /** Stores an updated object unless it is stale, invalid or unchanged. */
  function update(route: Route, existing: KubeObject, next: KubeObject, precondition: unknown): Response {
    const name = existing.metadata.name;
    if (precondition && precondition !== existing.metadata.resourceVersion) return conflict(route.resource, name);
    const invalid = validated(route, next);
    if (invalid) return invalid;
    if (sameObject(next, existing)) return json(existing);
    return json(store.write(route.resource, next));
  }

  function replace(route: Route, body: KubeObject): Response {
    const bad = checkIncoming(route, body);
    if (bad) return bad;
    const existing = store.get(route.resource, route.namespace, route.name!);
    if (!existing) {
      // Events may be created by PUT on the real server; the others answer 404.
      if (route.resource === "events") {
        return create(route, { ...body, metadata: { ...body.metadata, name: route.name, resourceVersion: undefined } });
      }
      return notFound(route.resource, route.name!);
    }
    return update(route, existing, guard(route, existing, body), body.metadata.resourceVersion);
  }

  function patch(route: Route, request: Request, text: string): Response {
    const type = (request.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (!PATCH_TYPES.includes(type)) {
      return failure(
        415,
        `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES.join(", ")}`,
      );
    }
    const parsed = parseBody(text);
    if ("error" in parsed) return parsed.error;
    const existing = store.get(route.resource, route.namespace, route.name!);
    if (!existing) return notFound(route.resource, route.name!);
    let patched: KubeObject;
    try {
      if (type === "application/json-patch+json") patched = jsonPatch(existing, parsed.value);
      else if (!isObject(parsed.value)) return failure(400, "a merge patch must be a JSON object");
      else if (type === "application/merge-patch+json") patched = mergePatch(existing, parsed.value);
      else patched = strategicMergePatch(existing, parsed.value);
    } catch (error) {
      if (error instanceof PatchError) return failure(error.code, error.message);
      throw error;
    }
    if (!isObject(patched) || !isObject(patched.metadata)) {
      return failure(422, "the patch removed the object's metadata");
    }
    if (patched.metadata.name !== existing.metadata.name) {
      return failure(
        400,
        `the name of the object (${patched.metadata.name}) does not match the name on the URL (${route.name})`,
      );
    }
    return update(route, existing, guard(route, existing, patched), patched.metadata.resourceVersion);
  }

  function remove(route: Route): Response {
    const removed = store.remove(route.resource, route.namespace, route.name!);
    if (!removed) return notFound(route.resource, route.name!);
    if (route.resource === "pods") return json(removed);
    return json({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Success",
      details: { name: route.name, kind: route.resource, uid: removed.metadata.uid },
    });
  }

  function tokenReview(text: string): Response {
    const parsed = parseBody(text);
    if ("error" in parsed) return parsed.error;
    const review = parsed.value;
    if (!isObject(review) || !isObject(review.spec) || typeof review.spec.token !== "string") {
      return failure(400, "a TokenReview needs spec.token");
    }
    const asked = review.spec.audiences;
    if (asked !== undefined && (!Array.isArray(asked) || asked.some((a) => typeof a !== "string"))) {
      return failure(400, "spec.audiences must be a list of strings");
    }
    const wanted: string[] = Array.isArray(asked) && asked.length > 0 ? asked : [API_AUDIENCE];
    const user = tokens.get(review.spec.token);
    const bound = user?.audiences ?? [API_AUDIENCE];
    const common = wanted.filter((a) => bound.includes(a));
    let status;
    if (!user) {
      status = { authenticated: false, user: {}, error: "invalid bearer token" };
    } else if (common.length === 0) {
      status = {
        authenticated: false,
        user: {},
        error: `[invalid bearer token, token audiences ${JSON.stringify(bound)} is invalid for the target audiences ${
          JSON.stringify(wanted)
        }]`,
      };
    } else {
      status = {
        authenticated: true,
        user: { username: user.username, uid: user.uid ?? "", groups: [...user.groups] },
        audiences: common,
      };
    }
    return json({
      kind: "TokenReview",
      apiVersion: "authentication.k8s.io/v1",
      metadata: { creationTimestamp: null },
      spec: review.spec,
      status,
    }, 201);
  }

  function api(request: Request, url: URL, segments: string[], text: string): Response {
    const method = request.method;
    if (segments.join("/") === "apis/authentication.k8s.io/v1/tokenreviews") {
      return method === "POST" ? tokenReview(text) : methodNotAllowed();
    }
    if (segments.length === 1 && segments[0] === "version") {
      return json({ major: "1", minor: "30", gitVersion: "v1.30.0-fake", platform: "linux/amd64" });
    }
    const route = parseRoute(segments);
    if (!route) return failure(404, "the server could not find the requested resource");
    if (route.name === undefined) {
      if (method === "GET") return listAnswer(route, url);
      if (method !== "POST" || (RESOURCES[route.resource].namespaced && route.namespace === undefined)) {
        return methodNotAllowed();
      }
    }
    if (method === "GET") {
      const found = store.get(route.resource, route.namespace, route.name!);
      return found ? json(found) : notFound(route.resource, route.name!);
    }
    if (method === "PATCH") return patch(route, request, text);
    if (method === "DELETE" && !route.status) return remove(route);
    if (method !== "POST" && method !== "PUT") return methodNotAllowed();
    const type = (request.headers.get("content-type") ?? "application/json").split(";")[0].trim();
    if (!/^application\/(.*\+)?json$/.test(type)) {
      return failure(
        415,
        `the body of the request was in an unknown format - accepted media types include: application/json`,
      );
    }
    const parsed = parseBody(text);
    if ("error" in parsed) return parsed.error;
    return method === "POST" ? create(route, parsed.value) : replace(route, parsed.value);
  }

  async function control(request: Request, segments: string[]): Promise<Response> {
    const [what, resource, ...rest] = segments.slice(1);
    const method = request.method;
    if (what === "requests" && method === "GET") return json(requests);
    if (what === "requests" && method === "DELETE") {
      requests.length = 0;
      return new Response(null, { status: 204 });
    }
    if (what === "faults" && method === "POST") {
      const body = await request.json();
      for (const fault of Array.isArray(body) ? body : [body]) faults.push({ ...fault });
      return new Response(null, { status: 204 });
    }
    if (what === "faults" && method === "DELETE") {
      faults = [];
      return new Response(null, { status: 204 });
    }
    if (what === "tokens" && method === "POST") {
      const { token: added, ...user } = await request.json();
      tokens.set(added, user);
      return new Response(null, { status: 204 });
    }
    if (what === "objects" && method === "PUT" && resource === undefined) {
      const body = await request.json();
      return json((Array.isArray(body) ? body : [body]).map((o) => store.put(o)));
    }
    if (what === "objects" && resource !== undefined && isFakeResource(resource)) {
      const namespaced = RESOURCES[resource].namespaced;
      const [namespace, name] = namespaced ? rest : [undefined, rest[0]];
      if (method === "GET" && name === undefined) return json(store.list(resource, namespace));
      if (method === "GET") {
        const found = store.get(resource, namespace, name);
        return found ? json(found) : notFound(resource, name);
      }
      if (method === "DELETE" && name !== undefined) {
        return new Response(null, { status: store.remove(resource, namespace, name) ? 204 : 404 });
      }
    }
    return failure(404, `no fake control endpoint ${method} ${segments.join("/")}`);
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const segments = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    if (segments[0] === "_fake") {
      return holderOf(request) ? await control(request, segments) : failure(401, "Unauthorized");
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
    const response = await answer(request, url, segments, text);
    entry.status = response?.status ?? 0;
    return response ?? dropped();
  }

  /** The answer to an API request, or null to drop the connection. */
  async function answer(request: Request, url: URL, segments: string[], text: string): Promise<Response | null> {
    const fault = takeFault(request.method, url.pathname);
    if (fault?.delayMs) await sleep(fault.delayMs, closing.signal);
    if (fault?.drop) return null;
    if (fault?.status) {
      if (fault.retryAfter === undefined) return failure(fault.status, `injected fault: ${fault.status}`);
      return failure(fault.status, `injected fault: ${fault.status}`, {
        details: { retryAfterSeconds: fault.retryAfter },
        headers: { "Retry-After": String(fault.retryAfter) },
      });
    }
    if (["healthz", "livez", "readyz"].includes(segments[0]) && segments.length === 1) {
      return new Response("ok", { headers: { "Content-Type": "text/plain; charset=utf-8" } });
    }
    const user = userOf(request);
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
    return api(request, url, segments, text);
  }

  const [{ cert, key }, caCert] = await Promise.all([
    certificateFor(hostname),
    Deno.readTextFile(`${CERTS_DIR}/ca.pem`),
  ]);
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
    addToken: (added, user) => void tokens.set(added, user),
    get: (resource, namespace, name) => store.get(resource, namespace, name),
    list: (resource, namespace) => store.list(resource, namespace),
    put: (object) => store.put(object),
    remove: (resource, namespace, name) => void store.remove(resource, namespace, name),
    injectFault: (fault) => void faults.push({ ...fault }),
    clearFaults: () => void (faults = []),
    async close() {
      closing.abort();
      await server.finished;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string", default: "0" },
      hostname: { type: "string", default: "127.0.0.1" },
      seed: { type: "string" },
      "kubeconfig-out": { type: "string" },
      token: { type: "string" },
      rbac: { type: "string", default: "manifests" },
    },
  });
  if (values.rbac !== "manifests" && values.rbac !== "off") {
    throw new Error(`Invalid --rbac "${values.rbac}": must be manifests or off`);
  }
  const seed = values.seed ? JSON.parse(await Deno.readTextFile(values.seed)) : [];
  if (!Array.isArray(seed)) throw new Error(`Seed file "${values.seed}" must hold a JSON array of objects`);
  const server = await startFakeKubeApiServer({
    port: Number(values.port),
    hostname: values.hostname,
    seed,
    token: values.token,
    rbac: values.rbac === "off" ? false : "manifests",
  });
  if (values["kubeconfig-out"]) await Deno.copyFile(server.kubeconfigPath, values["kubeconfig-out"]);
  const stop = async () => {
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  console.log(`listening on ${server.url}`);
}

if (import.meta.main) await main(Deno.args);
