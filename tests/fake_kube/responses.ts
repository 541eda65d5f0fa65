/** The answers of the fake Kubernetes API server: JSON, and `Status` errors as the real server words them. */
import { type FakeResource, type KubeObject, qualifiedResource, RESOURCES } from "./resources.ts";

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

/** Options of a Status answer. */
export interface StatusOptions {
  /** The reason; the usual one of the code when absent. */
  reason?: string;
  /** The Status's `details`. */
  details?: Record<string, unknown>;
  /** Extra response headers. */
  headers?: Record<string, string>;
}

/** A JSON answer. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/** A `Status` object of a failure, as the real server sends it (in an answer or a watch's ERROR event). */
export function failureStatus(code: number, message: string, options: StatusOptions = {}): Record<string, unknown> {
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
  return body;
}

/** A Status error answer, as the real server sends it; the reason defaults to the usual one of the code. */
export function failure(code: number, message: string, options: StatusOptions = {}): Response {
  return json(failureStatus(code, message, options), code, options.headers);
}

/** The `details` of a Status about one object: its name, group (when not core) and resource. */
export function objectDetails(resource: FakeResource, name: string): Record<string, unknown> {
  const group = RESOURCES[resource].group;
  return group ? { name, group, kind: resource } : { name, kind: resource };
}

/** 404 NotFound for an object. */
export function notFound(resource: FakeResource, name: string): Response {
  return failure(404, `${qualifiedResource(resource)} "${name}" not found`, {
    details: objectDetails(resource, name),
  });
}

/** 409 Conflict for a write with a stale resourceVersion. */
export function conflict(resource: FakeResource, name: string): Response {
  return failure(
    409,
    `Operation cannot be fulfilled on ${
      qualifiedResource(resource)
    } "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { details: objectDetails(resource, name) },
  );
}

/** 405 MethodNotAllowed. */
export function methodNotAllowed(): Response {
  return failure(405, "the server does not allow this method on the requested resource");
}

/** Whether a JSON value is an object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, KubeObject> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Parses a request body as JSON, or returns the 400 answer. */
export function parseBody(text: string): { value: KubeObject } | { error: Response } {
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return { error: failure(400, `json parse error: ${(error as Error).message}`) };
  }
}

/** An answer whose body fails at once, so the connection is torn down and the client sees a network error. */
export function dropped(): Response {
  return new Response(
    new ReadableStream({
      start(controller) {
        controller.error(new Error("connection dropped by an injected fault"));
      },
    }),
    { headers: { "Content-Type": "application/json" } },
  );
}
