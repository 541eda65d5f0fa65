import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { createKubeClient } from "../../k8s/client.ts";
import { KubeError } from "../../k8s/errors.ts";
import { waitFor } from "../support/daemon_process.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";

const CMS = "/api/v1/namespaces/kube-system/configmaps";

Deno.test("openStream: JSON lines for longer than the client's timeout, each event as it comes; a stop ends it", async () => {
  const { server, close } = await startFakeCluster({ bookmarkIntervalMs: 100 });
  const kube = createKubeClient({ ...server.connection(), token: server.adminToken }, {
    userAgent: "stream-test",
    timeoutMs: 300,
  });
  try {
    const stop = new AbortController();
    const opened = performance.now();
    const stream = await kube.openStream(CMS, {
      what: "watch ConfigMaps in kube-system",
      query: { watch: "true", allowWatchBookmarks: "true" },
      signal: stop.signal,
    });
    const request = server.requests.at(-1)!;
    assertEquals([request.userAgent, new URLSearchParams(request.query).get("allowWatchBookmarks")], [
      "stream-test",
      "true",
    ]);
    const seen: string[] = [];
    const reading = (async () => {
      for await (const event of stream) {
        const { type, object } = event as { type: string; object: { metadata: { name?: string } } };
        seen.push(type === "BOOKMARK" ? type : `${type} ${object.metadata.name}`);
        if (performance.now() - opened > 900 && seen.includes("ADDED late")) stop.abort();
      }
    })();
    await waitFor(() => seen.filter((s) => s === "BOOKMARK").length >= 3, { what: "three bookmarks" });
    server.put({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "late", namespace: "kube-system" } });
    const error = await assertRejects(() => reading, KubeError);
    assertEquals([(error as KubeError).stopped, (error as KubeError).message], [
      true,
      "Cannot watch ConfigMaps in kube-system: the run was stopped",
    ]);
    assert(performance.now() - opened > 900, "the stream lasted past the 300 ms timeout");
    assert(seen.includes("ADDED late"), seen.join(", "));
    await waitFor(() => server.watches().length === 0, { what: "the server to see the watch closed" });
  } finally {
    await close();
  }
});

Deno.test("openStream: a refused watch is a KubeError that names it; a cut stream rejects; a 429 holds the next calls", async () => {
  const { server, kube, close } = await startFakeCluster();
  try {
    // The daemon's token may list pods but not watch them.
    const refused = await assertRejects(
      () => kube.openStream("/api/v1/pods", { what: "watch Pods in all namespaces", query: { watch: "true" } }),
      KubeError,
    );
    assertEquals((refused as KubeError).status, 403);
    assert((refused as KubeError).message.startsWith("Cannot watch Pods in all namespaces: 403 Forbidden"));

    const admin = createKubeClient({ ...server.connection(), token: server.adminToken }, { userAgent: "t" });
    const stream = await admin.openStream(CMS, { what: "watch ConfigMaps", query: { watch: "true" } });
    const reading = (async () => {
      for await (const _ of stream) { /* no event comes before the cut */ }
    })();
    await waitFor(() => server.watches().length === 1, { what: "the watch" });
    server.dropWatches({ cut: true });
    const cut = await assertRejects(() => reading, KubeError);
    assert(
      (cut as KubeError).message.startsWith("Cannot watch ConfigMaps: the stream broke"),
      (cut as KubeError).message,
    );
    assertEquals((cut as KubeError).status, 0);

    server.injectFault({ pathPrefix: CMS, count: 1, watch: true, status: 429, retryAfter: 1 });
    const busy = await assertRejects(
      () => admin.openStream(CMS, { what: "watch ConfigMaps", query: { watch: "true" } }),
      KubeError,
    );
    assertEquals((busy as KubeError).status, 429);
    const t0 = performance.now();
    assertEquals(await admin.getConfigMap("absent"), null);
    assert(performance.now() - t0 >= 950, "the next call waited for Retry-After");
  } finally {
    await close();
  }
});

Deno.test("openStream: a stop after a garbage collection still ends the read at once", async () => {
  // Deno's fetch lost its abort of a body being read once a collection had run: a watch never ended on its signal.
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", new URL("../support/watch_stop_gc_cli.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assertEquals(output.code, 0);
  const { outcome, ms } = JSON.parse(new TextDecoder().decode(output.stdout));
  assertEquals(outcome, "Cannot watch ConfigMaps: the run was stopped");
  assert(ms < 1000, `ended ${ms} ms after the stop`);
});
