/**
 * The hand-written streamed POST (host/http_upload.ts) against a real unix-socket server: the chunked framing a
 * server decodes, a failed body that ends the connection without the last chunk, an answer sent before the body was
 * taken, and the answer's three framings.
 */
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { PIECE_BYTES, WriteStalledError } from "../../core/byte_stream.ts";
import { parseAnswer, UploadBodyError, uploadStream } from "../../host/http_upload.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Everything a connection sent until it closed, or until `until` matches what came so far. */
async function readAll(conn: Deno.Conn, until?: (bytes: Uint8Array) => boolean): Promise<Uint8Array> {
  let all = new Uint8Array(0);
  for (;;) {
    const buffer = new Uint8Array(64 * 1024);
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      n = null;
    }
    if (n === null) break;
    const more = new Uint8Array(all.length + n);
    more.set(all);
    more.set(buffer.subarray(0, n), all.length);
    all = more;
    if (until?.(all)) break;
  }
  return all;
}

/** The body of a chunked request, and whether it ended with the last chunk. */
function decodeChunked(bytes: Uint8Array): { body: Uint8Array; whole: boolean; sizes: number[] } {
  const text = decoder.decode(bytes);
  const headEnd = text.indexOf("\r\n\r\n");
  assert(/transfer-encoding: chunked/i.test(text.slice(0, headEnd)), "the request is chunked");
  const out: Uint8Array[] = [];
  const sizes: number[] = [];
  const joined = () => {
    const body = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
    let offset = 0;
    for (const part of out) {
      body.set(part, offset);
      offset += part.length;
    }
    return body;
  };
  let at = headEnd + 4;
  for (;;) {
    const lineEnd = bytes.indexOf(10, at);
    if (lineEnd < 0) return { body: joined(), whole: false, sizes };
    const size = parseInt(decoder.decode(bytes.subarray(at, lineEnd)).trim(), 16);
    if (size === 0) return { body: joined(), whole: true, sizes };
    if (lineEnd + 1 + size + 2 > bytes.length) return { body: joined(), whole: false, sizes };
    out.push(bytes.subarray(lineEnd + 1, lineEnd + 1 + size));
    sizes.push(size);
    at = lineEnd + 1 + size + 2;
  }
}

/** A unix-socket server on a temporary path that hands each connection to `handle`, one at a time. */
async function withServer(
  handle: (conn: Deno.Conn) => Promise<void>,
  test: (address: Deno.UnixConnectOptions) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pd-upload-" });
  const path = `${dir}/s.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const served = (async () => {
    for await (const conn of listener) {
      await handle(conn).finally(() => {
        try {
          conn.close();
        } catch {
          // closed by the handler
        }
      });
    }
  })();
  try {
    await test({ transport: "unix", path });
  } finally {
    listener.close();
    await served.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

function counting(total: number, size: number, failAt?: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (failAt !== undefined && sent >= failAt) return controller.error(new Error("Peer went away"));
      if (sent >= total) return controller.close();
      const n = Math.min(size, total - sent);
      controller.enqueue(Uint8Array.from({ length: n }, (_, i) => (sent + i) % 251));
      sent += n;
    },
  });
}

Deno.test("uploadStream sends the whole body chunked, in pieces gathered from small ones, and reads the answer", async () => {
  let request: Uint8Array = new Uint8Array(0);
  await withServer(async (conn) => {
    request = await readAll(conn, (b) => decoder.decode(b.subarray(-5)) === "0\r\n\r\n");
    const body = '{"stream":"Loaded image: a:1\\n"}\n';
    const answer = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${
      body.length.toString(16)
    }\r\n${body}\r\n0\r\n\r\n`;
    await conn.write(encoder.encode(answer));
  }, async (address) => {
    const answer = await uploadStream(address, counting(1_000_000, 30_000), {
      path: "/v1.41/images/load?quiet=1",
      headers: { "Content-Type": "application/x-tar" },
    });
    assertEquals(answer, { status: 200, text: '{"stream":"Loaded image: a:1\\n"}\n' });
  });
  const head = decoder.decode(request.subarray(0, 200));
  assert(head.startsWith("POST /v1.41/images/load?quiet=1 HTTP/1.1\r\n"), head);
  assert(/\r\ncontent-type: application\/x-tar\r\n/i.test(head), head);
  const { body, whole, sizes } = decodeChunked(request);
  assert(whole, "the body ends with the last chunk");
  assertEquals(sizes, [PIECE_BYTES, PIECE_BYTES, PIECE_BYTES, 1_000_000 - 3 * PIECE_BYTES]);
  assertEquals(body.length, 1_000_000);
  for (let i = 0; i < body.length; i++) if (body[i] !== i % 251) throw new Error(`byte ${i} is ${body[i]}`);
});

