import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { type FakeKubeApiServer, fakeKubeApiServerCommand, startFakeKubeApiServer } from "./server.ts";
import { openWatch, type WatchEvent } from "./watch_stream.ts";

const NS = "kube-system";
const CMS = `/api/v1/namespaces/${NS}/configmaps`;

function configMap(name: string, data: Record<string, string>, labels?: Record<string, string>) {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: NS, labels }, data };
}

/** A call with the admin token; returns status and JSON. */
async function call(server: FakeKubeApiServer, method: string, path: string, options: { body?: unknown } = {}) {
  const body = options.body;
  const client = Deno.createHttpClient({ caCerts: [server.caCert] });
  try {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${server.adminToken}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      client,
    });
    const text = await response.text();
    return { status: response.status, json: text ? JSON.parse(text) : null };
  } finally {
    client.close();
  }
}

async function withServer(
  fn: (server: FakeKubeApiServer) => Promise<void>,
  options: Parameters<typeof startFakeKubeApiServer>[0] = {},
): Promise<void> {
  const server = await startFakeKubeApiServer(options);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

function summary(event: WatchEvent | null): [string, string, string] | null {
  return event && [event.type, event.object.metadata?.name, event.object.metadata?.resourceVersion];
}

Deno.test("a watch from a list's resourceVersion sees ADDED, MODIFIED and DELETED in order, and can resume", async () => {
  await withServer(async (server) => {
    await call(server, "POST", CMS, { body: configMap("before", { a: "0" }) });
    const list = await call(server, "GET", CMS);
    const from = list.json.metadata.resourceVersion;
    assertEquals(list.json.items.length, 1);
    const watch = await openWatch(server, `${CMS}?watch=true&resourceVersion=${from}`);
    try {
      assertEquals(watch.status, 200);
      assertEquals(watch.headers.get("content-type"), "application/json");
      const created = await call(server, "POST", CMS, { body: configMap("cm", { a: "1" }) });
      const replaced = await call(server, "PUT", `${CMS}/cm`, { body: { ...created.json, data: { a: "2" } } });
      const deleted = await call(server, "DELETE", `${CMS}/cm`);
      assertEquals(deleted.status, 200);
      const events = [await watch.next(), await watch.next(), await watch.next()];
      const deletedAt = String(Number(replaced.json.metadata.resourceVersion) + 1);
      assertEquals(events.map(summary), [
        ["ADDED", "cm", created.json.metadata.resourceVersion],
        ["MODIFIED", "cm", replaced.json.metadata.resourceVersion],
        ["DELETED", "cm", deletedAt],
      ]);
      assertEquals(events.map((e) => [e!.object.kind, e!.object.apiVersion, e!.object.data]), [
        ["ConfigMap", "v1", { a: "1" }],
        ["ConfigMap", "v1", { a: "2" }],
        ["ConfigMap", "v1", { a: "2" }],
      ]);
      assertEquals((await call(server, "GET", CMS)).json.metadata.resourceVersion, deletedAt);

      // A second watch from the same version replays the same changes from the server's history (watch=1 too).
      const again = await openWatch(server, `${CMS}?watch=1&resourceVersion=${from}`);
      try {
        const replayed = [await again.next(), await again.next(), await again.next()];
        assertEquals(replayed.map(summary), events.map(summary));
      } finally {
        await again.close();
      }
    } finally {
      await watch.close();
    }
  });
});

Deno.test("a watch without resourceVersion, or from 0, first sends the current objects as ADDED", async () => {
  await withServer(async (server) => {
    server.put(configMap("a", { x: "1" }));
    server.put(configMap("b", { x: "2" }));
    server.put({ ...configMap("elsewhere", {}), metadata: { name: "elsewhere", namespace: "default" } });
    for (const query of ["watch=true", "watch=true&resourceVersion=0"]) {
      const watch = await openWatch(server, `${CMS}?${query}`);
      try {
        assertEquals([summary(await watch.next()), summary(await watch.next())], [
          ["ADDED", "a", server.get("configmaps", NS, "a").metadata.resourceVersion],
          ["ADDED", "b", server.get("configmaps", NS, "b").metadata.resourceVersion],
        ]);
        const changed = server.put(configMap("a", { x: query }));
        assertEquals(summary(await watch.next()), ["MODIFIED", "a", changed.metadata.resourceVersion]);
      } finally {
        await watch.close();
      }
    }
  });
});

Deno.test("bookmarks arrive only when allowed, carrying only the current resourceVersion", async () => {
  await withServer(async (server) => {
    const from = (await call(server, "GET", CMS)).json.metadata.resourceVersion;
    const plain = await openWatch(server, `${CMS}?watch=true&resourceVersion=${from}`);
    const marked = await openWatch(server, `${CMS}?watch=true&resourceVersion=${from}&allowWatchBookmarks=true`);
    try {
      assertEquals(await marked.next(), {
        type: "BOOKMARK",
        object: { kind: "ConfigMap", apiVersion: "v1", metadata: { resourceVersion: from } },
      });
      const created = server.put(configMap("cm", {}));
      assertEquals(summary(await marked.next()), ["ADDED", "cm", created.metadata.resourceVersion]);
      const bookmark = await marked.next();
      assertEquals(bookmark?.type, "BOOKMARK");
      assertEquals(bookmark?.object.metadata, { resourceVersion: created.metadata.resourceVersion });
      // Two bookmarks went to the other watch meanwhile; this one's first event is the object.
      assertEquals(summary(await plain.next()), ["ADDED", "cm", created.metadata.resourceVersion]);
    } finally {
      await plain.close();
      await marked.close();
    }
  }, { bookmarkIntervalMs: 50 });
});

Deno.test("a watch from a compacted resourceVersion gets a 410 Expired ERROR event in a 200 stream, which ends", async () => {
  await withServer(async (server) => {
    server.put(configMap("first", {}));
    const from = (await call(server, "GET", CMS)).json.metadata.resourceVersion;
    server.put(configMap("cm", { a: "1" }));
    server.put(configMap("cm", { a: "2" }));
    server.compact();
    const now = server.get("configmaps", NS, "cm").metadata.resourceVersion;
    const watch = await openWatch(server, `${CMS}?watch=true&resourceVersion=${from}`);
    assertEquals(watch.status, 200);
    assertEquals(await watch.next(), {
      type: "ERROR",
      object: {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: `too old resource version: ${from} (${now})`,
        reason: "Expired",
        code: 410,
      },
    });
    assertEquals(await watch.next(), null);
    assertEquals(server.watches(), []);
    // From the current version, the watch works.
    const current = await openWatch(server, `${CMS}?watch=true&resourceVersion=${now}`);
    try {
      const changed = server.put(configMap("cm", { a: "3" }));
      assertEquals(summary(await current.next()), ["MODIFIED", "cm", changed.metadata.resourceVersion]);
    } finally {
      await current.close();
    }
  });
});

Deno.test("the history keeps the last historyLimit events: an older resourceVersion is Expired", async () => {
  await withServer(async (server) => {
    for (let i = 1; i <= 5; i++) server.put(configMap("cm", { i: String(i) }));
    const expired = await openWatch(server, `${CMS}?watch=true&resourceVersion=1`);
    assertEquals((await expired.next())?.object.message, "too old resource version: 1 (2)");
    assertEquals(await expired.next(), null);
    const kept = await openWatch(server, `${CMS}?watch=true&resourceVersion=2`);
    try {
      const events = [await kept.next(), await kept.next(), await kept.next()];
      assertEquals(events.map((e) => e?.object.data.i), ["3", "4", "5"]);
    } finally {
      await kept.close();
    }
  }, { historyLimit: 3 });
});

Deno.test("label and field selectors: an object entering the selection is ADDED, leaving it DELETED", async () => {
  await withServer(async (server) => {
    server.put(configMap("blue", {}, { color: "blue" }));
    server.put(configMap("red", {}, { color: "red" }));
    const watch = await openWatch(server, `${CMS}?watch=true&labelSelector=${encodeURIComponent("color in (blue)")}`);
    const named = await openWatch(server, `${CMS}?watch=true&fieldSelector=metadata.name%3Dred`);
    try {
      assertEquals(summary(await watch.next()), [
        "ADDED",
        "blue",
        server.get("configmaps", NS, "blue").metadata.resourceVersion,
      ]);
      assertEquals(summary(await named.next()), [
        "ADDED",
        "red",
        server.get("configmaps", NS, "red").metadata.resourceVersion,
      ]);
      const turned = server.put(configMap("red", {}, { color: "blue" }));
      const left = server.put(configMap("blue", { gone: "yes" }, { color: "green" }));
      server.put(configMap("green", {}, { color: "green" }));
      const touched = server.put(configMap("red", { touched: "yes" }, { color: "blue" }));
      const events = [await watch.next(), await watch.next(), await watch.next()];
      assertEquals(events.map(summary), [
        ["ADDED", "red", turned.metadata.resourceVersion],
        ["DELETED", "blue", left.metadata.resourceVersion],
        ["MODIFIED", "red", touched.metadata.resourceVersion],
      ]);
      // The object that left is reported in its last state that matched.
      assertEquals(events[1]!.object.metadata.labels, { color: "blue" });
      assertEquals([summary(await named.next()), summary(await named.next())], [
        ["MODIFIED", "red", turned.metadata.resourceVersion],
        ["MODIFIED", "red", touched.metadata.resourceVersion],
      ]);
    } finally {
      await watch.close();
      await named.close();
    }
    const bad = await openWatch(server, `${CMS}?watch=true&labelSelector=${encodeURIComponent("a in ()")}`);
    assertEquals([bad.status, bad.failure?.reason], [400, "BadRequest"]);
    const field = await openWatch(server, `${CMS}?watch=true&fieldSelector=data.x%3D1`);
    assertEquals([field.status, field.failure?.message], [400, "field label not supported: data.x"]);
  });
});

Deno.test("a watch in one namespace, and across all namespaces", async () => {
  await withServer(async (server) => {
    const pod = (namespace: string, name: string) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace },
      spec: { nodeName: "node-1" },
    });
    const all = await openWatch(server, "/api/v1/pods?watch=true&resourceVersion=0");
    const one = await openWatch(server, "/api/v1/namespaces/db/pods?watch=true&resourceVersion=0");
    try {
      server.put(pod("other", "a"));
      server.put(pod("db", "b"));
      assertEquals([await all.next(), await all.next()].map((e) => e?.object.metadata.namespace), ["other", "db"]);
      assertEquals((await one.next())?.object.metadata.name, "b");
    } finally {
      await all.close();
      await one.close();
    }
  });
});

