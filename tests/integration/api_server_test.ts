import { assert, assertEquals, assertMatch, assertStringIncludes } from "../support/assert.ts";
import { getLogger } from "@logtape/logtape";
import { createApp } from "../../api/app.ts";
import { createMetrics } from "../../api/metrics.ts";
import { bodyLength, HeadError, keepsAlive, parseHead } from "../../api/http_head.ts";
import { connectionCap, serveApp } from "../../api/server.ts";
import { type CronRegistrar, Scheduler } from "../../controllers/scheduler.ts";
import { systemClock } from "../../core/types.ts";
import { waitFor } from "../support/daemon_process.ts";

const noCron: CronRegistrar = () => Promise.resolve();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function daemonApp() {
  const scheduler = new Scheduler([], { clock: systemClock, log: getLogger(["test"]), cron: noCron });
  return createApp({
    jobs: scheduler,
    kube: null,
    clusterState: () => null,
    metrics: createMetrics(),
    log: getLogger(["test"]),
    node: "n1",
  });
}

/** Reads until the server closes the connection; resolves with what came and how long after `since` it closed. */
async function untilClosed(conn: Deno.Conn, since: number): Promise<{ text: string; ms: number }> {
  const buffer = new Uint8Array(65536);
  let text = "";
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      n = null;
    }
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n));
  }
  const ms = performance.now() - since;
  conn.close();
  return { text, ms };
}

/** Reads whole responses with Content-Length bodies off a connection, one at a time (pipelined ones too). */
function responses(conn: Deno.Conn): () => Promise<string> {
  const buffer = new Uint8Array(65536);
  let text = "";
  return async () => {
    for (;;) {
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
        if (text.length >= end + 4 + length) {
          const one = text.slice(0, end + 4 + length);
          text = text.slice(one.length);
          return one;
        }
      }
      const n = await conn.read(buffer);
      if (n === null) throw new Error(`Connection closed after ${JSON.stringify(text)}`);
      text += decoder.decode(buffer.subarray(0, n));
    }
  };
}

/** Reads one whole response off a connection that carries only one at a time. */
function readResponse(conn: Deno.Conn): Promise<string> {
  return responses(conn)();
}

async function connect(port: number, hostname = "127.0.0.1"): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname, port });
}

