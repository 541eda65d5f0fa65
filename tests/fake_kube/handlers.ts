/** The resource handlers of the fake Kubernetes API server: get, list, create, replace, patch and delete. */
import { jsonPatch, mergePatch, PatchError, strategicMergePatch } from "./patch.ts";
import { apiVersionOf, type KubeObject, kubeTime, qualifiedKind, qualifiedResource, RESOURCES } from "./resources.ts";
import { conflict, failure, isObject, json, notFound, objectDetails, parseBody } from "./responses.ts";
import type { Route } from "./routes.ts";
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from "./selectors.ts";
import type { FakeStore } from "./store.ts";
import { decodeObject, invalidMessage, validateObject } from "./validation.ts";

/** The rest of a paginated list: its snapshot's items after the page served, at its resourceVersion. */
interface ListPage {
  readonly resourceVersion: string;
  readonly items: readonly unknown[];
}

// Continue tokens kept at once; an older one gets 410 Expired, as a compacted one does on the real server.
const MAX_PAGES = 64;

const PATCH_TYPES = [
  "application/json-patch+json",
  "application/merge-patch+json",
  "application/strategic-merge-patch+json",
];

/** The body of a write: its Content-Type header (null when absent) and its text. */
export interface RequestBody {
  /** The Content-Type header. */
  readonly contentType: string | null;
  /** The body as text. */
  readonly text: string;
}

/** The handlers of one store's resources. */
export interface ResourceHandlers {
  /** GET of a collection (not a watch). */
  list(route: Route, url: URL): Response;
  /** GET of an object. */
  get(route: Route): Response;
  /** POST to a collection. */
  create(route: Route, body: RequestBody): Response;
  /** PUT of an object or its status. */
  replace(route: Route, body: RequestBody): Response;
  /** PATCH of an object or its status. */
  patch(route: Route, body: RequestBody): Response;
  /** DELETE of an object. */
  remove(route: Route): Response;
}

/** Copies the parts a write may not change (identity and, by subresource, spec or status) from the stored object. */
function guard(route: Route, existing: KubeObject, incoming: KubeObject): KubeObject {
  const result = route.status ? { ...existing, status: incoming.status } : { ...incoming };
  if (!route.status && RESOURCES[route.resource].hasStatus) {
    if (existing.status === undefined) delete result.status;
    else result.status = existing.status;
  }
  result.apiVersion = existing.apiVersion ?? apiVersionOf(route.resource);
  result.kind = RESOURCES[route.resource].kind;
  result.metadata = {
    ...(route.status ? existing.metadata : incoming.metadata),
    name: existing.metadata.name,
    uid: existing.metadata.uid,
    creationTimestamp: existing.metadata.creationTimestamp,
    resourceVersion: existing.metadata.resourceVersion,
  };
  if (existing.metadata.generation !== undefined) result.metadata.generation = existing.metadata.generation;
  if (existing.metadata.namespace !== undefined) result.metadata.namespace = existing.metadata.namespace;
  return result;
}

/** Everything but metadata and status: what a custom resource's generation counts. */
function specOf(object: KubeObject): KubeObject {
  const { metadata: _m, status: _s, ...rest } = object;
  return rest;
}

function sameObject(a: KubeObject, b: KubeObject): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(value: KubeObject): KubeObject {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
}

/** The 415 answer when a write's body is not JSON, or null. */
function unsupportedBody(contentType: string | null): Response | null {
  const type = (contentType ?? "application/json").split(";")[0].trim();
  if (/^application\/(.*\+)?json$/.test(type)) return null;
  return failure(
    415,
    `the body of the request was in an unknown format - accepted media types include: application/json`,
  );
}

/** The 400 answer when the body is not an object of the route's kind, at the route's namespace and name, or null. */
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
  const undecodable = decodeObject(info.kind, body);
  return undecodable ? failure(400, undecodable) : null;
}

/** The 422 answer for an invalid object, or null. */
function validated(route: Route, object: KubeObject): Response | null {
  const kind = RESOURCES[route.resource].kind;
  const causes = validateObject(kind, object);
  if (causes.length === 0) return null;
  const name = object.metadata?.name ?? "";
  return failure(422, invalidMessage(qualifiedKind(route.resource), name, causes), {
    details: { name, group: RESOURCES[route.resource].group, kind, causes },
  });
}

