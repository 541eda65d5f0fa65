import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { getLogger } from "@logtape/logtape";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { createKubeClient } from "../../k8s/client.ts";
import { applyConfigMap } from "../../k8s/config_maps.ts";
import { KubeError } from "../../k8s/errors.ts";
import { createEventSink, uploadBody } from "../../k8s/events.ts";
import { systemClock } from "../../core/types.ts";
import { waitFor } from "../support/daemon_process.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";

Deno.test("a burst of 100 writes spreads over time as the rate limit says", async () => {
  const { server, kube, close } = await startFakeCluster({ client: { userAgent: "psd-test/1", qps: 50, burst: 10 } });
  try {
    await Promise.all(
      Array.from(
        { length: 100 },
        (_, i) => kube.createConfigMap({ metadata: { name: `cm-${i}` }, data: { i: String(i) } }),
      ),
    );
    const writes = server.requests.filter((r) => r.method === "POST").map((r) => r.time).sort((a, b) => a - b);
    assertEquals(writes.length, 100);
    const span = writes[99] - writes[0];
    // 10 at once, then 50 per second: the other 90 need at least 1.8 s.
    assert(span >= 1700, `100 writes within ${span} ms`);
    assertEquals(new Set(server.requests.map((r) => r.userAgent)), new Set(["psd-test/1"]));
  } finally {
    await close();
  }
});

Deno.test("5xx and dropped connections are retried; 429 honours Retry-After; 4xx fail at once with the object named", async () => {
  const retries: number[] = [];
  const { server, kube, close } = await startFakeCluster({
    client: { userAgent: "t", backoffCapMs: 50, onRetry: ({ delayMs }) => retries.push(delayMs) },
  });
  try {
    server.injectFault({
      method: "GET",
      pathPrefix: "/api/v1/namespaces/kube-system/configmaps/",
      count: 2,
      status: 500,
    });
    assertEquals(await kube.getConfigMap("absent"), null);
    assertEquals(retries.length, 2);
    server.injectFault({ pathPrefix: "/api/v1/namespaces/kube-system/configmaps", count: 1, drop: true });
    await kube.createConfigMap({ metadata: { name: "x" }, data: {} });
    assertEquals(server.get("configmaps", "kube-system", "x")?.metadata.name, "x");
    const slow = createKubeClient(server.connection(), { userAgent: "t", backoffCapMs: 5000 });
    server.injectFault({ method: "GET", pathPrefix: "/api/v1/nodes/", count: 1, status: 429, retryAfter: 1 });
    const t0 = performance.now();
    assertEquals(await slow.getNode("nope"), null);
    assert(performance.now() - t0 >= 950, "waited for Retry-After");
    const error = await assertRejects(
      () => kube.createConfigMap({ metadata: { name: "x" }, data: {} }),
      KubeError,
      'Cannot create ConfigMap "x": 409',
    );
    assertEquals((error as KubeError).reason, "AlreadyExists");
  } finally {
    await close();
  }
});

Deno.test("a request with no answer times out with a clear message", async () => {
  const { server, kube, close } = await startFakeCluster({ client: { userAgent: "t", timeoutMs: 200, retries: 0 } });
  try {
    server.injectFault({ method: "GET", pathPrefix: "/api/v1/nodes/", count: 1, delayMs: 1000 });
    await assertRejects(() => kube.getNode("n1"), KubeError, 'Cannot get Node "n1": no answer within 200 ms');
  } finally {
    await close();
  }
});

Deno.test("applyConfigMap creates, replaces, leaves alone, and re-decides after a conflict", async () => {
  const { server, kube, close } = await startFakeCluster({ client: { userAgent: "t", backoffCapMs: 10 } });
  try {
    const always = (configMap: V1ConfigMap | null) => () => configMap;
    let result = await applyConfigMap(kube, "cm", { plan: always({ data: { a: "1" } }), desired: (plan) => plan });
    assertEquals([result.written, result.created], [true, true]);
    result = await applyConfigMap(kube, "cm", { plan: always(null), desired: (plan) => plan });
    assertEquals(result.written, false);
    let decisions = 0;
    const applied = await applyConfigMap(kube, "cm", {
      plan: (current) => {
        decisions++;
        // Someone else writes between our read and our write, once.
        if (decisions === 1) server.put({ ...current, data: { a: "other" } });
        return { decision: decisions, configMap: { ...current, data: { ...current?.data, b: "2" } } };
      },
      desired: (plan) => plan.configMap,
    });
    assertEquals(decisions, 2);
    assertEquals(applied.plan.decision, 2, "the result carries the plan it applied");
    assertEquals(server.get("configmaps", "kube-system", "cm")?.data, { a: "other", b: "2" });
  } finally {
    await close();
  }
});

