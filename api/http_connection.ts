/** Serving one connection: reading request heads and bodies under their timeouts, handing requests to the app. */
import { findHeadEnd } from "../core/http_framing.ts";
import { bodyLength, header, HeadError, keepsAlive, parseHead, type RequestHead, requestUrl } from "./http_head.ts";
import type { Connection } from "./http_socket.ts";
import { concat, errorResponse, writeError, writeResponse } from "./http_write.ts";

/** What the server hands each request to (the Hono app's `fetch`). */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** The timeouts and the head size limit every connection is served under. */
export interface Limits {
  /** How long a request head may take, from the connection's start or the request's first byte. */
  readonly headersTimeoutMs: number;
  /** How long a kept-alive connection may wait for its next request, and a body or a write may stall. */
  readonly idleTimeoutMs: number;
  /** The largest request head, in bytes. */
  readonly maxHeaderBytes: number;
}

/** How long a refused connection may take to send its request before it is closed. */
const REFUSE_LINGER_MS = 1000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const READ_SIZE = 2048;
const BODY_READ_SIZE = 64 * 1024;

/** Reads one request head; null when the connection ended, timed out or sent something that is not HTTP. */
async function readHead(
  connection: Connection,
  limits: Limits,
  { first }: { first: boolean },
): Promise<{ head: RequestHead; rest: Uint8Array } | HeadError | null> {
  let bytes = connection.pending;
  connection.pending = new Uint8Array(0);
  // A new connection gets the header timeout at once; a kept-alive one may idle until its next request starts.
  connection.idle = bytes.length === 0;
  connection.arm(first || bytes.length > 0 ? limits.headersTimeoutMs : limits.idleTimeoutMs);
  let searched = 0;
  for (;;) {
    const end = findHeadEnd(bytes, searched);
    if (end > limits.maxHeaderBytes || (end < 0 && bytes.length > limits.maxHeaderBytes)) {
      connection.disarm();
      return new HeadError(431, `Request head is larger than ${limits.maxHeaderBytes} bytes`);
    }
    if (end >= 0) {
      connection.disarm();
      connection.idle = false;
      try {
        return { head: parseHead(decoder.decode(bytes.subarray(0, end))), rest: bytes.subarray(end + 4) };
      } catch (error) {
        return error instanceof HeadError ? error : new HeadError(400, "Malformed request head");
      }
    }
    searched = bytes.length;
    const chunk = await connection.read(READ_SIZE);
    if (chunk === null) return null;
    if (connection.idle) {
      connection.idle = false;
      connection.arm(limits.headersTimeoutMs);
    }
    bytes = concat(bytes, chunk);
  }
}

/** The request body as a stream of exactly `length` bytes read from the connection. */
function bodyStream(
  connection: Connection,
  options: { length: number; start: Uint8Array; idleTimeoutMs: number; expectContinue: boolean },
): { stream: ReadableStream<Uint8Array>; remaining: () => number } {
  let remaining = options.length;
  let start: Uint8Array | null = options.start.subarray(0, remaining);
  connection.pending = options.start.subarray(start.length);
  let continued = !options.expectContinue;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (start && start.length > 0) {
        remaining -= start.length;
        controller.enqueue(start);
        start = null;
        if (remaining === 0) controller.close();
        return;
      }
      start = null;
      if (!continued) {
        continued = true;
        await connection.write(encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"), options.idleTimeoutMs);
      }
      connection.arm(options.idleTimeoutMs);
      const chunk = await connection.read(Math.min(remaining, BODY_READ_SIZE));
      connection.disarm();
      if (chunk === null) {
        controller.error(new Error("Connection closed before the request body was complete"));
        return;
      }
      remaining -= chunk.length;
      controller.enqueue(chunk);
      if (remaining === 0) controller.close();
    },
  });
  return { stream, remaining: () => remaining };
}

/** Serves requests on one connection until it closes, times out or the server stops. */
export async function serveConnection(
  connection: Connection,
  context: { fetch: FetchHandler; limits: Limits; stopping: () => boolean; origin: string },
): Promise<void> {
  const { limits } = context;
  for (let first = true; !connection.closed; first = false) {
    const read = await readHead(connection, limits, { first });
    if (read === null) break;
    if (read instanceof HeadError) {
      await writeError(connection, read, { version: "1.1", timeoutMs: limits.idleTimeoutMs });
      break;
    }
    const { head, rest } = read;
    let length: number;
    try {
      length = bodyLength(head);
    } catch (error) {
      await writeError(connection, error as HeadError, { version: head.version, timeoutMs: limits.idleTimeoutMs });
      break;
    }
    const url = requestUrl(head, context.origin);
    const body = length > 0 && head.method !== "GET" && head.method !== "HEAD"
      ? bodyStream(connection, {
        length,
        start: rest,
        idleTimeoutMs: limits.idleTimeoutMs,
        expectContinue: (header(head, "expect") ?? "").toLowerCase() === "100-continue",
      })
      : null;
    if (!body) connection.pending = length > 0 ? new Uint8Array(0) : rest;
    let response: Response;
    try {
      const request = new Request(url, { method: head.method, headers: head.headers, body: body?.stream });
      response = await context.fetch(request);
    } catch (error) {
      response = error instanceof TypeError
        ? errorResponse(400, `Malformed request: ${error.message}`)
        : errorResponse(500, "Internal server error");
    }
    // A body the handler did not read to the end leaves the connection in the middle of a request: close it.
    const close = !keepsAlive(head) || context.stopping() || (body !== null && body.remaining() > 0) ||
      (length > 0 && !body);
    const usable = await writeResponse(connection, response, {
      head: head.method === "HEAD",
      close,
      version: head.version,
      timeoutMs: limits.idleTimeoutMs,
    });
    if (!usable || close) break;
  }
  connection.close();
}

/** Answers a connection over the cap with 503 and closes it, reading its request for a moment so none is reset. */
export async function refuse(connection: Connection): Promise<void> {
  const error = { status: 503, message: "Too many connections: try again later" };
  await writeError(connection, error, { version: "1.1", timeoutMs: REFUSE_LINGER_MS });
  await connection.closeWrite();
  connection.arm(REFUSE_LINGER_MS);
  while (!connection.closed && await connection.read(READ_SIZE) !== null) {
    // Drain what the client sent until it closes or the linger time ends.
  }
  connection.close();
}
