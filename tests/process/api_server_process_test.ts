import { assert, assertEquals, assertStringIncludes } from "../support/assert.ts";
import { daemonCommand, freePort, runMain, startDaemon, waitFor } from "../support/daemon_process.ts";
import { canMakeNetns, createNetns, startIn } from "../support/netns.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";
import { stopChild } from "../support/child.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const BUDGET_MB = 96;

/** Resident memory of a process in MB, from /proc/<pid>/status. */
function rssMb(pid: number): number {
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
  return Math.round(kb / 102.4) / 10;
}

/** Sends one GET and reads its whole answer (or what came before the server closed). */
async function exchange(conn: Deno.Conn, path: string, options: { close: boolean }): Promise<string> {
  const request = `GET ${path} HTTP/1.1\r\nHost: x\r\n${options.close ? "Connection: close\r\n" : ""}\r\n`;
  const buffer = new Uint8Array(16384);
  let text = "";
  try {
    await conn.write(encoder.encode(request));
    for (;;) {
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
        if (text.length >= end + 4 + length) return text;
      }
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n));
    }
  } catch {
    // reset by the server
  }
  return text;
}

/** Sends one GET: the answer's status, or "closed" when the server closed without one. */
async function ask(conn: Deno.Conn, path: string, options: { close: boolean }): Promise<number | "closed"> {
  const text = await exchange(conn, path, options);
  return text.startsWith("HTTP/1.1 ") ? Number(text.slice(9, 12)) : "closed";
}

/** Resolves when the server closes the connection, with the milliseconds since `since`. */
async function closedAfter(conn: Deno.Conn, since: number): Promise<number> {
  const buffer = new Uint8Array(16384);
  try {
    while (await conn.read(buffer) !== null) {
      // read until the server closes
    }
  } catch {
    // reset counts as closed
  }
  return performance.now() - since;
}

/** Whether /healthz answers 200 on a new connection (fetch could reuse a pooled one that was served all along). */
async function healthy(port: number, hostname = "127.0.0.1"): Promise<boolean> {
  const conn = await Deno.connect({ hostname, port });
  const timer = setTimeout(() => conn.close(), 2000);
  try {
    return await ask(conn, "/healthz", { close: true }) === 200;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer
    }
  }
}

function count<T>(list: readonly T[], value: T): number {
  return list.filter((v) => v === value).length;
}

Deno.test({
  name: "under a 1,024 fd limit: 1,024 connections get 200 up to the cap and 503 over it; /healthz again within 5 s",
  ignore: skipUnless(hasCommand("prlimit"), "prlimit (util-linux) is not installed"),
  async fn() {
    const port = freePort();
    const daemon = await startDaemon(["--local"], { port, prefix: ["prlimit", "--nofile=1024:1024", "--"] });
    try {
      assertStringIncludes(daemon.stderr(), "(at most 704 connections)");
      const conns: Deno.Conn[] = [];
      for (let i = 0; i < 1024; i++) conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      const outcomes = await Promise.all(conns.map((conn) => ask(conn, "/healthz", { close: false })));
      const served = count(outcomes, 200);
      const refused = count(outcomes, 503);
      console.log(`RESULT ${JSON.stringify({ served, refused, closed: count(outcomes, "closed") })}`);
      // The cap is 704; the test's own /healthz connection from the start may still hold a slot.
      assert(served >= 700 && served <= 704, `served ${served}`);
      assert(refused > 0, "some got 503");
      assertEquals(served + refused + count(outcomes, "closed"), 1024);
      // Once the refused connections are gone, a new request over the cap gets a 503 with the JSON envelope.
      const kept = conns.filter((_, i) => outcomes[i] === 200);
      await Promise.all(conns.filter((_, i) => outcomes[i] !== 200).map((conn) => closedAfter(conn, 0)));
      const over = await Deno.connect({ hostname: "127.0.0.1", port });
      const text = await exchange(over, "/healthz", { close: false });
      over.close();
      assert(text.startsWith("HTTP/1.1 503 Service Unavailable\r\n"), text);
      assertStringIncludes(text, "x-request-id: ");
      assertEquals(JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)).code, "503");
      const t0 = performance.now();
      for (const conn of kept) conn.close();
      await waitFor(() => healthy(port), { timeoutMs: 5000, what: "/healthz after the connections closed" });
      console.log(`RESULT ${JSON.stringify({ serveAgainMs: Math.round(performance.now() - t0) })}`);
    } finally {
      assertEquals(await daemon.stop(), 0);
    }
  },
});

