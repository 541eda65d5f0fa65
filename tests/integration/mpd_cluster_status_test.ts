import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { createKubeClient, type KubeClient } from "../../k8s/client.ts";
import { KubeError } from "../../k8s/errors.ts";
import { slimMpdCluster, writeLeaderIpReady } from "../../k8s/mpd_clusters.ts";
import { waitFor } from "../support/daemon_process.ts";
import { testClock } from "../support/job_deps.ts";
import { type FakeKubeApiServer, type KubeObject, startFakeKubeApiServer } from "../fake_kube/server.ts";

const STATUS_PATH = "/apis/mpd.polardb.aliyun.com/v1/namespaces/db/mpdclusters/pg/status";

/** An MPDCluster as the operator writes it, with fields the daemon must never change. */
function operatorCluster() {
  return {
    apiVersion: "mpd.polardb.aliyun.com/v1",
    kind: "MPDCluster",
    metadata: { name: "pg", namespace: "db", labels: { app: "pg" }, annotations: { owner: "operator" } },
    spec: { netCfg: { leaderFloatingIP: { ipAddressCfgType: "manual", ipAddress: "10.0.0.10", mask: 24 } } },
    status: {
      leaderInstanceHost: "node-1",
      leaderInstanceId: "ins-1",
      dbInstanceStatus: { "ins-1": { nodeName: "node-1", role: "leader", insType: "rw" } },
      clusterStatus: "Running",
      operatorOnly: { nested: [1, 2, 3] },
      conditions: [
        { type: "Ready", status: "True", lastTransitionTime: "2026-01-01T00:00:00Z", reason: "Up", message: "up" },
        { type: "Custom", status: "False", extra: "kept" },
      ],
    },
  };
}

async function withCluster(
  fn: (t: { server: FakeKubeApiServer; kube: KubeClient; seeded: KubeObject }) => Promise<void>,
): Promise<void> {
  const server = await startFakeKubeApiServer({ seed: [operatorCluster()] });
  // The admin token, as the operator would: these tests are about the write, not the RBAC.
  const kube = createKubeClient({ ...server.connection(), token: server.adminToken }, { userAgent: "test" });
  try {
    await fn({ server, kube, seeded: server.get("mpdclusters", "db", "pg")! });
  } finally {
    await server.close();
  }
}

const target = { namespace: "db", name: "pg" };

Deno.test("LeaderIPReady: GET then PUT /status with the resourceVersion; only that condition changes, and only when it differs", async () => {
  await withCluster(async ({ server, kube, seeded }) => {
    const clock = testClock("2026-12-01T09:00:00Z");
    const first = await writeLeaderIpReady(kube, target, {
      condition: { status: "False", reason: "LeaseHeldElsewhere", message: "node-2 holds the Lease" },
      clock,
    });
    assertEquals(first.written, true);
    const after = server.get("mpdclusters", "db", "pg")!;
    const ours = {
      type: "LeaderIPReady",
      status: "False",
      lastProbeTime: "2026-12-01T09:00:00Z",
      lastTransitionTime: "2026-12-01T09:00:00Z",
      reason: "LeaseHeldElsewhere",
      message: "node-2 holds the Lease",
    };
    assertEquals(after.status, { ...seeded.status, conditions: [...seeded.status.conditions, ours] });
    assertEquals([after.spec, after.metadata.labels, after.metadata.annotations], [
      seeded.spec,
      seeded.metadata.labels,
      seeded.metadata.annotations,
    ]);
    const put = server.requests.find((r) => r.method === "PUT")!;
    assertEquals(put.path, STATUS_PATH);
    assertEquals(JSON.parse(put.body).metadata.resourceVersion, seeded.metadata.resourceVersion);

    // The same again writes nothing.
    server.clearRequests();
    clock.advance(5000);
    const same = await writeLeaderIpReady(kube, target, {
      condition: { status: "False", reason: "LeaseHeldElsewhere", message: "node-2 holds the Lease" },
      clock,
    });
    assertEquals([same.written, server.requests.map((r) => r.method)], [false, ["GET"]]);

    // A new reason with the same status keeps lastTransitionTime; a new status moves it.
    const reason = await writeLeaderIpReady(kube, target, {
      condition: { status: "False", reason: "IPConflict", message: "02:42:ac:11:00:09 answers for 10.0.0.10" },
      clock,
    });
    const kept = reason.cluster!.status!.conditions!.at(-1)!;
    assertEquals([kept.reason, kept.lastTransitionTime, kept.lastProbeTime], [
      "IPConflict",
      "2026-12-01T09:00:00Z",
      "2026-12-01T09:00:05Z",
    ]);
    clock.advance(5000);
    const ready = await writeLeaderIpReady(kube, target, {
      condition: { status: "True", reason: "Announced", message: "10.0.0.10 answers on node-1" },
      clock,
    });
    const moved = ready.cluster!.status!.conditions!;
    assertEquals(moved.length, 3);
    assertEquals([moved[2].status, moved[2].lastTransitionTime], ["True", "2026-12-01T09:00:10Z"]);
    assertEquals(moved.slice(0, 2), seeded.status.conditions);

    // A deleted MPDCluster is nothing to write.
    server.remove("mpdclusters", "db", "pg");
    const gone = await writeLeaderIpReady(kube, target, {
      condition: { status: "False", reason: "Disabled", message: "enableVip is false" },
      clock,
    });
    assertEquals(gone, { written: false, cluster: null });
  });
});

