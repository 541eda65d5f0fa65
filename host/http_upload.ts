/**
 * An HTTP/1.1 request with a long streamed body, written by hand on a connection of its own (the Docker Engine's
 * `POST /images/load`). Pieces are gathered into one buffer and go from there to the socket: a fetch body would keep
 * each piece in a buffer of its own until V8 collects it. The body goes chunked, and a body that fails ends the connection without
 * the last chunk, so the server never takes a cut stream for a whole one.
 */
import { byteReader, joinBytes, PIECE_BYTES, readFull, WriteStalledError, writeWithin } from "../core/byte_stream.ts";
import { CHUNK_HEAD, CHUNK_TAIL, findHeadEnd, frameChunk } from "../core/http_framing.ts";

/** The server's answer. */
export interface UploadAnswer {
  /** HTTP status. */
  readonly status: number;
  /** The body as text (at most `MAX_ANSWER` bytes of it). */
  readonly text: string;
}

/** The request body failed: `cause` is its own error, the server got no end of it. */
export class UploadBodyError extends Error {
  /** Wraps the body's error. */
  constructor(override readonly cause: Error) {
    super(`the stream failed: ${cause.message}`);
    this.name = "UploadBodyError";
  }
}

/** The request, apart from its body. */
export interface UploadRequest {
  /** Path and query, e.g. `/v1.41/images/load?quiet=1`. */
  readonly path: string;
  /** Request headers (Host, framing and Connection are set here). */
  readonly headers?: Record<string, string>;
  /** Closes the connection, which ends the request. */
  readonly signal?: AbortSignal;
  /** Fails with `WriteStalledError` when the server takes none of the body for this long (ms); absent: no limit. */
  readonly stallMs?: number;
}

/** The longest answer read. */
const MAX_ANSWER = 1024 * 1024;

/** How long an answer is awaited after the server stopped taking the body (it may say why). */
const EARLY_ANSWER_MS = 2000;

const encoder = new TextEncoder();

/** Writes all of `bytes`. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

/** Reads the answer until the server closes (the request asked it to), at most `MAX_ANSWER` bytes. */
async function readAnswer(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let length = 0;
  while (length < MAX_ANSWER) {
    const buffer = new Uint8Array(Math.min(64 * 1024, MAX_ANSWER - length));
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch (error) {
      // A server that closed with some of the body unread resets the connection after its answer.
      if (length === 0) throw error;
      break;
    }
    if (n === null) break;
    parts.push(buffer.subarray(0, n));
    length += n;
  }
  return joinBytes(parts);
}

/** Decodes a chunked body as far as it is whole. */
function dechunk(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = bytes.indexOf(10, at);
    if (lineEnd < 0) break;
    const size = parseInt(new TextDecoder().decode(bytes.subarray(at, lineEnd)).split(";")[0].trim(), 16);
    if (!(size > 0)) break;
    parts.push(bytes.subarray(lineEnd + 1, Math.min(bytes.length, lineEnd + 1 + size)));
    at = lineEnd + 1 + size + 2;
  }
  return joinBytes(parts);
}

/** The status and body of a whole answer; throws when it is not HTTP. */
export function parseAnswer(bytes: Uint8Array): UploadAnswer {
  if (bytes.length === 0) throw new Error("the connection closed without an answer");
  const end = findHeadEnd(bytes, 0);
  const head = new TextDecoder().decode(end < 0 ? bytes.subarray(0, 2048) : bytes.subarray(0, end));
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  if (end < 0 || !status) throw new Error(`the answer is not HTTP: ${JSON.stringify(head.slice(0, 80))}`);
  let body = bytes.subarray(end + 4);
  const headers = head.split("\r\n").slice(1).map((line) => line.toLowerCase());
  const length = headers.map((line) => /^content-length:\s*(\d+)\s*$/.exec(line)?.[1]).find(Boolean);
  if (headers.some((line) => /^transfer-encoding:.*chunked/.test(line))) body = dechunk(body);
  else if (length !== undefined) body = body.subarray(0, Number(length));
  return { status: Number(status[1]), text: new TextDecoder().decode(body) };
}

/**
 * POSTs `body` on a new connection to `address` and resolves with the answer. Throws `UploadBodyError` when the
 * body failed, `WriteStalledError` when the server stopped taking it, else an Error naming what happened to the
 * connection.
 */
export async function uploadStream(
  address: Deno.ConnectOptions | Deno.UnixConnectOptions,
  body: ReadableStream<Uint8Array>,
  request: UploadRequest,
): Promise<UploadAnswer> {
  request.signal?.throwIfAborted();
  const conn = await Deno.connect(address as Deno.ConnectOptions);
  const close = () => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  request.signal?.addEventListener("abort", close, { once: true });
  const reader = byteReader(body);
  const send = (bytes: Uint8Array) =>
    writeWithin(writeAll(conn, bytes), request.stallMs, { stop: close, who: "the server" });
  try {
    let head = `POST ${request.path} HTTP/1.1\r\nHost: docker\r\n`;
    for (const [name, value] of Object.entries(request.headers ?? {})) head += `${name}: ${value}\r\n`;
    head += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    await send(encoder.encode(head));
    let buffer = new ArrayBuffer(CHUNK_HEAD + PIECE_BYTES + CHUNK_TAIL);
    for (;;) {
      let piece: Uint8Array;
      try {
        piece = await readFull(reader.read, new Uint8Array(buffer, CHUNK_HEAD, PIECE_BYTES));
      } catch (error) {
        throw new UploadBodyError(error instanceof Error ? error : new Error(String(error)));
      }
      if (piece.length === 0) break;
      buffer = piece.buffer as ArrayBuffer;
      try {
        await send(frameChunk(buffer, piece.length));
      } catch (error) {
        request.signal?.throwIfAborted();
        if (error instanceof WriteStalledError) throw error;
        // The server stopped taking the body: it may have answered why.
        const early = await earlyAnswer(conn);
        if (early) return early;
        throw new Error(`the connection broke: ${(error as Error).message}`);
      }
    }
    await send(encoder.encode("0\r\n\r\n"));
    return parseAnswer(await readAnswer(conn));
  } catch (error) {
    request.signal?.throwIfAborted();
    throw error;
  } finally {
    request.signal?.removeEventListener("abort", close);
    await reader.cancel().catch(() => {});
    close();
  }
}

/** The answer a server sent before it took the whole body, when it comes within `EARLY_ANSWER_MS`. */
async function earlyAnswer(conn: Deno.Conn): Promise<UploadAnswer | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), EARLY_ANSWER_MS));
  try {
    const bytes = await Promise.race([readAnswer(conn), late]);
    return bytes && bytes.length > 0 ? parseAnswer(bytes) : null;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}