Deno.test("timeoutSeconds ends the stream cleanly", async () => {
  await withServer(async (server) => {
    const started = Date.now();
    const watch = await openWatch(server, `${CMS}?watch=true&timeoutSeconds=1`);
    assertEquals(await watch.next(3000), null);
    assert(Date.now() - started >= 900, "the stream lasted about its timeout");
    assertEquals(server.watches(), []);
  });
});

Deno.test("dropped watches end their streams; cut ones fail the reader; open ones are listed", async () => {
  await withServer(async (server) => {
    const a = await openWatch(server, `${CMS}?watch=true`);
    const b = await openWatch(server, "/api/v1/nodes?watch=true&allowWatchBookmarks=true");
    assertEquals(server.watches().map((w) => [w.path, w.query]), [
      [CMS, "watch=true"],
      ["/api/v1/nodes", "watch=true&allowWatchBookmarks=true"],
    ]);
    assertEquals(server.dropWatches(), 2);
    assertEquals([await a.next(), await b.next()], [null, null]);
    assertEquals(server.watches(), []);
    const c = await openWatch(server, `${CMS}?watch=true`);
    assertEquals(server.dropWatches({ cut: true }), 1);
    await assertRejects(() => c.next(), TypeError, "error reading a body");
    await c.close();
  });
});