Deno.test("LeaderIPReady: a write that loses to the operator's reads again and keeps the operator's change", async () => {
  await withCluster(async ({ server, kube }) => {
    const clock = testClock("2026-12-01T09:00:00Z");
    // The first PUT is held while the operator moves the leader: it carries a stale resourceVersion.
    server.injectFault({ method: "PUT", pathPrefix: STATUS_PATH, count: 1, delayMs: 300 });
    const writing = writeLeaderIpReady(kube, target, {
      condition: { status: "True", reason: "Announced", message: "10.0.0.10 answers on node-1" },
      clock,
    });
    await waitFor(() => server.requests.some((r) => r.method === "PUT"), { what: "the first PUT" });
    const current = server.get("mpdclusters", "db", "pg")!;
    server.put({ ...current, status: { ...current.status, leaderInstanceHost: "node-2" } });
    const result = await writing;
    assertEquals(result.written, true);
    assertEquals(server.requests.map((r) => [r.method, r.status]), [
      ["GET", 200],
      ["PUT", 409],
      ["GET", 200],
      ["PUT", 200],
    ]);
    const after = server.get("mpdclusters", "db", "pg")!;
    assertEquals(after.status.leaderInstanceHost, "node-2");
    assertEquals(after.status.conditions.map((c: { type: string }) => c.type), ["Ready", "Custom", "LeaderIPReady"]);
  });
});

Deno.test("LeaderIPReady: a storm of 409s is survived up to the attempts, and then surfaces as a KubeError 409", async () => {
  await withCluster(async ({ server, kube, seeded }) => {
    const clock = testClock("2026-12-01T09:00:00Z");
    server.injectFault({ method: "PUT", pathPrefix: STATUS_PATH, count: 9, status: 409 });
    const survived = await writeLeaderIpReady(kube, target, {
      condition: { status: "False", reason: "Disabled", message: "enableVip is false" },
      clock,
      attempts: 10,
    });
    assertEquals(survived.written, true);
    assertEquals(server.requests.filter((r) => r.method === "PUT").map((r) => r.status), [
      ...Array(9).fill(409),
      200,
    ]);
    assertEquals(server.requests.filter((r) => r.method === "GET").length, 10);
    const after = server.get("mpdclusters", "db", "pg")!;
    assertEquals(after.status.conditions.length, seeded.status.conditions.length + 1);
    assertEquals({ ...after.status, conditions: seeded.status.conditions }, seeded.status);

    server.clearRequests();
    server.injectFault({ method: "PUT", pathPrefix: STATUS_PATH, count: 3, status: 409 });
    const error = await assertRejects(
      () =>
        writeLeaderIpReady(kube, target, {
          condition: { status: "False", reason: "IPConflict", message: "someone answers" },
          clock,
          attempts: 3,
        }),
      KubeError,
    );
    assertEquals((error as KubeError).status, 409);
    assert((error as KubeError).message.startsWith('Cannot set LeaderIPReady on MPDCluster "db/pg": 409'));
    assertEquals(server.requests.filter((r) => r.method === "PUT").length, 3);
    assertEquals(server.get("mpdclusters", "db", "pg")!.status.conditions.at(-1).reason, "Disabled");
  });
});

Deno.test("LeaderIPReady from the watch cache: one merge PATCH bound to its resourceVersion, as the daemon's RBAC allows; a stale cache reads again and keeps the operator's write", async () => {
  const server = await startFakeKubeApiServer({ seed: [operatorCluster()] });
  // The daemon's own ServiceAccount: the fake server enforces the manifests' RBAC.
  const kube = createKubeClient(server.connection(), { userAgent: "test" });
  const admin = createKubeClient({ ...server.connection(), token: server.adminToken }, { userAgent: "test" });
  try {
    const clock = testClock("2026-12-01T09:00:00Z");
    const cached = slimMpdCluster(server.get("mpdclusters", "db", "pg"));
    server.clearRequests();
    const written = await writeLeaderIpReady(kube, target, {
      condition: { status: "True", reason: "AddressHeld", message: "10.0.0.10 is on bond1" },
      clock,
      cached,
    });
    assertEquals(written.written, true);
    assertEquals(server.requests.map((r) => `${r.method} ${r.path} ${r.status}`), [`PATCH ${STATUS_PATH} 200`]);
    const after = server.get("mpdclusters", "db", "pg")!;
    assertEquals(after.status.conditions.map((c: { type: string }) => c.type), ["Ready", "Custom", "LeaderIPReady"]);
    assertEquals(after.status.operatorOnly, { nested: [1, 2, 3] });

    // The operator writes a condition; the cache has not seen it yet.
    const operatorWrite = structuredClone(after);
    operatorWrite.status.conditions[0] = { type: "Ready", status: "False", reason: "Down", message: "down" };
    await admin.request("PUT", STATUS_PATH, { body: operatorWrite, what: "the operator's write" });
    server.clearRequests();
    await writeLeaderIpReady(kube, target, {
      condition: { status: "False", reason: "NotLeader", message: "the leader is on node-2" },
      clock,
      cached: slimMpdCluster(after),
    });
    assertEquals(server.requests.map((r) => `${r.method} ${r.status}`), ["PATCH 409", "GET 200", "PUT 200"]);
    const last = server.get("mpdclusters", "db", "pg")!;
    assertEquals(last.status.conditions[0].reason, "Down", "the operator's condition is kept");
    assertEquals(last.status.conditions[2].reason, "NotLeader");
  } finally {
    await server.close();
  }
});
