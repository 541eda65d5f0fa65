import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createKubeClient, type KubeClient } from "../../k8s/client.ts";
import { createInformer, type Informer, type InformerChange } from "../../k8s/informer.ts";
import { type MPDCluster, mpdClusterSource } from "../../k8s/mpd_clusters.ts";
import { waitFor } from "../support/daemon_process.ts";
import { testClock } from "../support/job_deps.ts";
import { type FakeKubeApiServer, startFakeKubeApiServer } from "../fake_kube/server.ts";

const MPD = "/apis/mpd.polardb.aliyun.com/v1";

function cluster(namespace: string, name: string, leader = "node-1") {
  return {
    apiVersion: "mpd.polardb.aliyun.com/v1",
    kind: "MPDCluster",
    metadata: { name, namespace },
    spec: { netCfg: { leaderFloatingIP: { ipAddress: "10.0.0.10", mask: 24 } } },
    status: { leaderInstanceHost: leader },
  };
}

/** What the cache holds, as `ns/name@resourceVersion leader`, sorted. */
function cached(informer: Informer<MPDCluster>): string[] {
  return informer.list().map((c) =>
    `${c.metadata?.namespace}/${c.metadata?.name}@${c.metadata?.resourceVersion} ${c.status?.leaderInstanceHost}`
  ).sort();
}

/** What the server holds, in the same shape. */
function stored(server: FakeKubeApiServer): string[] {
  return server.list("mpdclusters").map((c) =>
    `${c.metadata.namespace}/${c.metadata.name}@${c.metadata.resourceVersion} ${c.status?.leaderInstanceHost}`
  ).sort();
}

/** The list GETs (not watches) of MPDClusters the server received. */
function listCalls(server: FakeKubeApiServer) {
  return server.requests.filter((r) => r.path === `${MPD}/mpdclusters` && !/(^|&)watch=true/.test(r.query));
}

/** The watch GETs of MPDClusters the server received. */
function watchCalls(server: FakeKubeApiServer) {
  return server.requests.filter((r) => r.path === `${MPD}/mpdclusters` && /(^|&)watch=true/.test(r.query));
}

async function withInformer(
  fn: (t: {
    server: FakeKubeApiServer;
    kube: KubeClient;
    informer: Informer<MPDCluster>;
    clock: ReturnType<typeof testClock>;
    changes: InformerChange<MPDCluster>[];
  }) => Promise<void>,
  options: { bookmarkIntervalMs?: number } = {},
): Promise<void> {
  const server = await startFakeKubeApiServer({
    seed: [cluster("db1", "a"), cluster("db2", "b")],
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
  });
  // The daemon's RBAC grants no MPDClusters yet: the admin token reads them.
  const kube = createKubeClient({ ...server.connection(), token: server.adminToken }, { userAgent: "test" });
  const clock = testClock("2026-12-01T09:00:00Z");
  const informer = createInformer(mpdClusterSource(kube), {
    clock,
    random: () => 0.5,
    backoffBaseMs: 20,
    backoffCapMs: 200,
  });
  const changes: InformerChange<MPDCluster>[] = [];
  informer.onChange((change) => changes.push(change));
  try {
    informer.start();
    await fn({ server, kube, informer, clock, changes });
  } finally {
    await informer.stop();
    await server.close();
  }
}

/** Resolves with performance.now() when the informer applied a change that `match` accepts. */
function nextChange(
  informer: Informer<MPDCluster>,
  match: (change: InformerChange<MPDCluster>) => boolean,
): Promise<number> {
  const seen = Promise.withResolvers<number>();
  const off = informer.onChange((change) => {
    if (!match(change)) return;
    off();
    seen.resolve(performance.now());
  });
  return seen.promise;
}