Deno.test("a body that fails ends the connection without the last chunk, and throws UploadBodyError", async () => {
  let request: Uint8Array = new Uint8Array(0);
  await withServer(async (conn) => {
    request = await readAll(conn);
  }, async (address) => {
    const error = await assertRejects(
      () => uploadStream(address, counting(1_000_000, 30_000, 300_000), { path: "/images/load" }),
      UploadBodyError,
      "the stream failed: Peer went away",
    );
    assertEquals((error as UploadBodyError).cause.message, "Peer went away");
  });
  const { body, whole } = decodeChunked(request);
  assert(!whole, "the server never got the last chunk");
  assert(body.length <= 300_000, `${body.length} bytes reached the server`);
});

Deno.test("a server that answers before it took the body is heard: its status and message come back", async () => {
  await withServer(async (conn) => {
    await readAll(conn, (b) => b.length > 100_000);
    const body = '{"message":"no space left on device"}';
    await conn.write(
      encoder.encode(`HTTP/1.1 500 Internal Server Error\r\nContent-Length: ${body.length}\r\n\r\n${body}`),
    );
  }, async (address) => {
    const answer = await uploadStream(address, counting(50_000_000, 65_536), { path: "/images/load" });
    assertEquals(answer, { status: 500, text: '{"message":"no space left on device"}' });
  });
});

Deno.test("parseAnswer reads chunked, Content-Length and close-delimited answers, and refuses what is not HTTP", () => {
  const parse = (text: string) => parseAnswer(encoder.encode(text));
  assertEquals(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"), {
    status: 200,
    text: "abcde",
  });
  assertEquals(parse("HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nabcdef"), { status: 404, text: "ab" });
  assertEquals(parse("HTTP/1.0 200 OK\r\n\r\nuntil close"), { status: 200, text: "until close" });
  assertEquals(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"), { status: 200, text: "ab" });
  const refusals: Record<string, string> = {
    "": "the connection closed without an answer",
    "SSH-2.0-OpenSSH\r\n\r\n": 'the answer is not HTTP: "SSH-2.0-OpenSSH"',
    "HTTP/1.1 200 OK\r\nno end of head": 'the answer is not HTTP: "HTTP/1.1 200 OK\\r\\nno end of head"',
  };
  for (const [bad, message] of Object.entries(refusals)) {
    let thrown = "";
    try {
      parse(bad);
    } catch (error) {
      thrown = (error as Error).message;
    }
    assertEquals(thrown, message, `refused: ${JSON.stringify(bad)}`);
  }
});

Deno.test("a server that stops reading the body fails the upload after the stall timeout, its connection closed", async () => {
  let closedByClient = false;
  let gaveUp = () => {};
  const clientGaveUp = new Promise<void>((resolve) => (gaveUp = resolve));
  await withServer(async (conn) => {
    // The head, then nothing more is read until the client has given up.
    await readAll(conn, (b) => decoder.decode(b).includes("\r\n\r\n"));
    await clientGaveUp;
    const rest = await readAll(conn);
    closedByClient = rest.length < 50_000_000;
  }, async (address) => {
    await assertRejects(
      () => uploadStream(address, counting(50_000_000, 65_536), { path: "/images/load", stallMs: 300 }),
      WriteStalledError,
      "the server took no data for 0.3 s",
    );
    gaveUp();
  });
  assert(closedByClient, "the client closed the connection before sending the whole body");
});