Deno.test({
  name: "an accept loop out of file descriptors backs off, logs once, and serves again within 5 s",
  ignore: skipUnless(hasCommand("prlimit"), "prlimit (util-linux) is not installed"),
  async fn() {
    // A cap above the fd limit, so the process really runs out of descriptors (the daemon's cap never lets it).
    const argv = [Deno.execPath(), "run", "-A", `${ROOT}tests/support/serve_app_cli.ts`, "--max-connections", "1000"];
    const child = new Deno.Command("prlimit", {
      args: ["--nofile=128:128", "--", ...argv],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let err = "";
    const reading = (async () => {
      for await (const chunk of child.stderr) err += decoder.decode(chunk, { stream: true });
    })();
    const stdout = child.stdout.getReader();
    try {
      const { port } = JSON.parse(decoder.decode((await stdout.read()).value));
      const conns: Deno.Conn[] = [];
      for (let i = 0; i < 200; i++) conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      await waitFor(() => err.includes("Cannot accept connections"), { what: "the accept error in the log" });
      assertStringIncludes(err, "Too many open files");
      const t0 = performance.now();
      for (const conn of conns) conn.close();
      await waitFor(() => healthy(port), { timeoutMs: 5000, what: "/healthz after the connections closed" });
      const ms = Math.round(performance.now() - t0);
      await waitFor(() => err.includes("Accepting connections on port"), { what: "the recovery in the log" });
      const failures = err.split("Cannot accept connections").length - 1;
      console.log(`RESULT ${JSON.stringify({ serveAgainMs: ms, acceptErrorLines: failures })}`);
      assert(failures <= 3, `the accept error was logged ${failures} times`);
    } finally {
      stdout.releaseLock();
      await child.stdout.cancel();
      await stopChild(child, { killAfterMs: 5000 });
      await reading;
    }
  },
});

Deno.test("the daemon's defaults: half a request head closed after 10 s, an idle keep-alive one after 30 s", async () => {
  const port = freePort();
  const daemon = await startDaemon(["--local"], { port });
  try {
    const t0 = performance.now();
    const half = await Deno.connect({ hostname: "127.0.0.1", port });
    await half.write(encoder.encode("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    const idle = await Deno.connect({ hostname: "127.0.0.1", port });
    assertEquals(await ask(idle, "/healthz", { close: false }), 200);
    const t1 = performance.now();
    const [halfMs, idleMs] = await Promise.all([closedAfter(half, t0), closedAfter(idle, t1)]);
    half.close();
    idle.close();
    console.log(`RESULT ${JSON.stringify({ halfHeadClosedMs: Math.round(halfMs), idleClosedMs: Math.round(idleMs) })}`);
    assert(halfMs >= 9900 && halfMs < 13_000, `half head closed after ${Math.round(halfMs)} ms`);
    assert(idleMs >= 29_900 && idleMs < 33_000, `idle connection closed after ${Math.round(idleMs)} ms`);
  } finally {
    assertEquals(await daemon.stop(), 0);
  }
});

/** Samples a process's RSS every 50 ms while `work` runs; resolves with the work's result and the peak. */
async function withPeak<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = rssMb(pid);
  let running = true;
  const sampling = (async () => {
    while (running) {
      peak = Math.max(peak, rssMb(pid));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    return { result: await work(), peak };
  } finally {
    running = false;
    await sampling;
  }
}

/** Waits until the RSS is under the budget (failing after 2 min); returns how long that took and the RSS then. */
async function backUnderBudget(pid: number): Promise<{ ms: number; rss: number }> {
  const t0 = performance.now();
  await waitFor(() => rssMb(pid) < BUDGET_MB, { timeoutMs: 120_000, what: `RSS under ${BUDGET_MB} MB` });
  return { ms: Math.round(performance.now() - t0), rss: rssMb(pid) };
}

Deno.test("2,000 concurrent clients, one-shot then kept alive: every one answered, RSS under 96 MB within 2 min", async () => {
  const port = freePort();
  const daemon = await startDaemon(["--local"], { port });
  const pid = daemon.child.pid;
  const paths = ["/api/v1/status", "/metrics"];
  try {
    const before = rssMb(pid);
    // One request each, `Connection: close`.
    const oneShot = await withPeak(pid, () =>
      Promise.all(Array.from({ length: 2000 }, async (_, i) => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        try {
          return await ask(conn, paths[i % 2], { close: true });
        } finally {
          conn.close();
        }
      })));
    const outcomes = oneShot.result;
    const served = count(outcomes, 200);
    const refused = count(outcomes, 503);
    const closed = count(outcomes, "closed");
    assertEquals(served + refused + closed, 2000, `other answers: ${outcomes.filter((o) => o !== 200 && o !== 503)}`);
    assert(served >= 1000, `served ${served}`);
    const afterOneShot = await backUnderBudget(pid);

    // One request each, then the clients stay connected: the server closes them after its 30 s idle timeout.
    const conns: Deno.Conn[] = [];
    const keptAlive = await withPeak(pid, () =>
      Promise.all(Array.from({ length: 2000 }, async (_, i) => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(conn);
        return await ask(conn, paths[i % 2], { close: false });
      })));
    const kept = count(keptAlive.result, 200);
    assertEquals(kept + count(keptAlive.result, 503) + count(keptAlive.result, "closed"), 2000);
    assert(kept >= 1000 && kept <= 1024, `kept alive ${kept}`);
    const afterKeptAlive = await backUnderBudget(pid);
    for (const conn of conns) conn.close();
    console.log(`RESULT ${
      JSON.stringify({
        before,
        oneShot: { peak: oneShot.peak, served, refused, closed, ...afterOneShot },
        keptAlive: { peak: keptAlive.peak, served: kept, refused: count(keptAlive.result, 503), ...afterKeptAlive },
      })
    }`);
    assert(await healthy(port));
  } finally {
    assertEquals(await daemon.stop(), 0);
  }
});

Deno.test("a port already taken fails the start with exit 1 and a line naming the port", async () => {
  const taken = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    const { code, stderr } = await runMain(["--local", "--port", String(port)]);
    assertEquals(code, 1, stderr);
    assertStringIncludes(stderr, `Cannot listen on port ${port}: Address already in use`);
  } finally {
    taken.close();
  }
});

Deno.test({
  name: "dual stack: 127.0.0.1 and [::1] reach the daemon; with IPv6 off in a namespace it serves on IPv4",
  ignore: skipUnless(canMakeNetns() && hasCommand("curl") && hasCommand("ss"), "needs root, iproute2 and curl"),
  async fn() {
    const port = freePort();
    const daemon = await startDaemon(["--local"], { port });
    try {
      assertStringIncludes(daemon.stderr(), `Listening on :: port ${port}`);
      for (const host of ["127.0.0.1", "::1"]) assert(await healthy(port, host), host);
    } finally {
      assertEquals(await daemon.stop(), 0);
    }
    const ns = await createNetns();
    try {
      const off = await ns.exec(["sysctl", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
      assertEquals(off.code, 0, off.stderr);
      const { process } = await startIn(ns, daemonCommand(["--local", "--port", String(port)]), { cwd: ROOT });
      try {
        const curl = ["curl", "-sf", "--max-time", "2"];
        const answer = await waitFor(async () => {
          const r = await ns.exec([...curl, `http://127.0.0.1:${port}/healthz`]);
          return r.code === 0 ? r.stdout : "";
        }, { timeoutMs: 30_000, what: "/healthz on 127.0.0.1 inside the namespace" });
        assertEquals(JSON.parse(answer), { status: "ok" });
        const v6 = await ns.exec([...curl, "-g", `http://[::1]:${port}/healthz`]);
        assert(v6.code !== 0, "no IPv6 in the namespace");
        const listening = await ns.exec(["ss", "-Htln", `sport = :${port}`]);
        assertEquals(listening.stdout.trim().split("\n").length, 1, listening.stdout);
      } finally {
        await process.stop();
      }
    } finally {
      await ns.remove();
    }
  },
});
