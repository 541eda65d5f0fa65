import { assert, assertEquals } from "../support/assert.ts";
import { getLogger } from "@logtape/logtape";
import { createApp } from "../../api/app.ts";
import { createTokenReviewAuthorizer } from "../../api/auth.ts";
import { createMetrics } from "../../api/metrics.ts";
import { serveApp } from "../../api/server.ts";
import { type CronRegistrar, Scheduler } from "../../controllers/scheduler.ts";
import { type Controller, systemClock } from "../../core/types.ts";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { waitFor } from "../support/daemon_process.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";

const noCron: CronRegistrar = () => Promise.resolve();
const JOBS = ["port-usage", "core-version", "log-cleanup", "node-network"];

async function setUp() {
  const { server, kube, close } = await startFakeCluster({
    client: { retries: 0, qps: 1000, burst: 1000 },
    seed: [
      {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: "n1" },
        status: { conditions: [{ type: "StandbyIP", status: "True", message: "10.1.2.3" }] },
      },
      { apiVersion: "v1", kind: "Pod", metadata: { name: "db-0", namespace: "default" }, spec: { nodeName: "n1" } },
    ],
  });
  server.addToken("other-token", {
    username: "system:serviceaccount:default:someone",
    groups: ["system:authenticated"],
    audiences: ["polarstack-daemon"],
  });
  const controllers: Controller[] = JOBS.map((name) => ({
    name,
    schedule: { cron: "* * * * *" },
    runAtStart: true,
    timeoutMs: 1000,
    run: () => Promise.resolve({ summary: "ok", result: { node: "n1" } }),
  }));
  const scheduler = new Scheduler(controllers, { clock: systemClock, log: getLogger(["test"]), cron: noCron });
  scheduler.start();
  const app = createApp({
    jobs: scheduler,
    kube,
    clusterState: () => ({ reachable: true, reason: "" }),
    metrics: createMetrics(),
    log: getLogger(["test"]),
    node: "n1",
    fanOut: () => {},
    authorize: createTokenReviewAuthorizer({
      kube,
      allowedUsers: ["system:serviceaccount:kube-system:polarstack-daemon"],
      clock: systemClock,
    }),
  });
  await waitFor(() => scheduler.notYetRun().length === 0, { what: "the first run of every job" });
  return { server, app, scheduler, close };
}

Deno.test("POST endpoints: 401 without a token bound to polarstack-daemon, 403 for another user, 200 for the daemon's account; reviews cached", async () => {
  const { server, app, close } = await setUp();
  try {
    const post = (auth?: string) =>
      app.request("/api/v1/InnerCheckCoreVersion", { method: "POST", headers: auth ? { Authorization: auth } : {} });
    let res = await post();
    assertEquals(res.status, 401);
    assertEquals((await res.json()).code, "401");
    assertEquals((await post("Bearer not-a-token")).status, 401);
    // The daemon's own account, but with the token that opens the API server: refused, as a sniffed one would be.
    server.clearRequests();
    res = await post(`Bearer ${server.token}`);
    assertEquals(res.status, 401);
    assertEquals(
      (await res.json()).message,
      'Invalid bearer token: the API server did not accept it for the audience "polarstack-daemon"',
    );
    const asked = JSON.parse(server.requests.find((r) => r.path.endsWith("/tokenreviews"))!.body);
    assertEquals(asked.spec.audiences, ["polarstack-daemon"]);
    res = await post("Bearer other-token");
    assertEquals(res.status, 403);
    assertEquals((await res.json()).message.includes('User "system:serviceaccount:default:someone"'), true);
    server.clearRequests();
    assertEquals((await post(`Bearer ${server.peerToken}`)).status, 200);
    assertEquals((await post(`Bearer ${server.peerToken}`)).status, 200);
    const reviews = server.requests.filter((r) => r.path.endsWith("/tokenreviews"));
    assertEquals(reviews.length, 1, "the second call used the cached review");
    // GETs stay open.
    assertEquals((await app.request("/api/v1/versions")).status, 200);
  } finally {
    await close();
  }
});