Deno.test("events: one Event on the Node, a repeat raises its count; the upload carries the original's format", async () => {
  const { server, kube, close } = await startFakeCluster({ client: { userAgent: "t" } });
  const uploads: { url: string; headers: Headers; body: unknown }[] = [];
  try {
    const sink = createEventSink({
      kube,
      node: "node-a",
      log: getLogger(["test"]),
      clock: systemClock,
      upload: {
        url: "http://events.example/",
        timeoutMs: 1000,
        ip: "10.0.0.9",
        fetch: (input, init) => {
          uploads.push({
            url: String(input),
            headers: new Headers(init?.headers),
            body: JSON.parse(String(init?.body)),
          });
          return Promise.resolve(new Response("ok"));
        },
      },
    });
    const event = {
      job: "log-cleanup",
      type: "Warning" as const,
      reason: "TooManyFolders",
      message: "Would remove 30 folders",
    };
    sink.record(event);
    sink.record(event);
    sink.record({ ...event, message: "Something else" });
    await sink.flush();
    const events = server.list("events", "default");
    assertEquals(events.length, 2);
    const first = events.find((e) => e.message === "Would remove 30 folders");
    assertEquals(first.count, 2);
    assertEquals(first.involvedObject, { apiVersion: "v1", kind: "Node", name: "node-a", uid: "node-a" });
    assertEquals(first.type, "Warning");
    assertEquals(uploads.length, 3);
    assertEquals(uploads[0].url, "http://events.example/data/upload");
    assertEquals(uploads[0].headers.get("header1"), "event_resource;log;20210220001;POLAR_STACK");
    assertEquals(uploads[0].headers.get("identityKey"), "node-a;10.0.0.9;");
    const body = uploads[0].body as ReturnType<typeof uploadBody>;
    assertEquals(body.level, "WARN");
    assertEquals(body.source, {
      resourceType: "polardb-o",
      insName: "node-a",
      from: "Polardbstack-Daemon",
      ip: "10.0.0.9",
    });
    assert(body.eventId.startsWith("Polardbstack-Daemon-"));
    assertEquals(body.body, { describe: "Would remove 30 folders" });
  } finally {
    await close();
  }
});

Deno.test("a run's client stops with the run: a pending retry gives up with its cause, nothing is sent late", async () => {
  const { server, kube, close } = await startFakeCluster({
    seed: [{ apiVersion: "v1", kind: "Node", metadata: { name: "node-1" }, status: { conditions: [] } }],
    client: { userAgent: "t", backoffCapMs: 5000, retries: 5 },
  });
  try {
    const patches = () => server.requests.filter((r) => r.method === "PATCH").length;

    // A write failing with 503 waits a second to retry (Retry-After); the run's limit passes meanwhile.
    server.injectFault({ method: "PATCH", pathPrefix: "/api/v1/nodes/", count: 1, status: 503, retryAfter: 1 });
    const run = new AbortController();
    const patch = { status: { conditions: [{ type: "NodeClientIP", status: "True", reason: "bond1", message: "x" }] } };
    const writing = kube.withSignal(run.signal).patchNodeStatus("node-1", patch);
    await waitFor(() => patches() === 1, { what: "the first PATCH" });
    const t0 = performance.now();
    run.abort();
    const error = await assertRejects(() => writing, KubeError);
    assert(performance.now() - t0 < 100, "gave up at once, not after the backoff");
    assertEquals((error as KubeError).status, 503);
    assert(/patch status of Node "node-1": 503/.test(error.message), error.message);
    assert(error.message.endsWith("(no more retries: the run was stopped)"), error.message);
    // Past the 1 s Retry-After: a span in which the abandoned retry must not be sent.
    await new Promise((r) => setTimeout(r, 1500));
    assertEquals(patches(), 1, "the retry was never sent");
    assertEquals(server.get("nodes", "", "node-1")?.status?.conditions, []);

    // A call in flight is cancelled; a call after the stop is not sent at all.
    server.injectFault({ method: "GET", pathPrefix: "/api/v1/nodes/", count: 1, delayMs: 5000 });
    const slow = new AbortController();
    const reading = kube.withSignal(slow.signal).getNode("node-1");
    // The run stops while the call is in flight: an action during the call, not a wait.
    setTimeout(() => slow.abort(), 100);
    await assertRejects(() => reading, KubeError, 'Cannot get Node "node-1": the run was stopped');
    const before = server.requests.length;
    await assertRejects(() => kube.withSignal(slow.signal).getNode("node-1"), KubeError, "the run was stopped");
    assertEquals(server.requests.length, before);

    // The daemon's own client is not stopped by a run's signal.
    assertEquals((await kube.getNode("node-1"))?.metadata?.name, "node-1");
  } finally {
    await close();
  }
});

Deno.test("a Retry-After holds the client's next calls, also those of the next run after the first was stopped", async () => {
  const { server, kube, close } = await startFakeCluster({
    seed: [{ apiVersion: "v1", kind: "Node", metadata: { name: "node-1" }, status: { conditions: [] } }],
    client: { userAgent: "t", backoffCapMs: 5000, retries: 5 },
  });
  try {
    server.injectFault({ method: "PATCH", pathPrefix: "/api/v1/nodes/", count: 1, status: 429, retryAfter: 2 });
    const first = new AbortController();
    const patch = { status: { conditions: [{ type: "NodeClientIP", status: "True", reason: "bond1", message: "x" }] } };
    const writing = kube.withSignal(first.signal).patchNodeStatus("node-1", patch);
    await waitFor(() => server.requests.length === 1, { what: "the PATCH answered 429" });
    first.abort();
    await assertRejects(() => writing, KubeError, "429");

    // A run stopped while the server's wait lasts gives up without sending anything.
    const second = new AbortController();
    const held = kube.withSignal(second.signal).getNode("node-1");
    second.abort();
    await assertRejects(() => held, KubeError, "the run was stopped while the API server's Retry-After lasted");
    assertEquals(server.requests.length, 1);

    // The next run's call waits out the 2 s the server asked for, then goes.
    assertEquals((await kube.withSignal(new AbortController().signal).getNode("node-1"))?.metadata?.name, "node-1");
    const [limited, next] = server.requests;
    assertEquals([limited.status, next.method], [429, "GET"]);
    assert(
      next.time - limited.time >= 1950,
      `the GET after a 429 with Retry-After: 2 came ${next.time - limited.time} ms later`,
    );
  } finally {
    await close();
  }
});