/** The handlers of the resources in `store`. */
export function createResourceHandlers(store: FakeStore): ResourceHandlers {
  const pages = new Map<string, ListPage>();
  function list(route: Route, url: URL): Response {
    const info = RESOURCES[route.resource];
    let labels, fields;
    try {
      labels = parseLabelSelector(url.searchParams.get("labelSelector") ?? "");
      fields = parseFieldSelector(url.searchParams.get("fieldSelector") ?? "", info.fields);
    } catch (error) {
      return failure(400, (error as Error).message);
    }
    const limitText = url.searchParams.get("limit");
    const limit = limitText ? Number(limitText) : 0;
    if (!Number.isInteger(limit) || limit < 0) return failure(400, `invalid limit "${limitText}"`);
    const token = url.searchParams.get("continue");
    let page: ListPage;
    if (token) {
      const next = pages.get(token);
      if (!next) {
        return failure(
          410,
          "The provided continue parameter is too old to display a consistent list result. You can start a new list " +
            "without the continue parameter.",
          { reason: "Expired" },
        );
      }
      pages.delete(token);
      page = next;
    } else {
      page = {
        resourceVersion: store.resourceVersion,
        items: store.list(route.resource, route.namespace)
          .filter((o) => matchesLabels(labels, o.metadata?.labels) && matchesFields(fields, o))
          .map(({ apiVersion: _a, kind: _k, ...rest }) => rest),
      };
    }
    // As the real server does, the pages of one list are one snapshot, at the first page's resourceVersion.
    const items = limit > 0 ? page.items.slice(0, limit) : page.items;
    const rest = page.items.slice(items.length);
    const metadata: Record<string, unknown> = { resourceVersion: page.resourceVersion };
    if (rest.length > 0) {
      const nextToken = btoa(crypto.randomUUID());
      pages.set(nextToken, { resourceVersion: page.resourceVersion, items: rest });
      for (const old of pages.keys()) if (pages.size > MAX_PAGES) pages.delete(old);
      metadata.continue = nextToken;
      metadata.remainingItemCount = rest.length;
    }
    return json({ kind: `${info.kind}List`, apiVersion: apiVersionOf(route.resource), metadata, items });
  }

  function get(route: Route): Response {
    const found = store.get(route.resource, route.namespace, route.name!);
    return found ? json(found) : notFound(route.resource, route.name!);
  }

  function createObject(route: Route, body: KubeObject): Response {
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
      apiVersion: apiVersionOf(route.resource),
      kind: info.kind,
      metadata: { ...metadata, uid: crypto.randomUUID(), creationTimestamp: kubeTime() },
    };
    if (info.custom) object.metadata.generation = 1;
    // A custom resource with a status subresource starts without status, as the real server creates it.
    if (info.custom && info.hasStatus) delete object.status;
    const invalid = validated(route, object);
    if (invalid) return invalid;
    if (store.get(route.resource, route.namespace, metadata.name)) {
      return failure(409, `${qualifiedResource(route.resource)} "${metadata.name}" already exists`, {
        reason: "AlreadyExists",
        details: objectDetails(route.resource, metadata.name),
      });
    }
    return json(store.write(route.resource, object), 201);
  }

  function create(route: Route, { contentType, text }: RequestBody): Response {
    const unsupported = unsupportedBody(contentType);
    if (unsupported) return unsupported;
    const parsed = parseBody(text);
    if ("error" in parsed) return parsed.error;
    return checkIncoming(route, parsed.value) ?? createObject(route, parsed.value);
  }

  /** Stores an updated object unless it is stale, invalid or unchanged. */
  function update(
    route: Route,
    { existing, next, precondition }: { existing: KubeObject; next: KubeObject; precondition: unknown },
  ): Response {
    const name = existing.metadata.name;
    if (precondition && precondition !== existing.metadata.resourceVersion) return conflict(route.resource, name);
    const invalid = validated(route, next);
    if (invalid) return invalid;
    if (sameObject(next, existing)) return json(existing);
    if (RESOURCES[route.resource].custom && !sameObject(specOf(next), specOf(existing))) {
      next.metadata.generation = (existing.metadata.generation ?? 0) + 1;
    }
    return json(store.write(route.resource, next));
  }

  function replace(route: Route, { contentType, text }: RequestBody): Response {
    const unsupported = unsupportedBody(contentType);
    if (unsupported) return unsupported;
    const parsed = parseBody(text);
    if ("error" in parsed) return parsed.error;
    const body = parsed.value;
    const bad = checkIncoming(route, body);
    if (bad) return bad;
    const existing = store.get(route.resource, route.namespace, route.name!);
    if (!existing) {
      // Events may be created by PUT on the real server; the others answer 404.
      if (route.resource === "events") {
        return createObject(route, {
          ...body,
          metadata: { ...body.metadata, name: route.name, resourceVersion: undefined },
        });
      }
      return notFound(route.resource, route.name!);
    }
    const info = RESOURCES[route.resource];
    if (info.custom && !body.metadata.resourceVersion) {
      // Custom resources allow no unconditional update.
      return failure(
        422,
        `${
          qualifiedKind(route.resource)
        } "${route.name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`,
        {
          details: {
            name: route.name,
            group: info.group,
            kind: info.kind,
            causes: [{
              reason: "FieldValueInvalid",
              message: "Invalid value: 0x0: must be specified for an update",
              field: "metadata.resourceVersion",
            }],
          },
        },
      );
    }
    return update(route, { existing, next: guard(route, existing, body), precondition: body.metadata.resourceVersion });
  }

  function patch(route: Route, { contentType, text }: RequestBody): Response {
    const type = (contentType ?? "").split(";")[0].trim().toLowerCase();
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
    const undecodable = decodeObject(RESOURCES[route.resource].kind, patched);
    if (undecodable) return failure(400, undecodable);
    return update(route, {
      existing,
      next: guard(route, existing, patched),
      precondition: patched.metadata.resourceVersion,
    });
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
      details: { ...objectDetails(route.resource, route.name!), uid: removed.metadata.uid },
    });
  }

  return { list, get, create, replace, patch, remove };
}
