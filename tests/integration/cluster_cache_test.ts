/**
 * The cluster cache against the fake API server over HTTPS: the jobs' ConfigMap reads come from memory, a change is
 * seen within a second, writes carry the cached resourceVersion and read the server after a 409, and after a dropped
 * watch, a 410 and a server down for 60 s the cache converges while no job acted on a missing object.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { assert, assertEquals } from "../support/assert.ts";
import { createCaches, triggerOnChanges } from "../../cluster_cache.ts";
import { defaultConfig } from "../../config/config.ts";
import { createPortUsageController, type PortUsageResult } from "../../controllers/port_usage/job.ts";
import { portUsageConfigMapName } from "../../controllers/port_usage/plan.ts";
import { availabilityConfigMapName } from "../../controllers/core_version/plan.ts";
import { portUsageOptions } from "../../job_options.ts";
import { applyConfigMap } from "../../k8s/config_maps.ts";
import { cacheTrouble, type ConfigMapCache } from "../../k8s/config_map_cache.ts";
import type { InformerChange } from "../../k8s/informer.ts";
import { waitFor } from "../support/daemon_process.ts";
import { configMapObject, nodeObject, VERSION_LABELS } from "../support/faults_cluster.ts";
import { type FakeCluster, startFakeCluster } from "../support/fake_cluster.ts";
import { jobDeps, testClock } from "../support/job_deps.ts";
import type { FakeRequest } from "../fake_kube/server.ts";

const NODE = "node-cache";
const RANGES = "polardb4mpd-controller";
const OWN = portUsageConfigMapName(NODE);
const SELECTOR = "configtype=minor_version_info,dbClusterMode=WriteReadMore";

function seed(): object[] {
  return [
    nodeObject(NODE),
    configMapObject(RANGES, { annotations: { "polarbox.mpd.engine.port.range": "5400-5410" } }),
    configMapObject("ccm-config", { data: { NET_CARD_NAME: "eth1" } }),
    configMapObject("controller-config", { data: { isCheckOObIP: "true" } }),
    configMapObject("v1", { labels: VERSION_LABELS, data: { name: "v1", pgEngineImage: "a:1" } }),
    configMapObject("v-other", { labels: { configtype: "minor_version_info" }, data: { name: "x" } }),
  ];
}

/** The fake cluster and the daemon's cache over it (as `--cluster-cache` makes it), started and listed. */
async function withCache(
  fn: (t: { cluster: FakeCluster; cache: ConfigMapCache }) => Promise<void>,
): Promise<void> {
  const cluster = await startFakeCluster({ seed: seed(), client: { namespace: "kube-system" } });
  const cache = createCaches({ config: { ...defaultConfig(), currentNodeName: NODE }, kube: cluster.kube })!;
  try {
    cache.start();
    await waitFor(() => cache.states().every((s) => s.watching), { what: "every cache to watch" });
    await fn({ cluster, cache });
  } finally {
    await cache.stop();
    await cluster.close();
  }
}

/** The requests other than watches. */
function calls(requests: readonly FakeRequest[]): string[] {
  return requests.filter((r) => !/(^|&)watch=true/.test(r.query)).map((r) => `${r.method} ${r.path} ${r.status}`);
}

/** What the cache serves of a name, as `resourceVersion data`. */
async function served(cache: ConfigMapCache, name: string): Promise<string> {
  const found = await cache.kube.getConfigMap(name);
  return found ? `${found.metadata?.resourceVersion} ${JSON.stringify(found.data ?? {})}` : "absent";
}

/** What the server holds of a name, in the same shape. */
function stored(cluster: FakeCluster, name: string): string {
  const found = cluster.server.get("configmaps", "kube-system", name);
  return found ? `${found.metadata.resourceVersion} ${JSON.stringify(found.data ?? {})}` : "absent";
}

