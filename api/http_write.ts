/** Writing an HTTP/1.1 response: the status line, the head, the body with Content-Length or chunked. */
import { type ByteReader, byteReader, PIECE_BYTES } from "../core/byte_stream.ts";
import { CHUNK_HEAD, CHUNK_TAIL, frameChunk } from "../core/http_framing.ts";
import type { Connection } from "./http_socket.ts";

const encoder = new TextEncoder();

/** An answer in the API's envelope, for a request the server refuses or could not hand to the app. */
export function errorResponse(status: number, message: string): Response {
  const requestId = crypto.randomUUID();
  return new Response(JSON.stringify({ code: String(status), data: null, message, requestId }), {
    status,
    headers: { "content-type": "application/json", "x-request-id": requestId },
  });
}

/** Writes the answer to a refused request (or connection) and asks the client to close. */
export function writeError(
  connection: Connection,
  error: { status: number; message: string },
  options: { version: "1.0" | "1.1"; timeoutMs: number },
): Promise<boolean> {
  const response = errorResponse(error.status, error.message);
  return writeResponse(connection, response, { head: false, close: true, ...options });
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

/** `a` followed by `b` in one array (`b` itself when `a` is empty). */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
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

/** One chunk of `data`, copied (for the first pieces, read before the body was known to be long). */
function chunk(data: Uint8Array): Uint8Array {
  const buffer = new ArrayBuffer(CHUNK_HEAD + data.length + CHUNK_TAIL);
  new Uint8Array(buffer).set(data, CHUNK_HEAD);
  return frameChunk(buffer, data.length);
}

/** The Content-Length a handler set on a response, or null when it set none that is valid. */
function declaredLength(response: Response): number | null {
  const text = response.headers.get("content-length");
  return text !== null && /^\d{1,15}$/.test(text) ? Number(text) : null;
}

/**
 * A long body whose length the handler declared (an image export) goes as it comes, each piece as it is, with no
 * chunk framing that would copy every piece. A body that ends short of its length, or runs past it, closes the
 * connection: the client sees the cut instead of a whole answer.
 */
async function writeDeclared(
  connection: Connection,
  { response, reader, parts, declared, options }: {
    response: Response;
    reader: ByteReader;
    parts: Uint8Array[];
    declared: number;
    options: { close: boolean; timeoutMs: number };
  },
): Promise<boolean> {
  let sent = 0;
  let over = false;
  const send = async (data: Uint8Array) => {
    if (data.length > declared - sent) {
      over = true;
      data = data.subarray(0, declared - sent);
    }
    sent += data.length;
    return data.length === 0 || await connection.write(data, options.timeoutMs);
  };
  const head = encoder.encode(responseHead(response, { length: declared, close: options.close }));
  if (!await connection.write(head, options.timeoutMs)) return false;
  for (const part of parts) if (!await send(part)) return false;
  let buffer = new ArrayBuffer(PIECE_BYTES);
  while (!over) {
    const piece = await reader.read(new Uint8Array(buffer));
    if (piece.length === 0) break;
    buffer = piece.buffer as ArrayBuffer;
    if (!await send(piece)) return false;
  }
  if (over || sent < declared) {
    await reader.cancel().catch(() => {});
    connection.close();
    return false;
  }
  return !options.close;
}

/**
 * Writes a response. A body that ends within two reads goes with Content-Length; a longer one goes as it comes: with
 * the Content-Length its handler declared, else chunked (or until close for HTTP/1.0). Returns whether the connection
 * is still usable.
 */
export async function writeResponse(
  connection: Connection,
  response: Response,
  options: { head: boolean; close: boolean; version: "1.0" | "1.1"; timeoutMs: number },
): Promise<boolean> {
  const noBody = options.head || response.status === 204 || response.status === 304 || response.status < 200;
  const first = response.body?.getReader();
  if (!first || noBody) {
    await first?.cancel();
    const head = responseHead(response, { length: 0, close: options.close, bodyless: noBody });
    return await connection.write(encoder.encode(head), options.timeoutMs);
  }
  let reader: { cancel(): Promise<void> } = first;
  let finished = false;
  try {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 2 && !finished; i++) {
      const next = await first.read();
      if (next.done) finished = true;
      else if (next.value.length > 0) parts.push(next.value);
    }
    if (finished) {
      const body = parts.reduce(concat, new Uint8Array(0));
      const head = encoder.encode(responseHead(response, { length: body.length, close: options.close }));
      return await connection.write(concat(head, body), options.timeoutMs);
    }
    // A long body: the rest is read into one buffer, piece by piece (core/byte_stream.ts).
    first.releaseLock();
    const rest = byteReader(response.body!);
    reader = rest;
    const declared = declaredLength(response);
    if (declared !== null) {
      return await writeDeclared(connection, { response, reader: rest, parts, declared, options });
    }
    const close = options.close || options.version === "1.0";
    let out: Uint8Array = encoder.encode(responseHead(response, { length: null, close }));
    for (const part of parts) out = concat(out, close ? part : chunk(part));
    if (!await connection.write(out, options.timeoutMs)) return false;
    // Until close the pieces go bare; chunked, each is framed in the room left around it.
    const at = close ? 0 : CHUNK_HEAD;
    let buffer = new ArrayBuffer(at + PIECE_BYTES + CHUNK_TAIL);
    for (;;) {
      const piece = await rest.read(new Uint8Array(buffer, at, PIECE_BYTES));
      if (piece.length === 0) break;
      buffer = piece.buffer as ArrayBuffer;
      const framed = close ? piece : frameChunk(buffer, piece.length);
      if (!await connection.write(framed, options.timeoutMs)) return false;
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
