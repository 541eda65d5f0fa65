/** The API paths of the fake Kubernetes API server, parsed to routes. */
import { type FakeResource, isFakeResource, RESOURCES } from "./resources.ts";

/** The parsed route of an API path. */
export interface Route {
  /** The resource, e.g. `configmaps`. */
  readonly resource: FakeResource;
  /** Namespace from the path; undefined for cluster-scoped resources and all-namespaces collections. */
  readonly namespace?: string;
  /** The object's name; undefined for a collection. */
  readonly name?: string;
  /** Whether the path is the object's `/status` subresource. */
  readonly status: boolean;
}

const TRUE = new Set(["1", "t", "T", "true", "TRUE", "True"]);

/**
 * The route of `/api/v1/...` or `/apis/<group>/<version>/...` (path segments, decoded), or null when the fake
 * server serves no such resource at that group, version and scope.
 */
export function parseRoute(segments: readonly string[]): Route | null {
  let group: string;
  let rest: readonly string[];
  if (segments[0] === "api" && segments[1] === "v1") {
    group = "";
    rest = segments.slice(2);
  } else if (segments[0] === "apis" && segments.length >= 4) {
    group = segments[1];
    rest = segments.slice(3);
  } else {
    return null;
  }
  const version = segments[0] === "api" ? "v1" : segments[2];
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, sub, ...extra] = rest;
  if (!resource || !isFakeResource(resource) || extra.length > 0) return null;
  const info = RESOURCES[resource];
  if (info.group !== group || info.version !== version) return null;
  if (info.namespaced !== (namespace !== undefined) && !(info.namespaced && name === undefined)) return null;
  if (sub !== undefined && (sub !== "status" || !info.hasStatus)) return null;
  return { resource, namespace, name, status: sub === "status" };
}

/** Whether a request's query asks for a watch (`watch=true`, `watch=1`, as the real server parses booleans). */
export function isWatch(url: URL): boolean {
  return TRUE.has(url.searchParams.get("watch") ?? "");
}