Deno.test("parseHead and bodyLength refuse what could smuggle a request; the cap stays below the fd limit", () => {
  const head = parseHead("POST /x?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5");
  assertEquals(head, {
    method: "POST",
    target: "/x?a=1",
    version: "1.1",
    headers: [["host", "h"], ["content-length", "5"]],
  });
  assertEquals(bodyLength(head), 5);
  const status = (text: string) => {
    try {
      bodyLength(parseHead(text));
      return 0;
    } catch (error) {
      return (error as HeadError).status;
    }
  };
  assertEquals(status("GET / HTTP/1.1\r\nHost : h"), 400);
  assertEquals(status("GET / HTTP/1.1\r\n folded"), 400);
  assertEquals(status("GET / HTTP/2.0"), 505);
  assertEquals(status("GET / x"), 400);
  assertEquals(status("GET  / HTTP/1.1"), 400);
  assertEquals(status("GET x HTTP/1.1"), 400);
  assertEquals(status("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2"), 400);
  assertEquals(status("POST / HTTP/1.1\r\nContent-Length: -1"), 400);
  assertEquals(status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3"), 400);
  assertEquals(status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked"), 411);
  assertEquals(status("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3"), 0);
  assertEquals(keepsAlive(parseHead("GET / HTTP/1.1")), true);
  assertEquals(keepsAlive(parseHead("GET / HTTP/1.1\r\nConnection: keep-alive, Close")), false);
  assertEquals(keepsAlive(parseHead("GET / HTTP/1.0")), false);
  assertEquals(keepsAlive(parseHead("GET / HTTP/1.0\r\nConnection: Keep-Alive")), true);
  assertEquals(connectionCap(1024), 704);
  assertEquals(connectionCap(1_048_576), 1024);
  assertEquals(connectionCap(100), 16);
});

Deno.test("a connection that sends half a request head is closed after the header timeout", async () => {
  const server = serveApp(daemonApp().fetch, { port: 0, hostname: "127.0.0.1", headersTimeoutMs: 300 });
  try {
    const t0 = performance.now();
    const half = await connect(server.port);
    await half.write(encoder.encode("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    const silent = await connect(server.port);
    const [a, b] = await Promise.all([untilClosed(half, t0), untilClosed(silent, t0)]);
    for (const closed of [a, b]) {
      assertEquals(closed.text, "");
      assert(closed.ms >= 280 && closed.ms < 3000, `closed after ${Math.round(closed.ms)} ms`);
    }
    // Trickling bytes does not extend the deadline: it runs from the start of the head.
    const t1 = performance.now();
    const trickle = await connect(server.port);
    const closed = untilClosed(trickle, t1);
    for (const part of ["GET /he", "althz HT", "TP/1.1\r\n"]) {
      await new Promise((r) => setTimeout(r, 100));
      await trickle.write(encoder.encode(part)).catch(() => 0);
    }
    const result = await closed;
    assert(result.ms >= 280 && result.ms < 3000, `trickling client closed after ${Math.round(result.ms)} ms`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("an idle keep-alive connection is kept for requests, then closed after the idle timeout", async () => {
  const server = serveApp(daemonApp().fetch, {
    port: 0,
    hostname: "127.0.0.1",
    headersTimeoutMs: 300,
    idleTimeoutMs: 900,
  });
  try {
    const conn = await connect(server.port);
    for (let i = 0; i < 3; i++) {
      await conn.write(encoder.encode(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: r${i}\r\n\r\n`));
      const text = await readResponse(conn);
      assertStringIncludes(text, "HTTP/1.1 200 OK\r\n");
      assertStringIncludes(text, `x-request-id: r${i}\r\n`);
      assert(text.endsWith('{"status":"ok"}'), text);
    }
    // Longer than the header timeout, shorter than the idle one: still open, because no request has started.
    const t0 = performance.now();
    const closed = await untilClosed(conn, t0);
    assertEquals(closed.text, "");
    assert(closed.ms >= 850 && closed.ms < 4000, `idle connection closed after ${Math.round(closed.ms)} ms`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("pipelined requests, bodies by Content-Length, 100-continue, 413, 411, 431 and 400 over a real socket", async () => {
  const app = daemonApp();
  app.post("/echo", async (c) => c.text(`${(await c.req.arrayBuffer()).byteLength}`));
  const server = serveApp(app.fetch, { port: 0, hostname: "127.0.0.1", maxHeaderBytes: 4096 });
  try {
    const conn = await connect(server.port);
    await conn.write(encoder.encode(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
    ));
    const next = responses(conn);
    const first = await next();
    assert(first.startsWith("HTTP/1.1 200 OK\r\n") && first.endsWith("\r\n\r\n5"), first);
    const second = await next();
    assert(second.startsWith("HTTP/1.1 404 Not Found\r\n"), second);
    assertEquals(JSON.parse(second.slice(second.indexOf("\r\n\r\n") + 4)).code, "404");
    // Expect: 100-continue gets its interim answer once the app reads the body.
    await conn.write(
      encoder.encode("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"),
    );
    let text = "";
    const buffer = new Uint8Array(1024);
    while (!text.includes("100 Continue\r\n\r\n")) {
      text += decoder.decode(buffer.subarray(0, (await conn.read(buffer))!));
    }
    await conn.write(encoder.encode("abc"));
    assert((await next()).endsWith("\r\n\r\n3"));
    conn.close();

    const big = new Uint8Array(1024 * 1024 + 1);
    const res = await fetch(`http://127.0.0.1:${server.port}/api/v1/InnerCheckCoreVersion`, {
      method: "POST",
      body: big,
    });
    assertEquals(res.status, 413);
    assertEquals((await res.json()).code, "413");
    const exact = await fetch(`http://127.0.0.1:${server.port}/echo`, { method: "POST", body: big.subarray(1) });
    assertEquals(await exact.text(), String(1024 * 1024));

    const answers: Record<string, number> = {
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n": 411,
      [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(5000)}\r\n\r\n`]: 431,
      "GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n": 400,
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n": 400,
    };
    for (const [request, status] of Object.entries(answers)) {
      const c = await connect(server.port);
      await c.write(encoder.encode(request));
      const { text } = await untilClosed(c, 0);
      assert(text.startsWith(`HTTP/1.1 ${status} `), `${JSON.stringify(request.slice(0, 40))} -> ${text.slice(0, 40)}`);
      assertStringIncludes(text, "connection: close\r\n");
      assertMatch(text, /x-request-id: [0-9a-f-]{36}\r\n/);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("a streamed response body reaches the client chunk by chunk, and stops when the client leaves", async () => {
  const app = daemonApp();
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  app.get("/stream", () =>
    new Response(
      new ReadableStream({
        async start(controller) {
          controller.enqueue(encoder.encode("first,"));
          controller.enqueue(encoder.encode("second,"));
          await released;
          controller.enqueue(encoder.encode("third"));
          controller.close();
        },
      }),
    ));
  const { promise: cancelled, resolve: cancel } = Promise.withResolvers<void>();
  app.get("/endless", () =>
    new Response(
      new ReadableStream({
        pull: (controller) => controller.enqueue(new Uint8Array(16384)),
        cancel: () => cancel(),
      }),
    ));
  const server = serveApp(app.fetch, { port: 0, hostname: "127.0.0.1" });
  try {
    // A client that leaves in the middle of an endless body stops its source.
    const endless = await connect(server.port);
    await endless.write(encoder.encode("GET /endless HTTP/1.1\r\nHost: x\r\n\r\n"));
    await endless.read(new Uint8Array(1024));
    endless.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      cancelled,
      new Promise((_, reject) => timer = setTimeout(() => reject(new Error("The body was not cancelled")), 5000)),
    ]);
    clearTimeout(timer);

    const res = await fetch(`http://127.0.0.1:${server.port}/stream`);
    assertEquals(res.headers.get("transfer-encoding"), "chunked");
    const reader = res.body!.getReader();
    let text = "";
    while (text !== "first,second,") text += decoder.decode((await reader.read()).value);
    release();
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      text += decoder.decode(next.value);
    }
    assertEquals(text, "first,second,third");
    // The connection is kept for the next request after a chunked body.
    assertEquals((await (await fetch(`http://127.0.0.1:${server.port}/healthz`)).json()).status, "ok");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a long body with a declared Content-Length goes unframed; one that ends short or runs over is cut with the connection", async () => {
  const app = daemonApp();
  const piece = new Uint8Array(32 * 1024).fill(120);
  const body = (pieces: number, declared: number) =>
    new Response(
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          // One piece per turn, as an image export's come.
          await new Promise((r) => setTimeout(r, 1));
          if (pieces-- > 0) controller.enqueue(piece);
          else controller.close();
        },
      }, { highWaterMark: 0 }),
      { headers: { "Content-Length": String(declared) } },
    );
  app.get("/declared", () => body(5, 5 * piece.length));
  app.get("/short", () => body(3, 5 * piece.length));
  app.get("/over", () => body(6, 5 * piece.length));
  const server = serveApp(app.fetch, { port: 0, hostname: "127.0.0.1" });
  /** Everything the server sends on one connection until it closes it or goes quiet for a second. */
  const exchange = async (path: string) => {
    const conn = await connect(server.port);
    await conn.write(encoder.encode(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    const received: Uint8Array[] = [];
    let closed = false;
    for (;;) {
      const buffer = new Uint8Array(65536);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const quiet = new Promise<"quiet">((r) => timer = setTimeout(() => r("quiet"), 1000));
      const n = await Promise.race([conn.read(buffer), quiet]);
      clearTimeout(timer);
      if (n === "quiet") break;
      if (n === null) {
        closed = true;
        break;
      }
      received.push(buffer.subarray(0, n));
    }
    conn.close();
    const all = new Uint8Array(received.reduce((sum, r) => sum + r.length, 0));
    received.reduce((at, r) => (all.set(r, at), at + r.length), 0);
    const text = new TextDecoder().decode(all);
    const end = text.indexOf("\r\n\r\n");
    return { head: text.slice(0, end), bodyBytes: all.length - end - 4, closed };
  };
  try {
    const whole = await exchange("/declared");
    assertStringIncludes(whole.head, `content-length: ${5 * piece.length}`);
    assert(!whole.head.includes("transfer-encoding"), whole.head);
    assertEquals([whole.bodyBytes, whole.closed], [5 * piece.length, false], "the whole body, the connection kept");
    const short = await exchange("/short");
    assertEquals([short.bodyBytes, short.closed], [3 * piece.length, true], "a short body: what came, then closed");
    const over = await exchange("/over");
    assertEquals([over.bodyBytes, over.closed], [5 * piece.length, true], "cut at its length, then closed");
  } finally {
    await server.shutdown();
  }
});

Deno.test("over the connection cap a request is answered 503 and closed; freed slots serve again", async () => {
  const server = serveApp(daemonApp().fetch, { port: 0, hostname: "127.0.0.1", maxConnections: 3 });
  try {
    const held = await Promise.all([1, 2, 3].map(() => connect(server.port)));
    const start = (conn: Deno.Conn) => conn.write(encoder.encode("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    // Each held connection proves it is being served before the next one comes in.
    for (const conn of held) {
      await start(conn);
      assertStringIncludes(await readResponse(conn), "200 OK");
    }
    const over = await connect(server.port);
    await start(over);
    const { text } = await untilClosed(over, 0);
    assert(text.startsWith("HTTP/1.1 503 Service Unavailable\r\n"), text);
    assertStringIncludes(text, "connection: close\r\n");
    const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
    assertEquals(body.code, "503");
    assertEquals(body.message, "Too many connections: try again later");
    held[0].close();
    await waitFor(async () => {
      const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
      await res.body?.cancel();
      return res.ok;
    }, { timeoutMs: 5000, what: "a freed slot to serve /healthz" });
    for (const conn of held.slice(1)) conn.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("2,000 random byte strings: each answered 4xx or closed, never a 5xx, and the server still serves", async () => {
  const server = serveApp(daemonApp().fetch, {
    port: 0,
    hostname: "127.0.0.1",
    headersTimeoutMs: 200,
    idleTimeoutMs: 200,
  });
  let seed = 20261201;
  const random = () => (seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  const pieces = [
    "GET ",
    "POST ",
    "/healthz",
    " HTTP/1.1",
    " HTTP/1.0",
    "\r\n",
    "\r\n\r\n",
    "Host: x",
    ": ",
    "\n",
    " ",
  ];
  pieces.push("Content-Length: 4", "Content-Length: 99999999", "Transfer-Encoding: chunked", "\0", "\u00ff", "%");
  try {
    for (let batch = 0; batch < 20; batch++) {
      const answers = await Promise.all(Array.from({ length: 100 }, async () => {
        let text = "";
        const parts = Math.floor(random() * 12);
        for (let i = 0; i < parts; i++) {
          text += random() < 0.7
            ? pieces[Math.floor(random() * pieces.length)]
            : String.fromCharCode(Math.floor(random() * 256));
        }
        const conn = await connect(server.port);
        await conn.write(encoder.encode(text + (random() < 0.5 ? "\r\n\r\n" : ""))).catch(() => 0);
        if (random() < 0.5) await conn.closeWrite().catch(() => {});
        return (await untilClosed(conn, 0)).text;
      }));
      for (const answer of answers) {
        const status = Number(answer.slice(9, 12));
        assert(answer === "" || (answer.startsWith("HTTP/1.1 ") && status < 500), answer.slice(0, 80));
      }
    }
    const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
    assertEquals(await res.json(), { status: "ok" });
  } finally {
    await server.shutdown();
  }
});

Deno.test("by default it listens on both stacks: 127.0.0.1 and [::1] reach it", async () => {
  const server = serveApp(daemonApp().fetch, { port: 0 });
  try {
    assertEquals(server.hostnames[0], "::");
    for (const host of ["127.0.0.1", "[::1]"]) {
      const res = await fetch(`http://${host}:${server.port}/healthz`);
      assertEquals(await res.json(), { status: "ok" }, host);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("shutdown stops accepting, closes idle connections and lets a request in flight finish", async () => {
  const app = daemonApp();
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  const { promise: entered, resolve: enter } = Promise.withResolvers<void>();
  app.get("/slow", async (c) => {
    enter();
    await released;
    return c.text("done");
  });
  const server = serveApp(app.fetch, { port: 0, hostname: "127.0.0.1" });
  const idle = await connect(server.port);
  await idle.write(encoder.encode("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  await readResponse(idle);
  const busy = await connect(server.port);
  await busy.write(encoder.encode("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  await entered;
  const stopped = server.shutdown();
  const t0 = performance.now();
  const idleClosed = await untilClosed(idle, t0);
  assert(idleClosed.ms < 1000, `idle connection closed after ${Math.round(idleClosed.ms)} ms`);
  let refused = false;
  await connect(server.port).then((c) => c.close(), () => refused = true);
  assert(refused, "a new connection is refused once shutdown began");
  release();
  const { text } = await untilClosed(busy, t0);
  assert(text.startsWith("HTTP/1.1 200 OK\r\n") && text.endsWith("done"), text);
  assertStringIncludes(text, "connection: close\r\n");
  await stopped;
  assertEquals(server.connections(), 0);
});