Deno.test("cache: reads ask the server nothing, a change is served within a second, other names still ask", async () => {
  await withCache(async ({ cluster, cache }) => {
    const { server } = cluster;
    const watches = server.watches().map((w) => new URLSearchParams(w.query));
    assertEquals(
      watches.map((q) => q.get("fieldSelector") ?? q.get("labelSelector")).sort(),
      [
        `metadata.name=${OWN}`,
        "metadata.name=ccm-config",
        "metadata.name=controller-config",
        `metadata.name=${RANGES}`,
        SELECTOR,
      ].sort(),
    );
    for (const q of watches) {
      const timeout = Number(q.get("timeoutSeconds"));
      assert(timeout >= 2700 && timeout <= 3600, `watch timeout ${timeout} s`);
    }
    server.clearRequests();
    for (let i = 0; i < 10; i++) {
      assertEquals((await cache.kube.getConfigMap("ccm-config"))?.data, { NET_CARD_NAME: "eth1" });
      assertEquals((await cache.kube.getConfigMap(RANGES))?.metadata?.annotations, {
        "polarbox.mpd.engine.port.range": "5400-5410",
      });
      assertEquals(await cache.kube.getConfigMap(OWN), null, "known to be absent: no GET");
      assertEquals((await cache.kube.listConfigMaps(SELECTOR)).map((c) => c.metadata?.name), ["v1"]);
    }
    assertEquals(server.requests, [], "ten rounds of reads sent nothing");

    const changes: InformerChange<V1ConfigMap>[] = [];
    cache.onChange("ccm-config", (change) => changes.push(change));
    const t0 = performance.now();
    server.put(configMapObject("ccm-config", { data: { NET_CARD_NAME: "eth2" } }));
    await waitFor(async () => (await cache.kube.getConfigMap("ccm-config"))?.data?.NET_CARD_NAME === "eth2", {
      what: "the new NET_CARD_NAME",
      timeoutMs: 1000,
    });
    console.log(`ConfigMap change served from the cache ${(performance.now() - t0).toFixed(0)} ms after the write`);
    assertEquals(changes.map((c) => [c.type, c.previous?.data?.NET_CARD_NAME, c.object.data?.NET_CARD_NAME]), [
      ["MODIFIED", "eth1", "eth2"],
    ]);
    server.put(configMapObject("v2", { labels: VERSION_LABELS, data: { name: "v2", pgEngineImage: "b:1" } }));
    await waitFor(async () => (await cache.kube.listConfigMaps(SELECTOR)).length === 2, { what: "the new version" });

    assertEquals(await cache.kube.getConfigMap("not-cached"), null);
    assertEquals((await cache.kube.listConfigMaps("configtype=minor_version_info")).length, 3);
    assertEquals(calls(server.requests), [
      "GET /api/v1/namespaces/kube-system/configmaps/not-cached 404",
      "GET /api/v1/namespaces/kube-system/configmaps 200",
    ]);
    assertEquals(cache.states().map(cacheTrouble), [null, null, null, null, null]);
  });
});

Deno.test("cache: before its first list a run waits for it, and is stopped naming why, never told the ConfigMap is missing", async () => {
  const cluster = await startFakeCluster({ seed: seed(), client: { namespace: "kube-system" } });
  const { server } = cluster;
  server.injectFault({ pathPrefix: "/api/v1/namespaces/kube-system/configmaps", count: 1_000_000, status: 503 });
  const cache = createCaches({ config: { ...defaultConfig(), currentNodeName: NODE }, kube: cluster.kube })!;
  try {
    cache.start();
    await waitFor(() => cache.states().every((s) => s.lastError !== null), { what: "every first list to fail" });
    const run = cache.kube.withSignal(AbortSignal.timeout(300));
    const error = await run.getConfigMap("ccm-config").then(() => null, (e: Error) => e.message);
    assertEquals(
      error,
      `Cannot read ConfigMap "ccm-config" in kube-system: it was not listed yet (Cannot list ConfigMap "ccm-config" in kube-system: 503 Service Unavailable: injected fault: 503) and the run was stopped`,
    );
    const versions = await run.listConfigMaps(SELECTOR).then(() => null, (e: Error) => e.message);
    assert(versions?.includes("was not listed yet"), versions ?? "listed");
    const waiting = cache.kube.withSignal(AbortSignal.timeout(20_000)).getConfigMap(RANGES);
    server.clearFaults();
    assertEquals((await waiting)?.metadata?.annotations, { "polarbox.mpd.engine.port.range": "5400-5410" });
  } finally {
    await cache.stop();
    await cluster.close();
  }
});

