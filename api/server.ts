/**
 * The HTTP/1.1 listener around the app's `fetch`: header and idle timeouts, a connection cap answered with 503, an
 * accept loop that outlives "Too many open files", both IP stacks, and memory handed back after a burst. `Deno.serve`
 * has none of these knobs and its accept loop dies on EMFILE, so the daemon serves through this small server over
 * `Deno.listen` instead.
 */
import type { Logger } from "../core/types.ts";

/** What the server hands each request to (the Hono app's `fetch`). */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** Options of {@linkcode serveApp}. */
export interface ServeOptions {
  /** TCP port; 0 picks a free one. */
  readonly port: number;
  /** Listen only on this address; by default on `::` (both stacks), or `0.0.0.0` where IPv6 is off. */
  readonly hostname?: string;
  /** Close a connection whose request head is not complete this long after it was accepted or began. */
  readonly headersTimeoutMs?: number;
  /** Close a keep-alive connection that sends nothing this long after a response; also the limit on a stalled body. */
  readonly idleTimeoutMs?: number;
  /** Connections served at once; more are answered 503 and closed (64 at a time; the rest wait to be accepted). */
  readonly maxConnections?: number;
  /** The largest request head, in bytes (431 above). */
  readonly maxHeaderBytes?: number;
  /** Where accept failures are logged. */
  readonly log?: Logger;
}

/** A running server. */
export interface AppServer {
  /** The port it listens on. */
  readonly port: number;
  /** The addresses it listens on, e.g. `["::"]` or `["0.0.0.0"]`. */
  readonly hostnames: readonly string[];
  /** Connections open now (served and being refused). */
  connections(): number;
  /** Stops accepting, closes idle connections, lets requests in flight finish (up to `graceMs`, default 5 s). */
  shutdown(options?: { graceMs?: number }): Promise<void>;
}

/** Defaults of {@linkcode ServeOptions}. */
export const SERVER_DEFAULTS = {
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  maxConnections: 1024,
  maxHeaderBytes: 32 * 1024,
} as const;

/** File descriptors kept for everything else the process opens (cluster client, image store, log walk, commands). */
const RESERVED_FDS = 256;

/** Refused connections kept open at once to deliver their 503; beyond that new ones wait in the kernel's backlog. */
const MAX_REFUSING = 64;

/** Open connections that make a burst: once they fall back to an eighth of their peak, V8 collects its garbage. */
const BURST_CONNECTIONS = 256;

