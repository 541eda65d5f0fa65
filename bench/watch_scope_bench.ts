/**
 * Which watch scope the ConfigMap cache takes: one list+watch per name (field selector `metadata.name=`) against one
 * list+watch of the whole namespace, in a cluster of `NODES` nodes whose daemons each publish two ConfigMaps in that
 * namespace (port usage with 20 ports, version availability with its details). Measured in this process against the
 * fake API server: the bytes of the first lists, their time, the heap the cache holds, and the watch events one
 * daemon receives while every other daemon rewrites its availability ConfigMap once (its hourly rewrite).
 * Usage: NODES=5000 deno run -A --v8-flags=--expose-gc bench/watch_scope_bench.ts (default 2000; the heap figure
 * needs the flag).
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { systemClock } from "../core/types.ts";
import { createKubeClient } from "../k8s/client.ts";
import { createInformer, type Informer } from "../k8s/informer.ts";
import { collectionSource } from "../k8s/list_watch.ts";
import { startFakeKubeApiServer } from "../tests/fake_kube/server.ts";
import { configMapObject } from "../tests/support/faults_cluster.ts";
import { waitFor } from "../tests/support/daemon_process.ts";

/** V8's collector, when run with `--v8-flags=--expose-gc`. */
const gc = (globalThis as { gc?: () => void }).gc;
const NODES = Number(Deno.env.get("NODES") ?? 2000);
const NAMES = ["polardb4mpd-controller", "ccm-config", "controller-config", "cloud-provider-port-usage-node-0"];
const PATH = "/api/v1/namespaces/kube-system/configmaps";

function published(i: number): object[] {
  const ports = Object.fromEntries(
    Array.from({ length: 20 }, (_, p) => [String(30000 + p * 7), "the port already use"]),
  );
  const details = JSON.stringify([{ name: "image-open", images: ["registry/pg:1", "registry/pfsd:1"], missing: [] }]);
  return [
    configMapObject(`cloud-provider-port-usage-node-${i}`, { data: ports }),
    configMapObject(`polarstack-daemon-version-availability-node-${i}`, {
      data: { existingVersions: "image-open", checkTime: "2026-12-01T10:00:00Z", details },
    }),
  ];
}

const server = await startFakeKubeApiServer({
  seed: [
    configMapObject(NAMES[0], { annotations: { "polarbox.mpd.engine.port.range": "30000-32999" } }),
    configMapObject(NAMES[1], { data: { NET_CARD_NAME: "bond1" } }),
    configMapObject(NAMES[2], { data: { isCheckOObIP: "true" } }),
    ...Array.from({ length: NODES }, (_, i) => published(i)).flat(),
  ],
  bookmarkIntervalMs: 60_000,
  rbac: false,
});
const kube = createKubeClient(server.connection(), { userAgent: "bench", qps: 1e6, burst: 1e6 });

async function measure(label: string, collections: { what: string; fieldSelector?: string }[]) {
  gc?.();
  const heapBefore = Deno.memoryUsage().heapUsed;
  server.clearRequests();
  const t0 = performance.now();
  const informers: Informer<V1ConfigMap>[] = collections.map((c) =>
    createInformer<V1ConfigMap>(collectionSource(kube, { path: PATH, ...c }), { clock: systemClock })
  );
  let events = 0;
  for (const informer of informers) informer.onChange(() => events++);
  informers.forEach((informer) => informer.start());
  await waitFor(() => informers.every((i) => i.state().watching), { what: `${label} to watch`, timeoutMs: 120_000 });
  const listMs = performance.now() - t0;
  const listBytes = await listSize(collections);
  gc?.();
  const heapMb = (Deno.memoryUsage().heapUsed - heapBefore) / 1e6;
  events = 0;
  for (let i = 1; i < NODES; i++) {
    server.put(configMapObject(`polarstack-daemon-version-availability-node-${i}`, { data: { checkTime: `t${i}` } }));
  }
  // The last write's event has come when the informer's resourceVersion reaches the store's.
  const last = server.get("configmaps", "kube-system", `polarstack-daemon-version-availability-node-${NODES - 1}`)!;
  await waitFor(
    () =>
      collections.length > 1 ||
      informers[0].state().resourceVersion === last.metadata.resourceVersion,
    { what: `${label}: the other daemons' writes`, timeoutMs: 120_000 },
  );
  const cached = informers.reduce((n, i) => n + i.list().length, 0);
  await Promise.all(informers.map((i) => i.stop()));
  return { label, watches: collections.length, cached, listMs, listBytes, heapMb, events };
}

/** The bytes the server sends for the first lists of these collections. */
async function listSize(collections: { fieldSelector?: string }[]): Promise<number> {
  let bytes = 0;
  for (const c of collections) {
    const answer = await kube.request("GET", PATH, { what: "list", query: { fieldSelector: c.fieldSelector } });
    bytes += JSON.stringify(answer).length;
  }
  return bytes;
}

// The client's first call (TLS, connection) is not the cache's cost.
await listSize([{ fieldSelector: "metadata.name=ccm-config" }]);
const byName = await measure(
  "one watch per name",
  NAMES.map((name) => ({ what: `ConfigMap "${name}"`, fieldSelector: `metadata.name=${name}` })),
);
const namespace = await measure("one watch of the namespace", [{ what: "ConfigMaps in kube-system" }]);
await server.close();
for (const m of [byName, namespace]) {
  console.log(
    `${m.label.padEnd(27)} ${m.watches} watches, ${m.cached} ConfigMaps cached, first lists ${
      (m.listBytes / 1e6).toFixed(2)
    } MB in ${m.listMs.toFixed(0)} ms, heap +${m.heapMb.toFixed(1)} MB, ${m.events} events while ${
      NODES - 1
    } other daemons rewrite once`,
  );
}
console.log(
  `per daemon at ${NODES} nodes: the namespace watch lists ${(namespace.listBytes / byName.listBytes).toFixed(0)}x ` +
    `the bytes, holds ${
      (namespace.heapMb - byName.heapMb).toFixed(1)
    } MB more heap, and receives ${namespace.events} ` +
    `events per round of rewrites (by name: ${byName.events}); cluster-wide that is N x N events`,
);
console.log(
  `RESULT ${JSON.stringify({ bench: "watch_scope", nodes: NODES, byName, namespace })}`,
);