Deno.test("cache: a write carries the cached resourceVersion, reads the server only after a 409; its own writes are remembered", async () => {
  await withCache(async ({ cluster, cache }) => {
    const { server } = cluster;
    const write = (name: string, value: string) =>
      applyConfigMap(cache.kube, name, {
        plan: (current) => current?.data?.k !== value,
        desired: (changed) => (changed ? { metadata: { name }, data: { k: value } } : null),
      });
    server.clearRequests();
    assertEquals((await write(OWN, "1")).created, true);
    const created = server.get("configmaps", "kube-system", OWN)!.metadata.resourceVersion;
    await waitFor(async () => (await cache.kube.getConfigMap(OWN))?.data?.k === "1", { what: "our write, watched" });
    assertEquals((await write(OWN, "2")).written, true);
    await waitFor(async () => (await cache.kube.getConfigMap(OWN))?.data?.k === "2", { what: "the second write" });
    assertEquals((await write(OWN, "2")).written, false, "unchanged: nothing sent");
    assertEquals(calls(server.requests), [
      `POST /api/v1/namespaces/kube-system/configmaps 201`,
      `PUT /api/v1/namespaces/kube-system/configmaps/${OWN} 200`,
    ], "no GET before a write");
    const put = server.requests.find((r) => r.method === "PUT")!;
    assertEquals(JSON.parse(put.body).metadata.resourceVersion, created, "the write carried the cached version");

    // Someone else writes while our watch is held back: the cache is stale, the write gets a 409 and reads again.
    server.injectFault({
      pathPrefix: "/api/v1/namespaces/kube-system/configmaps",
      watch: true,
      count: 1,
      delayMs: 1500,
    });
    server.put(configMapObject(OWN, { data: { k: "theirs" } }));
    server.clearRequests();
    assertEquals((await write(OWN, "3")).written, true);
    assertEquals(calls(server.requests), [
      `PUT /api/v1/namespaces/kube-system/configmaps/${OWN} 409`,
      `GET /api/v1/namespaces/kube-system/configmaps/${OWN} 200`,
      `PUT /api/v1/namespaces/kube-system/configmaps/${OWN} 200`,
    ]);
    await waitFor(() => served(cache, OWN).then((s) => s === stored(cluster, OWN)), { what: "the cache to catch up" });

    const availability = availabilityConfigMapName(NODE);
    server.clearRequests();
    for (const value of ["a", "b", "c"]) await write(availability, value);
    assertEquals(calls(server.requests), [
      `GET /api/v1/namespaces/kube-system/configmaps/${availability} 404`,
      `POST /api/v1/namespaces/kube-system/configmaps 201`,
      `PUT /api/v1/namespaces/kube-system/configmaps/${availability} 200`,
      `PUT /api/v1/namespaces/kube-system/configmaps/${availability} 200`,
    ], "read once, then known from its own writes");
    assertEquals(server.get("configmaps", "kube-system", availability)?.data, { k: "c" });
  });
});

/** The port-usage job over the cache, with a scan that finds fixed ports; its results, in order. */
function portUsageJob(cache: ConfigMapCache) {
  const deps = jobDeps({ kube: cache.kube, clock: testClock("2026-12-01T10:00:00Z") });
  const config = { ...defaultConfig(), currentNodeName: NODE };
  const job = createPortUsageController(deps, portUsageOptions(config), {
    scan: () => Promise.resolve(new Set([5401, 5405, 6001])),
  });
  const results: PortUsageResult[] = [];
  return {
    results,
    async run(): Promise<string> {
      try {
        const outcome = await job.run({ signal: AbortSignal.timeout(20_000), dryRun: false });
        results.push(outcome.result);
        return "ok";
      } catch (error) {
        return (error as Error).message;
      }
    },
  };
}

/** Whether every run scanned ranges, i.e. none took the ranges ConfigMap for missing. */
function neverUnscanned(results: readonly PortUsageResult[]): boolean {
  return results.length > 0 && results.every((r) => r.ranges.length > 0);
}