/** How long a refused connection may take to send its request before it is closed. */
const REFUSE_LINGER_MS = 1000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HOST = /^[\w.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;
const READ_SIZE = 2048;
const BODY_READ_SIZE = 64 * 1024;

/** The connection cap for a soft open-file limit: 256 descriptors for the rest of the process and 64 refusals below. */
export function connectionCap(softLimit: number, wanted: number = SERVER_DEFAULTS.maxConnections): number {
  return Math.max(16, Math.min(wanted, softLimit - RESERVED_FDS - MAX_REFUSING));
}

/** A parsed request head. */
export interface RequestHead {
  /** Method, e.g. `GET`. */
  readonly method: string;
  /** The request target, e.g. `/healthz?x=1`. */
  readonly target: string;
  /** `1.0` or `1.1`. */
  readonly version: "1.0" | "1.1";
  /** Header fields in order, names lower-cased. */
  readonly headers: [string, string][];
}

/** Why a request head was refused: the status to answer and a message. */
export class HeadError extends Error {
  /** The HTTP status to answer. */
  readonly status: number;
  /** Builds the error with its status. */
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

let fullGc: (() => void) | null | undefined;

/**
 * Runs one full V8 garbage collection. After a burst the connections' objects die together in the old generation and,
 * with no allocation to follow, V8 keeps their pages: RSS would stay high for minutes. One full collection returns them.
 * The two modules it needs cost about 4 MB, so they are loaded at the first burst, not at start.
 */
async function collectGarbage(): Promise<void> {
  if (fullGc === undefined) {
    try {
      const [{ setFlagsFromString }, { runInNewContext }] = await Promise.all([import("node:v8"), import("node:vm")]);
      setFlagsFromString("--expose-gc");
      fullGc = runInNewContext("gc") as () => void;
    } catch {
      fullGc = null;
    }
  }
  fullGc?.();
}

/** Parses a request head (without its final empty line); throws {@linkcode HeadError}. */
export function parseHead(text: string): RequestHead {
  const lines = text.split("\r\n");
  const parts = lines[0].split(" ");
  if (parts.length !== 3 || !TOKEN.test(parts[0]) || parts[1] === "") {
    throw new HeadError(400, "Malformed request line");
  }
  const [method, target, protocol] = parts;
  if (!/^HTTP\/\d\.\d$/.test(protocol)) throw new HeadError(400, "Malformed request line");
  if (protocol !== "HTTP/1.1" && protocol !== "HTTP/1.0") throw new HeadError(505, `Unsupported protocol ${protocol}`);
  if (!target.startsWith("/") && !/^https?:\/\//i.test(target) && !(target === "*" && method === "OPTIONS")) {
    throw new HeadError(400, "Malformed request target");
  }
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    // A name with white space or folded lines is how requests are smuggled past proxies: refused, as RFC 9112 asks.
    if (colon <= 0 || !TOKEN.test(name)) throw new HeadError(400, "Malformed header field");
    const value = line.slice(colon + 1).trim();
    if (/[\0\r\n]/.test(value)) throw new HeadError(400, `Malformed value of header ${name}`);
    headers.push([name.toLowerCase(), value]);
  }
  return { method, target, version: protocol === "HTTP/1.1" ? "1.1" : "1.0", headers };
}

/** The body length a head announces: a byte count, or an error for what this server does not take. */
export function bodyLength(head: RequestHead): number {
  const lengths = new Set(head.headers.filter(([n]) => n === "content-length").map(([, v]) => v));
  if (head.headers.some(([n]) => n === "transfer-encoding")) {
    if (lengths.size > 0) throw new HeadError(400, "Both Transfer-Encoding and Content-Length");
    throw new HeadError(411, "Chunked request bodies are not accepted: send Content-Length");
  }
  if (lengths.size === 0) return 0;
  const [value] = lengths;
  if (lengths.size > 1 || !/^\d{1,15}$/.test(value)) throw new HeadError(400, "Invalid Content-Length");
  return Number(value);
}

function header(head: RequestHead, name: string): string | undefined {
  return head.headers.find(([n]) => n === name)?.[1];
}

/** Whether the connection stays open after this request's response. */
export function keepsAlive(head: RequestHead): boolean {
  const connection = (header(head, "connection") ?? "").toLowerCase().split(",").map((s) => s.trim());
  if (head.version === "1.0") return connection.includes("keep-alive");
  return !connection.includes("close");
}

function errorResponse(status: number, message: string): Response {
  const requestId = crypto.randomUUID();
  return new Response(JSON.stringify({ code: String(status), data: null, message, requestId }), {
    status,
    headers: { "content-type": "application/json", "x-request-id": requestId },
  });
}

function statusLine(status: number, statusText: string): string {
  return `HTTP/1.1 ${status} ${statusText || STATUS_TEXT[status] || "Status"}\r\n`;
}

const STATUS_TEXT: Record<number, string> = {
  100: "Continue",
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  411: "Length Required",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function findHeadEnd(bytes: Uint8Array, from: number): number {
  for (let i = Math.max(0, from - 3); i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i;
  }
  return -1;
}

/** One accepted connection: its reads and writes, each under a deadline that closes it. */
class Connection {
  #conn: Deno.Conn;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Bytes read but not yet used (the start of a pipelined request). */
  pending: Uint8Array = new Uint8Array(0);
  /** Waiting for a request with nothing of it received: shutdown may close it at once. */
  idle = true;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the connection when `ms` pass before {@linkcode disarm}. */
  arm(ms: number): void {
    this.disarm();
    this.#timer = setTimeout(() => this.close(), ms);
  }

  disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async read(size: number): Promise<Uint8Array | null> {
    if (this.#closed) return null;
    const buffer = new Uint8Array(size);
    try {
      const n = await this.#conn.read(buffer);
      return n === null ? null : buffer.subarray(0, n);
    } catch {
      return null;
    }
  }

  async write(bytes: Uint8Array, timeoutMs: number): Promise<boolean> {
    let offset = 0;
    while (offset < bytes.length) {
      if (this.#closed) return false;
      this.arm(timeoutMs);
      try {
        offset += await this.#conn.write(bytes.subarray(offset));
      } catch {
        this.close();
        return false;
      } finally {
        this.disarm();
      }
    }
    return true;
  }

  async closeWrite(): Promise<void> {
    try {
      await this.#conn.closeWrite();
    } catch {
      // already closed by the peer
    }
  }

  close(): void {
    this.disarm();
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

interface Limits {
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxHeaderBytes: number;
}

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

/** The status line and headers; `length` null means a chunked (or, with `close`, close-delimited) body follows. */
function responseHead(
  response: Response,
  options: { length: number | null; close: boolean; bodyless?: boolean },
): string {
  let text = statusLine(response.status, response.statusText);
  for (const [name, value] of response.headers) {
    if (name === "content-length" || name === "transfer-encoding" || name === "connection") continue;
    text += `${name}: ${value}\r\n`;
  }
  if (!response.headers.has("date")) text += `date: ${new Date().toUTCString()}\r\n`;
  // HEAD, 204 and 304 answers carry no body and so no framing.
  if (!options.bodyless && options.length !== null) text += `content-length: ${options.length}\r\n`;
  else if (!options.bodyless && !options.close) text += "transfer-encoding: chunked\r\n";
  if (options.close) text += "connection: close\r\n";
  return text + "\r\n";
}

function chunk(data: Uint8Array): Uint8Array {
  const prefix = encoder.encode(`${data.length.toString(16)}\r\n`);
  const out = new Uint8Array(prefix.length + data.length + 2);
  out.set(prefix);
  out.set(data, prefix.length);
  out.set([13, 10], prefix.length + data.length);
  return out;
}

/**
 * Writes a response. A body that ends within two reads goes with Content-Length; a longer one is streamed as it comes
 * (chunked, or until close for HTTP/1.0). Returns whether the connection is still usable.
 */
async function writeResponse(
  connection: Connection,
  response: Response,
  options: { head: boolean; close: boolean; version: "1.0" | "1.1"; timeoutMs: number },
): Promise<boolean> {
  const noBody = options.head || response.status === 204 || response.status === 304 || response.status < 200;
  const reader = response.body?.getReader();
  if (!reader || noBody) {
    await reader?.cancel();
    const head = responseHead(response, { length: 0, close: options.close, bodyless: noBody });
    return await connection.write(encoder.encode(head), options.timeoutMs);
  }
  let finished = false;
  try {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 2 && !finished; i++) {
      const next = await reader.read();
      if (next.done) finished = true;
      else if (next.value.length > 0) parts.push(next.value);
    }
    if (finished) {
      const body = parts.reduce(concat, new Uint8Array(0));
      const head = encoder.encode(responseHead(response, { length: body.length, close: options.close }));
      return await connection.write(concat(head, body), options.timeoutMs);
    }
    const close = options.close || options.version === "1.0";
    const frame = close ? (data: Uint8Array) => data : chunk;
    let out: Uint8Array = encoder.encode(responseHead(response, { length: null, close }));
    for (const part of parts) out = concat(out, frame(part));
    if (!await connection.write(out, options.timeoutMs)) return false;
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      if (next.value.length > 0 && !await connection.write(frame(next.value), options.timeoutMs)) return false;
    }
    finished = true;
    if (close) return false;
    return await connection.write(encoder.encode("0\r\n\r\n"), options.timeoutMs);
  } catch {
    // The body failed half-way: the client cannot tell a short answer from a whole one unless the connection ends.
    connection.close();
    return false;
  } finally {
    // A client that went away mid-stream must stop the body's source too (a long export would run on for nothing).
    if (!finished) await reader.cancel().catch(() => {});
  }
}

/** Serves requests on one connection until it closes, times out or the server stops. */
async function serveConnection(
  connection: Connection,
  context: { fetch: FetchHandler; limits: Limits; stopping: () => boolean; origin: string },
): Promise<void> {
  const { limits } = context;
  for (let first = true; !connection.closed; first = false) {
    const read = await readHead(connection, limits, { first });
    if (read === null) break;
    if (read instanceof HeadError) {
      await writeResponse(connection, errorResponse(read.status, read.message), {
        head: false,
        close: true,
        version: "1.1",
        timeoutMs: limits.idleTimeoutMs,
      });
      break;
    }
    const { head, rest } = read;
    let length: number;
    try {
      length = bodyLength(head);
    } catch (error) {
      const { status, message } = error as HeadError;
      await writeResponse(connection, errorResponse(status, message), {
        head: false,
        close: true,
        version: head.version,
        timeoutMs: limits.idleTimeoutMs,
      });
      break;
    }
    const host = header(head, "host");
    const url = /^https?:\/\//i.test(head.target)
      ? head.target
      : `http://${host && HOST.test(host) ? host : context.origin}${head.target === "*" ? "/" : head.target}`;
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
async function refuse(connection: Connection): Promise<void> {
  const response = errorResponse(503, "Too many connections: try again later");
  await writeResponse(connection, response, { head: false, close: true, version: "1.1", timeoutMs: REFUSE_LINGER_MS });
  await connection.closeWrite();
  connection.arm(REFUSE_LINGER_MS);
  while (!connection.closed && await connection.read(READ_SIZE) !== null) {
    // Drain what the client sent until it closes or the linger time ends.
  }
  connection.close();
}

function listen(port: number, hostname: string | undefined): Deno.TcpListener[] {
  if (hostname !== undefined) return [Deno.listen({ hostname, port, transport: "tcp" })];
  let v6: Deno.TcpListener;
  try {
    v6 = Deno.listen({ hostname: "::", port, transport: "tcp" });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) throw error;
    // IPv6 is off on this host (or in this namespace): IPv4 only.
    return [Deno.listen({ hostname: "0.0.0.0", port, transport: "tcp" })];
  }
  // Where `::` is IPv6-only (net.ipv6.bindv6only=1) the IPv4 port is still free: take it too.
  try {
    return [v6, Deno.listen({ hostname: "0.0.0.0", port: (v6.addr as Deno.NetAddr).port, transport: "tcp" })];
  } catch {
    return [v6];
  }
}

/** Serves `fetch` over HTTP/1.1 with timeouts, a connection cap and an accept loop that never dies. */
export function serveApp(fetch: FetchHandler, options: ServeOptions): AppServer {
  const limits: Limits = {
    headersTimeoutMs: options.headersTimeoutMs ?? SERVER_DEFAULTS.headersTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? SERVER_DEFAULTS.idleTimeoutMs,
    maxHeaderBytes: options.maxHeaderBytes ?? SERVER_DEFAULTS.maxHeaderBytes,
  };
  const maxConnections = options.maxConnections ?? SERVER_DEFAULTS.maxConnections;
  let listeners: Deno.TcpListener[];
  try {
    listeners = listen(options.port, options.hostname);
  } catch (error) {
    const cause = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot listen on port ${options.port}: ${cause}`, { cause: error });
  }
  const port = (listeners[0].addr as Deno.NetAddr).port;
  const hostnames = listeners.map((l) => (l.addr as Deno.NetAddr).hostname);
  const served = new Map<Connection, Promise<void>>();
  const refusing = new Map<Connection, Promise<void>>();
  let stopping = false;
  let acceptError = "";
  const context = { fetch, limits, stopping: () => stopping, origin: `localhost:${port}` };

  // Wakes an accept loop that paused because every served and refusing slot was taken.
  let slotFreed = Promise.withResolvers<void>();
  const wake = () => {
    slotFreed.resolve();
    slotFreed = Promise.withResolvers<void>();
  };
  let peak = 0;
  let collecting: ReturnType<typeof setTimeout> | undefined;
  const track = (
    connection: Connection,
    { map, work }: { map: Map<Connection, Promise<void>>; work: Promise<void> },
  ) => {
    map.set(
      connection,
      work.catch(() => connection.close()).finally(() => {
        map.delete(connection);
        wake();
        const open = served.size + refusing.size;
        if (!stopping && peak >= BURST_CONNECTIONS && open <= peak / 8 && collecting === undefined) {
          peak = open;
          // A second later, so the connections' last closures are gone too.
          collecting = setTimeout(() => {
            collecting = undefined;
            collectGarbage().catch(() => {});
          }, 1000);
        }
      }),
    );
    peak = Math.max(peak, served.size + refusing.size);
  };

  async function acceptLoop(listener: Deno.TcpListener): Promise<void> {
    let backoffMs = 10;
    while (!stopping) {
      if (served.size >= maxConnections && refusing.size >= MAX_REFUSING) {
        // Even refusals are at their limit: leave new connections in the kernel's backlog until a slot frees.
        await slotFreed.promise;
        continue;
      }
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (stopping) return;
        // Out of file descriptors (or any other failure): wait and try again, logging once per change.
        const message = error instanceof Error ? error.message : String(error);
        if (message !== acceptError) {
          acceptError = message;
          options.log?.error("Cannot accept connections on port {port}: {error}; retrying", { port, error: message });
        }
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 1000);
        continue;
      }
      if (acceptError) {
        options.log?.info("Accepting connections on port {port} again", { port });
        acceptError = "";
      }
      backoffMs = 10;
      const connection = new Connection(conn);
      if (stopping) connection.close();
      else if (served.size < maxConnections) {
        track(connection, { map: served, work: serveConnection(connection, context) });
      } else track(connection, { map: refusing, work: refuse(connection) });
    }
  }

  const loops = listeners.map(acceptLoop);
  return {
    port,
    hostnames,
    connections: () => served.size + refusing.size,
    async shutdown({ graceMs = 5000 } = {}) {
      stopping = true;
      wake();
      for (const listener of listeners) {
        try {
          listener.close();
        } catch {
          // already closed
        }
      }
      await Promise.all(loops);
      // Requests in flight end with `connection: close`; connections waiting for a request have nothing to finish.
      for (const connection of served.keys()) if (connection.idle) connection.close();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise((resolve) => timer = setTimeout(resolve, graceMs));
      await Promise.race([Promise.all([...served.values(), ...refusing.values()]), grace]);
      clearTimeout(timer);
      for (const connection of [...served.keys(), ...refusing.keys()]) connection.close();
      clearTimeout(collecting);
    },
  };
}
