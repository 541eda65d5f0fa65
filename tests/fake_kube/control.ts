/**
 * The `/_fake/` control API of the fake Kubernetes API server, for a test that runs it as its own process. Any known
 * token may call it; its requests are neither logged, nor faulted, nor subject to RBAC.
 */
import type { FakeTokens } from "./auth.ts";
import type { FakeFault } from "./faults.ts";
import { isFakeResource, RESOURCES } from "./resources.ts";
import { failure, json, notFound } from "./responses.ts";
import type { FakeStore } from "./store.ts";
import type { WatchHub } from "./watch.ts";

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

/** What the control API works on. */
export interface ControlContext {
  /** The request log. */
  readonly requests: FakeRequest[];
  /** The known tokens. */
  readonly tokens: FakeTokens;
  /** The objects. */
  readonly store: FakeStore;
  /** The open watches. */
  readonly watches: WatchHub;
  /** Adds a fault (it applies to the open watches too). */
  injectFault(fault: FakeFault): void;
  /** Drops the faults not yet used up. */
  clearFaults(): void;
}

const NO_CONTENT = 204;

/** The answer to a `/_fake/...` request (`segments` are its decoded path segments, `_fake` first). */
export async function controlAnswer(
  request: Request,
  segments: readonly string[],
  context: ControlContext,
): Promise<Response> {
  const [what, resource, ...rest] = segments.slice(1);
  const method = request.method;
  const done = () => new Response(null, { status: NO_CONTENT });
  if (what === "requests" && method === "GET") return json(context.requests);
  if (what === "requests" && method === "DELETE") {
    context.requests.length = 0;
    return done();
  }
  if (what === "faults" && method === "POST") {
    const body = await request.json();
    for (const fault of Array.isArray(body) ? body : [body]) context.injectFault(fault);
    return done();
  }
  if (what === "faults" && method === "DELETE") {
    context.clearFaults();
    return done();
  }
  if (what === "tokens" && method === "POST") {
    const { token: added, ...user } = await request.json();
    context.tokens.add(added, user);
    return done();
  }
  if (what === "compact" && method === "POST") {
    context.store.compact();
    return done();
  }
  if (what === "watches" && resource === undefined && method === "GET") return json(context.watches.list());
  if (what === "watches" && resource === "drop" && method === "POST") {
    const text = await request.text();
    const cut = text.trim() === "" ? false : JSON.parse(text)?.cut === true;
    return json({ dropped: context.watches.drop({ cut }) });
  }
  if (what === "objects" && method === "PUT" && resource === undefined) {
    const body = await request.json();
    return json((Array.isArray(body) ? body : [body]).map((o) => context.store.put(o)));
  }
  if (what === "objects" && resource !== undefined && isFakeResource(resource)) {
    const namespaced = RESOURCES[resource].namespaced;
    const [namespace, name] = namespaced ? rest : [undefined, rest[0]];
    if (method === "GET" && name === undefined) return json(context.store.list(resource, namespace));
    if (method === "GET") {
      const found = context.store.get(resource, namespace, name);
      return found ? json(found) : notFound(resource, name);
    }
    if (method === "DELETE" && name !== undefined) {
      return new Response(null, { status: context.store.remove(resource, namespace, name) ? NO_CONTENT : 404 });
    }
  }
  return failure(404, `no fake control endpoint ${method} ${segments.join("/")}`);
}
