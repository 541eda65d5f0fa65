/** The log-cleanup job against the fake API server: the pod listing, a failed listing, the request it makes. */
import { createLogCleanupController } from "../../controllers/log_cleanup/job.ts";
import { systemClock } from "../../core/types.ts";
import { createEventSink } from "../../k8s/events.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";
import { getLogger } from "@logtape/logtape";
import { cleanupDeps, DAY, exists, file, makeTree, pod } from "../support/log_cleanup_tree.ts";
import { recordingSink } from "../support/job_deps.ts";

Deno.test("active instances come from the ins_id label of pods in every namespace; a failed listing removes no folder", async () => {
  const { server, kube, close } = await startFakeCluster({
    client: { retries: 0, qps: 1000, burst: 1000 },
    seed: [
      pod("default", "pg-1", { "apsara.metric.ins_id": "ins-a" }),
      pod("tenant-2", "pg-2", { "apsara.metric.ins_id": "ins-b" }),
      pod("tenant-2", "pg-2-replica", { "apsara.metric.ins_id": "ins-b" }),
      pod("kube-system", "other", { app: "polarstack-daemon" }),
    ],
  });
  const tree = await makeTree();
  try {
    const now = Date.now();
    for (const name of ["ins-a", "ins-b", "ins-c", "ins-d"]) await file(`${tree.root}/${name}/old.log`, 9 * DAY, now);

    // First a failed listing: nothing goes.
    server.injectFault({ method: "GET", pathPrefix: "/api/v1/pods", count: 1, status: 500 });
    const sink = recordingSink();
    const { deps, options } = cleanupDeps({ root: tree.root, kube, events: sink });
    const controller = createLogCleanupController(deps, options);
    const failed = await controller.run({ signal: new AbortController().signal, dryRun: false });
    assertEquals(failed.result.activeInstances, null);
    assertEquals(failed.result.instanceFolders, []);
    assert(failed.result.skipped.some((line) => line.includes("500")), failed.result.skipped.join("\n"));
    for (const name of ["ins-a", "ins-b", "ins-c", "ins-d"]) assert(await exists(`${tree.root}/${name}`));
    assertEquals(sink.events, []);

    // A 200 answer that holds no list (a Status, a proxy's page) is no "no pods" either.
    server.injectFault({ method: "GET", pathPrefix: "/api/v1/pods", count: 1, status: 200 });
    const empty = await controller.run({ signal: new AbortController().signal, dryRun: false });
    assertEquals([empty.result.activeInstances, empty.result.instanceFolders], [null, []]);
    assert(empty.result.skipped.some((line) => line.includes("the answer has no items")), empty.result.skipped[0]);
    for (const name of ["ins-a", "ins-b", "ins-c", "ins-d"]) assert(await exists(`${tree.root}/${name}`));

    server.clearRequests();
    const done = await controller.run({ signal: new AbortController().signal, dryRun: false });
    assertEquals(done.result.activeInstances, ["ins-a", "ins-b"]);
    assertEquals(done.result.instanceFolders.sort(), [`${tree.root}/ins-c`, `${tree.root}/ins-d`]);
    assert(await exists(`${tree.root}/ins-a/old.log`) && await exists(`${tree.root}/ins-b/old.log`));
    const listing = server.requests.filter((r) => r.path === "/api/v1/pods");
    assertEquals(listing.length, 1);
    assertEquals(new URLSearchParams(listing[0].query).get("labelSelector"), "apsara.metric.ins_id");
    assertEquals(sink.events.map((e) => [e.type, e.reason]), [["Normal", "LogCleanupRemoved"]]);
    // The run's metrics: what went and how many bytes.
    const counter = (name: string, kind?: string) =>
      done.counters?.find((c) => c.name === name && c.labels?.kind === kind)?.value;
    assertEquals(counter("log_cleanup_removed_total", "instanceFolders"), 2);
    assertEquals(counter("log_cleanup_bytes_freed_total"), done.result.bytes);
    assert(done.result.bytes > 0);
  } finally {
    await tree.cleanup();
    await close();
  }
});

Deno.test("a run that removed something leaves one Normal Event on the Node", async () => {
  const { server, kube, close } = await startFakeCluster({
    seed: [pod("default", "pg-1", { "apsara.metric.ins_id": "ins-a" })],
    client: { retries: 0, qps: 1000, burst: 1000 },
  });
  const tree = await makeTree();
  try {
    const events = createEventSink({ kube, node: "node-1", log: getLogger(["test"]), clock: systemClock });
    await file(`${tree.root}/ins-z/old.log`, 9 * DAY, Date.now(), "abc");
    const { deps, options } = cleanupDeps({ root: tree.root, kube, events });
    const controller = createLogCleanupController(deps, options);
    const { result } = await controller.run({ signal: new AbortController().signal, dryRun: false });
    await events.flush();
    assertEquals(result.instanceFolders, [`${tree.root}/ins-z`]);
    const stored = server.list("events").filter((e) => e.reason === "LogCleanupRemoved");
    assertEquals(stored.length, 1, JSON.stringify(server.list("events")));
    assertEquals(stored[0].type, "Normal");
    assert(String(stored[0].message).includes(`"${tree.root}" (3 bytes)`), String(stored[0].message));
  } finally {
    await tree.cleanup();
    await close();
  }
});