Deno.test("informer: lists, watches from the list's resourceVersion with bookmarks, and applies each change within a second", async () => {
  await withInformer(async ({ server, kube, informer, changes }) => {
    assertEquals(informer.synced, false);
    await waitFor(() => informer.state().watching, { what: "the informer to watch" });
    assertEquals(informer.synced, true);
    assertEquals(cached(informer), stored(server));
    assertEquals(changes.map((c) => [c.type, c.object.metadata?.name]), [["ADDED", "a"], ["ADDED", "b"]]);
    const fromList = server.list("mpdclusters").at(-1)!.metadata.resourceVersion;
    const [watch] = watchCalls(server);
    const query = new URLSearchParams(watch.query);
    assertEquals(
      [query.get("resourceVersion"), query.get("allowWatchBookmarks"), query.get("watch")],
      [fromList, "true", "true"],
    );
    assert(Number(query.get("timeoutSeconds")) >= 300 && Number(query.get("timeoutSeconds")) <= 600);
    assertEquals(informer.get("db1", "a")?.status?.leaderInstanceHost, "node-1");
    assertEquals(informer.get("db1", "b"), undefined);

    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const seen = nextChange(
        informer,
        (c) => c.type === "MODIFIED" && c.object.status?.leaderInstanceHost === `n${i}`,
      );
      const t0 = performance.now();
      server.put(cluster("db1", "a", `n${i}`));
      latencies.push(await seen - t0);
    }
    const added = nextChange(informer, (c) => c.type === "ADDED" && c.object.metadata?.name === "c");
    let t0 = performance.now();
    server.put(cluster("db3", "c"));
    latencies.push(await added - t0);
    const deleted = nextChange(informer, (c) => c.type === "DELETED" && c.object.metadata?.name === "b");
    t0 = performance.now();
    server.remove("mpdclusters", "db2", "b");
    latencies.push(await deleted - t0);
    console.log(`change to cache: max ${Math.max(...latencies).toFixed(1)} ms over ${latencies.length} changes`);
    assert(Math.max(...latencies) < 1000, `a change took ${Math.max(...latencies)} ms`);
    assertEquals(cached(informer), stored(server));
    const modified = changes.filter((c) => c.type === "MODIFIED").at(-1)!;
    assertEquals([modified.previous?.status?.leaderInstanceHost, modified.object.status?.leaderInstanceHost], [
      "n3",
      "n4",
    ]);
    const listed = await kube.request("GET", `${MPD}/mpdclusters`, { what: "list" }) as {
      metadata: { resourceVersion: string };
    };
    assertEquals(informer.state().resourceVersion, listed.metadata.resourceVersion);
    assertEquals(listCalls(server).length, 2);
    assertEquals(watchCalls(server).length, 1);
  });
});

Deno.test("informer: bookmarks move its resourceVersion past writes of other kinds", async () => {
  await withInformer(async ({ server, informer }) => {
    await waitFor(() => informer.state().watching, { what: "the informer to watch" });
    const other = server.put({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "x", namespace: "kube-system" },
    });
    await waitFor(() => informer.state().resourceVersion === other.metadata.resourceVersion, {
      what: "a bookmark with the ConfigMap's resourceVersion",
    });
    // A resumed watch starts from the bookmark's version, not the last MPDCluster's.
    server.dropWatches();
    await waitFor(() => watchCalls(server).length === 2 && informer.state().watching, { what: "the watch again" });
    assertEquals(
      new URLSearchParams(watchCalls(server)[1].query).get("resourceVersion"),
      other.metadata.resourceVersion,
    );
  }, { bookmarkIntervalMs: 50 });
});

Deno.test("informer: a dropped or cut watch resumes from the last resourceVersion, without a list, and misses nothing", async () => {
  await withInformer(async ({ server, informer }) => {
    await waitFor(() => informer.state().watching, { what: "the informer to watch" });
    for (const cut of [false, true]) {
      const before = watchCalls(server).length;
      const at = informer.state().resourceVersion;
      assertEquals(server.dropWatches({ cut }), 1);
      // Changes while no watch is open come with the resumed watch.
      server.put(cluster("db1", "a", cut ? "after-cut" : "after-drop"));
      server.put(cluster("db4", cut ? "cut" : "drop"));
      await waitFor(() => JSON.stringify(cached(informer)) === JSON.stringify(stored(server)), {
        what: `the cache to converge after a ${cut ? "cut" : "drop"}`,
      });
      const resumed = watchCalls(server).slice(before);
      assert(resumed.length >= 1);
      assertEquals(new URLSearchParams(resumed[0].query).get("resourceVersion"), at);
    }
    assertEquals(listCalls(server).length, 1);
    assertEquals(informer.state().lists, 1);
    const cutError = informer.state().lastError?.message ?? "";
    assertMatch(cutError, /Cannot watch MPDClusters in all namespaces: (the stream broke|the server ended)/);
  });
});

Deno.test("informer: 410 Expired re-lists, in the stream after a compaction and as an HTTP answer, and the cache converges", async () => {
  await withInformer(async ({ server, informer, changes }) => {
    await waitFor(() => informer.state().watching, { what: "the informer to watch" });
    // Keep the informer from watching while the history goes: changes, then a compaction.
    server.injectFault({ pathPrefix: `${MPD}/mpdclusters`, count: 1_000_000, watch: true, status: 503 });
    await waitFor(() => !informer.state().watching, { what: "the watch to end" });
    server.put(cluster("db1", "a", "moved"));
    server.remove("mpdclusters", "db2", "b");
    server.put(cluster("db5", "new"));
    server.compact();
    const before = changes.length;
    server.clearFaults();
    await waitFor(() => informer.state().lists === 2 && informer.state().watching, { what: "a re-list" });
    assertEquals(cached(informer), stored(server));
    assertEquals(changes.slice(before).map((c) => [c.type, c.object.metadata?.name]).sort(), [
      ["ADDED", "new"],
      ["DELETED", "b"],
      ["MODIFIED", "a"],
    ]);

    // An HTTP 410 on a new watch (and the ERROR event the fault sends the open one) re-lists too.
    server.injectFault({ pathPrefix: `${MPD}/mpdclusters`, count: 1, watch: true, status: 410 });
    server.put(cluster("db6", "later"));
    await waitFor(() => informer.state().lists >= 3 && informer.state().watching, { what: "a second re-list" });
    await waitFor(() => JSON.stringify(cached(informer)) === JSON.stringify(stored(server)), { what: "convergence" });
  });
});