Deno.test("faults: watch-only statuses for new watches; open watches are cut, ended with an ERROR, or stalled", async () => {
  await withServer(async (server) => {
    server.injectFault({ pathPrefix: CMS, count: 1, watch: true, status: 503 });
    assertEquals((await call(server, "GET", CMS)).status, 200);
    const refused = await openWatch(server, `${CMS}?watch=true`);
    assertEquals([refused.status, refused.failure?.message], [503, "injected fault: 503"]);

    const ended = await openWatch(server, `${CMS}?watch=true`);
    const cut = await openWatch(server, "/api/v1/nodes?watch=true");
    server.injectFault({ pathPrefix: CMS, count: 1, status: 500 });
    assertEquals(await ended.next(), {
      type: "ERROR",
      object: {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: "injected fault: 500",
        reason: "InternalError",
        code: 500,
      },
    });
    assertEquals(await ended.next(), null);
    server.injectFault({ method: "GET", pathPrefix: "/api/", count: 1, drop: true });
    await assertRejects(() => cut.next(), TypeError, "error reading a body");
    await cut.close();
    server.clearFaults();

    const stalled = await openWatch(server, `${CMS}?watch=true`);
    try {
      server.injectFault({ pathPrefix: "/api/v1/", count: 1, delayMs: 400 });
      const started = Date.now();
      const created = server.put(configMap("late", {}));
      assertEquals(summary(await stalled.next()), ["ADDED", "late", created.metadata.resourceVersion]);
      assert(Date.now() - started >= 350, "the event came after the hang");
    } finally {
      await stalled.close();
    }
  });
});