Deno.test({
  name: "cache: after a dropped watch, a 410 and a server down for 60 s it converges; no job acted on a missing object",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await withCache(async ({ cluster, cache }) => {
      const { server } = cluster;
      const job = portUsageJob(cache);
      assertEquals(await job.run(), "ok");
      assertEquals(server.get("configmaps", "kube-system", OWN)?.data, {
        "5401": "the port already use",
        "5405": "the port already use",
      });
      const converged = async () => {
        for (const name of [RANGES, "ccm-config", "controller-config", OWN]) {
          if (await served(cache, name) !== stored(cluster, name)) return false;
        }
        const versions = (await cache.kube.listConfigMaps(SELECTOR)).map((c) => c.metadata?.resourceVersion).sort();
        const onServer = server.list("configmaps").filter((c) => c.metadata.labels?.dbClusterMode === "WriteReadMore")
          .map((c) => c.metadata.resourceVersion).sort();
        return JSON.stringify(versions) === JSON.stringify(onServer) && cache.states().every((s) => s.watching);
      };

      await t.step("dropped watches resume from their resourceVersion and see what changed meanwhile", async () => {
        const listsBefore = cache.states().map((s) => s.lists);
        server.injectFault({
          pathPrefix: "/api/v1/namespaces/kube-system/configmaps",
          watch: true,
          count: 5,
          drop: true,
        });
        // The fault cuts the open watches, and then their first attempts to resume.
        server.put(configMapObject(RANGES, { annotations: { "polarbox.mpd.engine.port.range": "5400-5402" } }));
        assertEquals(await job.run(), "ok");
        // The cut and the dropped resumes count as failures: the informers back off 1-2 s, then 2-4 s, before resuming.
        await waitFor(converged, { what: "the cache to converge after the drop", timeoutMs: 30_000 });
        assertEquals(cache.states().map((s) => s.lists), listsBefore, "resumed, not listed again");
        assertEquals(await job.run(), "ok");
        assertEquals(job.results.at(-1)?.ranges, [[5400, 5402]]);
      });

      await t.step(
        "410 Expired: listed again, deletions made meanwhile seen, nothing acted on as missing",
        async () => {
          const triggered: string[] = [];
          triggerOnChanges(cache, {
            config: { ...defaultConfig(), currentNodeName: NODE },
            trigger: (job) => triggered.push(job),
          });
          server.injectFault({
            pathPrefix: "/api/v1/namespaces/kube-system/configmaps",
            watch: true,
            count: 5,
            drop: true,
          });
          server.dropWatches({ cut: true });
          server.remove("configmaps", "kube-system", "v1");
          server.put(configMapObject(RANGES, { annotations: { "polarbox.mpd.engine.port.range": "5400-5406" } }));
          server.compact();
          assertEquals(await job.run(), "ok");
          await waitFor(converged, { what: "the cache to converge after the 410", timeoutMs: 30_000 });
          assert(cache.states().every((s) => s.lists === 2), "each informer listed again once");
          assertEquals(await cache.kube.listConfigMaps(SELECTOR), [], "the deleted version is gone from the cache");
          assert(triggered.includes("port-usage") && triggered.includes("core-version"), triggered.join(","));
          assertEquals(await job.run(), "ok");
          assertEquals(job.results.at(-1)?.ranges, [[5400, 5406]]);
          assertEquals(job.results.at(-1)?.used, [5401, 5405]);
        },
      );

      await t.step("server down for 60 s: the jobs use the last objects and say so; then it converges", async () => {
        server.injectFault({ pathPrefix: "/", count: 1_000_000, drop: true });
        server.dropWatches({ cut: true });
        const downAt = Date.now();
        // Meanwhile the ranges ConfigMap is deleted and ccm-config changed: the cache cannot know yet.
        server.remove("configmaps", "kube-system", RANGES);
        server.put(configMapObject("ccm-config", { data: { NET_CARD_NAME: "eth3" } }));
        const outcomes: string[] = [];
        while (Date.now() - downAt < 60_000) {
          outcomes.push(await job.run());
          // Paces the runs through the outage: the test asserts what every run during that span did.
          await new Promise((r) => setTimeout(r, 5_000));
        }
        const troubles = cache.states().map(cacheTrouble);
        assert(troubles.every((line) => line?.includes("the last objects are used")), troubles.join("\n"));
        assertEquals(outcomes.filter((o) => o !== "ok"), [], "ports unchanged: nothing to write, every run worked");
        assertEquals((await cache.kube.getConfigMap("ccm-config"))?.data?.NET_CARD_NAME, "eth1");
        assertEquals(server.get("configmaps", "kube-system", OWN)?.data, {
          "5401": "the port already use",
          "5405": "the port already use",
        }, "the published ports were never emptied");
        server.clearFaults();
        const upAt = Date.now();
        await waitFor(converged, { what: "the cache to converge after the outage", timeoutMs: 45_000 });
        console.log(`cache converged ${Date.now() - upAt} ms after the API server came back`);
        assertEquals(await cache.kube.getConfigMap(RANGES), null);
        assertEquals((await cache.kube.getConfigMap("ccm-config"))?.data?.NET_CARD_NAME, "eth3");
        assertEquals(await job.run(), "ok");
        assertEquals(job.results.at(-1)?.ranges, [], "now really gone: nothing to scan");
      });
      assert(neverUnscanned(job.results.slice(0, -1)), "no run before the last took the ranges for missing");
    });
  },
});