Deno.test("GetStandByIp reads the StandbyIP condition of the pod's node", async () => {
  const { server, app, close } = await setUp();
  try {
    let res = await app.request("/api/v1/GetStandByIp?podName=db-0");
    assertEquals(await res.json(), {
      code: "1",
      data: "10.1.2.3",
      message: "",
      requestId: res.headers.get("x-request-id"),
    });
    res = await app.request("/api/v1/GetStandByIp?podName=missing");
    assertEquals(res.status, 404);
    assertEquals((await res.json()).message, 'Pod "default/missing" not found');
    server.put({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "n1" },
      status: { conditions: [{ type: "StandbyIP", status: "True", message: "not-an-ip" }] },
    });
    res = await app.request("/api/v1/GetStandByIp?podName=db-0");
    assertEquals(res.status, 422);
    server.put({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "n1" },
      status: { conditions: [{ type: "StandbyIP", status: "False", message: "10.1.2.3" }] },
    });
    res = await app.request("/api/v1/GetStandByIp?podName=db-0");
    assertEquals((await res.json()).message, 'Condition StandbyIP of Node "n1" is False');
    server.put({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "n1" },
      status: { conditions: [{ type: "StandbyIP", status: "Unknown", message: "10.1.2.4" }] },
    });
    res = await app.request("/api/v1/GetStandByIp?podName=db-0");
    assertEquals(res.status, 200, "Unknown is not an error: only False is");
    assertEquals((await res.json()).data, "10.1.2.4");
  } finally {
    await close();
  }
});

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

Deno.test("fuzz: 10,000 generated requests never get a 5xx of our making, and every answer is JSON", async () => {
  const { server, app, close } = await setUp();
  const random = rng(20261125);
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)];
  const paths = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/TestConn",
    "/api/v1/status",
    "/api/v1/ports",
    "/api/v1/versions",
    "/api/v1/log-cleanup",
    "/api/v1/node-network",
    "/api/v1/GetStandByIp",
    "/api/v1/RequestCheckCoreVersion",
    "/api/v1/InnerCheckCoreVersion",
    "/api/v1/",
    "/api/v2/ports",
    "/",
    "/%00",
    "/api/v1/..%2f..%2fetc/passwd",
    "/api/v1/ports/extra",
    "/" + "a".repeat(5000),
    "/api/v1/Ƥørts",
    "//api//v1//TestConn",
  ];
  const methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
  const queryValues = ["db-0", "", "%", "%zz", "a".repeat(3000), "../x", "x\u0000y", "db-0&podName=x", "ü", "1e309"];
  const bodies = ['{"HostName":"n2"}', "{", "null", "[]", '{"HostName":123}', "\u0000\u0001", "x".repeat(70_000), ""];
  const tokens = [undefined, "Bearer x", `Bearer ${server.token}`, "Basic abc", "Bearer " + "t".repeat(5000), "Bearer"];
  // What is still alive after a full collection: RSS would measure when V8 last collected, not what the app keeps.
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const live = () => (gc(), Deno.memoryUsage().heapUsed);
  const before = live();
  let count = 0;
  try {
    for (let i = 0; i < 10_000; i++) {
      let path = pick(paths);
      if (random() < 0.5) path += `?podName=${encodeURIComponent(pick(queryValues))}&namespace=${pick(queryValues)}`;
      const method = pick(methods);
      const headers: Record<string, string> = {};
      const token = pick(tokens);
      if (token) headers.Authorization = token;
      if (random() < 0.3) headers["X-Request-Id"] = pick(["ok-id", "", "bad id\t", "x".repeat(500)]);
      const body = method === "GET" || method === "HEAD" ? undefined : pick(bodies);
      let res: Response;
      try {
        res = await app.request(`http://localhost${path}`, { method, headers, body });
      } catch (error) {
        // A URL the Request constructor itself refuses never reaches the server.
        if (error instanceof TypeError) continue;
        throw error;
      }
      count++;
      assert(res.status < 500 || res.status === 502, `${method} ${path.slice(0, 80)} -> ${res.status}`);
      if (method !== "HEAD") {
        const text = await res.text();
        if (!path.startsWith("/metrics") || res.status !== 200) JSON.parse(text);
      }
    }
  } finally {
    await close();
  }
  assert(count >= 9_000, `requests sent: ${count}`);
  const growth = live() - before;
  assert(growth < 16 * 1024 * 1024, `the live heap grew by ${Math.round(growth / 1048576)} MB`);
});

Deno.test("1,000 concurrent connections, slow and half-closed clients: answered, no crash", async () => {
  const { app, close } = await setUp();
  const http = serveApp(app.fetch, { port: 0, hostname: "127.0.0.1" });
  const port = http.port;
  try {
    // A slow client that sends half a request and a half-closed one that sends nothing.
    const slow = await Deno.connect({ hostname: "127.0.0.1", port });
    await slow.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    const half = await Deno.connect({ hostname: "127.0.0.1", port });
    await half.closeWrite();
    const statuses = await Promise.all(
      Array.from({ length: 1000 }, async (_, i) => {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/${i % 2 ? "TestConn" : "status"}`);
        await res.body?.cancel();
        return res.status;
      }),
    );
    assertEquals(statuses.filter((s) => s === 200).length, 1000);
    slow.close();
    half.close();
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    assertEquals(await res.json(), { status: "ok" });
  } finally {
    await http.shutdown();
    await close();
  }
});