Deno.test("the watch verb is checked: the daemon's token may list pods but not watch them", async () => {
  await withServer(async (server) => {
    const token = server.token;
    assertEquals((await openWatch(server, "/api/v1/pods?watch=false", { token })).status, 200);
    const watch = await openWatch(server, "/api/v1/pods?watch=true", { token });
    assertEquals(watch.status, 403);
    assertEquals(
      watch.failure?.message,
      `pods is forbidden: User "system:serviceaccount:kube-system:polarstack-daemon" cannot watch resource "pods" in API group "" at the cluster scope`,
    );
    const admin = await openWatch(server, "/api/v1/pods?watch=true");
    assertEquals(admin.status, 200);
    await admin.close();
  });
  const granted = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: "watcher" },
    rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["watch"] }],
  };
  const binding = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: "watcher" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "watcher" },
    subjects: [{ kind: "ServiceAccount", name: "polarstack-daemon", namespace: NS }],
  };
  await withServer(async (server) => {
    const watch = await openWatch(server, `${CMS}?watch=true`, { token: server.token });
    assertEquals(watch.status, 200);
    await watch.close();
    const list = await openWatch(server, CMS, { token: server.token });
    assertEquals(list.status, 403);
  }, { rbac: { objects: [granted, binding] } });
});

Deno.test("as its own process: a seed of MPDClusters and Leases, watches, /_fake/watches and /_fake/compact", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fake-kube-watch-" });
  const seed = [
    { apiVersion: "mpd.polardb.aliyun.com/v1", kind: "MPDCluster", metadata: { name: "pg", namespace: "db" } },
    { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: "l", namespace: NS }, spec: {} },
  ];
  await Deno.writeTextFile(`${dir}/seed.json`, JSON.stringify(seed));
  const token = `t-${crypto.randomUUID()}`;
  const [exe, ...args] = fakeKubeApiServerCommand(["--seed", `${dir}/seed.json`, "--rbac", "off", "--token", token]);
  const process = new Deno.Command(exe, { args, stdout: "piped", stderr: "inherit" }).spawn();
  const lines = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const caCert = await Deno.readTextFile(new URL("./certs/ca.pem", import.meta.url));
  const httpClient = Deno.createHttpClient({ caCerts: [caCert] });
  try {
    const { value } = await lines.read();
    const url = value?.match(/^listening on (https:\/\/127\.0\.0\.1:\d+)$/m)?.[1];
    assert(url, `expected "listening on https://127.0.0.1:PORT", got ${JSON.stringify(value)}`);
    const target = { url, caCert, adminToken: token };
    const request = async (method: string, path: string) => {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}` },
        client: httpClient,
      });
      const text = await response.text();
      return { status: response.status, json: text ? JSON.parse(text) : null };
    };
    const clusters = await request("GET", "/apis/mpd.polardb.aliyun.com/v1/mpdclusters");
    assertEquals(clusters.json.items.map((o: { metadata: { name: string } }) => o.metadata.name), ["pg"]);
    const leases = await request("GET", `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`);
    assertEquals([leases.json.kind, leases.json.items[0].metadata.name], ["LeaseList", "l"]);

    const watch = await openWatch(target, `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases?watch=true`);
    assertEquals((await watch.next())?.object.metadata.name, "l");
    assertEquals((await request("GET", "/_fake/watches")).json.map((w: { path: string }) => w.path), [
      `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`,
    ]);
    assertEquals((await request("POST", "/_fake/watches/drop")).json, { dropped: 1 });
    assertEquals(await watch.next(), null);

    assertEquals((await request("POST", "/_fake/compact")).status, 204);
    const expired = await openWatch(
      target,
      `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases?watch=true&resourceVersion=1`,
    );
    assertEquals((await expired.next())?.object.code, 410);
    assertEquals(await expired.next(), null);
    assertEquals((await request("GET", "/_fake/watches")).json, []);
  } finally {
    httpClient.close();
    await lines.cancel();
    process.kill("SIGTERM");
    await process.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the @kubernetes/client-node Watch reads the stream and sees a dropped watch end", async () => {
  await withServer(async (server) => {
    // The package's index loads every API group; only this test needs it.
    const { KubeConfig, Watch } = await import("@kubernetes/client-node");
    const config = new KubeConfig();
    config.loadFromFile(server.kubeconfigPath);
    const seen: [string, string][] = [];
    const arrived = Promise.withResolvers<void>();
    const ended = Promise.withResolvers<unknown>();
    const from = server.put(configMap("a", {})).metadata.resourceVersion;
    const controller = await new Watch(config).watch(
      CMS,
      { resourceVersion: from, allowWatchBookmarks: true },
      (type: string, object: { metadata: { name?: string; resourceVersion: string } }) => {
        seen.push([type, object.metadata.name ?? object.metadata.resourceVersion]);
        if (seen.length === 2) arrived.resolve();
      },
      (error: unknown) => ended.resolve(error),
    );
    try {
      server.put(configMap("b", {}));
      server.remove("configmaps", NS, "a");
      await arrived.promise;
      assertEquals(seen, [["ADDED", "b"], ["DELETED", "a"]]);
      assertEquals(server.dropWatches(), 1);
      assertEquals(await ended.promise, null);
    } finally {
      controller.abort();
    }
  }, { rbac: false });
});