Deno.test("informer: while the server is down the cache stays and says how old it is and why; it converges after", async () => {
  await withInformer(async ({ server, informer, clock }) => {
    await waitFor(() => informer.state().watching, { what: "the informer to watch" });
    const before = cached(informer);
    assertEquals(informer.state().ageMs, 0);
    server.injectFault({ pathPrefix: "/apis/", count: 1_000_000, status: 503 });
    await waitFor(() => informer.state().failures >= 8, { what: "eight failures" });
    const down = informer.state();
    assertEquals([down.synced, down.watching], [true, false]);
    assertMatch(down.lastError!.message, /^Cannot watch MPDClusters in all namespaces: 503/);
    assertEquals(cached(informer), before);
    clock.advance(30_000);
    assert(informer.state().ageMs! >= 30_000, `age ${informer.state().ageMs}`);
    // Backoff: 15, 30, 60, 120 ms, then the cap (200 ms, with the jitter 0.5: 150 ms), never a tight loop.
    const attempts = watchCalls(server).slice(-3).map((r) => r.time);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
    assert(gaps.every((gap) => gap >= 100 && gap < 3000), `gaps ${gaps}`);
    const failuresSoFar = informer.state().failures;

    server.put(cluster("db1", "a", "moved-while-down"));
    server.remove("mpdclusters", "db2", "b");
    server.clearFaults();
    await waitFor(() => JSON.stringify(cached(informer)) === JSON.stringify(stored(server)), { what: "convergence" });
    await waitFor(() => informer.state().watching, { what: "the watch again" });
    const up = informer.state();
    assertEquals([up.ageMs, up.failures, up.lists], [0, 0, 1]);
    assert(failuresSoFar >= 8);
  });
});

Deno.test("informer: stop ends the watch and any wait; the cache stays; start again resumes", async () => {
  await withInformer(async ({ server, informer }) => {
    await waitFor(() => informer.state().watching, { what: "the informer to watch" });
    await informer.stop();
    await waitFor(() => server.watches().length === 0, { what: "the server to see the watch closed" });
    assertEquals(informer.list().length, 2);
    server.put(cluster("db7", "while-stopped"));
    informer.start();
    await waitFor(() => informer.get("db7", "while-stopped"), { what: "the change made while stopped" });
    assertEquals(informer.state().lists, 1);
  });
});

Deno.test("a stop after a full garbage collection still ends the watch (the stop's signal is not collected)", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  await withInformer(async ({ server, informer }) => {
    await waitFor(() => informer.state().watching, { what: "an open watch" });
    server.put(cluster("db3", "c"));
    await waitFor(() => informer.get("db3", "c"), { what: "the new cluster in the cache" });
    gc();
    const stopped = informer.stop().then(() => "stopped");
    const late = new Promise((resolve) => setTimeout(() => resolve("still watching after 3 s"), 3_000));
    assertEquals(await Promise.race([stopped, late]), "stopped");
    assertEquals(informer.state().watching, false);
  });
});

Deno.test("informer: a long list comes in pages of 100 at one resourceVersion, each object kept as the source says", async () => {
  const seed = Array.from({ length: 250 }, (_, i) => cluster(`db${i % 7}`, `c${i}`, `node-${i}`));
  const server = await startFakeKubeApiServer({ seed });
  const kube = createKubeClient(server.connection(), { userAgent: "test", qps: 1000, burst: 1000 });
  const informer = createInformer(mpdClusterSource(kube), { clock: testClock("2026-12-01T09:00:00Z") });
  try {
    informer.start();
    await waitFor(() => informer.synced, { what: "the first list" });
    assertEquals(cached(informer), stored(server));
    const pages = listCalls(server).map((r) => new URLSearchParams(r.query));
    assertEquals(pages.map((q) => [q.get("limit"), q.has("continue")]), [["100", false], ["100", true], ["100", true]]);
    // The watch starts from the list's resourceVersion, which all pages share.
    await waitFor(() => watchCalls(server).length > 0, { what: "the watch" });
    const rv = new URLSearchParams(watchCalls(server)[0].query).get("resourceVersion");
    assertEquals(
      rv,
      server.list("mpdclusters").map((c) => Number(c.metadata.resourceVersion)).sort((a, b) => b - a)[0].toString(),
    );
    // What the cache keeps is the slim object, not the operator's whole one.
    assertEquals(Object.keys(informer.list()[0].status ?? {}).sort(), [
      "conditions",
      "dbInstanceStatus",
      "floatingIP",
      "leaderInstanceHost",
    ]);
  } finally {
    await informer.stop();
    await server.close();
  }
});
