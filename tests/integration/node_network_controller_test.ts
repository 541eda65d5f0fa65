/** The node-network controller in process against the fake API server, with a fake sysfs root and a moved clock. */
import { assert, assertEquals, assertMatch, assertRejects } from "../support/assert.ts";
import type { NodeCondition } from "../../controllers/node_network/conditions.ts";
import { createNodeNetworkController } from "../../controllers/node_network/job.ts";
import type { KubeClient } from "../../k8s/client.ts";
import type { RunOptions } from "../../host/command.ts";
import type { FakeKubeApiServer } from "../fake_kube/server.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";
import {
  type FakeHost,
  fakeHost,
  finishing,
  ipmitoolRunner,
  statusReasonMessage,
  testDeps,
  testOptions,
} from "../support/node_network_fixtures.ts";
import { type ManualClock, testClock } from "../support/job_deps.ts";

const NODE = "node-1";

function seedNode(conditions: NodeCondition[] = []) {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: NODE },
    status: {
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "kubelet is posting ready status",
          lastHeartbeatTime: "2025-12-31T23:59:00Z",
          lastTransitionTime: "2025-12-01T00:00:00Z",
        },
        ...conditions,
      ],
    },
  };
}

function configMap(name: string, data: Record<string, string>) {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "kube-system" }, data };
}

interface Setup {
  server: FakeKubeApiServer;
  kube: KubeClient;
  host: FakeHost;
  clock: ManualClock;
  cleanup(): Promise<void>;
}

/** The job on the setup's cluster, clock and host, with a BMC that answers. */
function controllerWithBmc(s: Setup) {
  return createNodeNetworkController(
    testDeps({ kube: s.kube, clock: s.clock, runCommand: ipmitoolRunner("ok") }),
    testOptions(),
    s.host,
  );
}

async function setup(seed: object[] = [seedNode(), configMap("ccm-config", { NET_CARD_NAME: "bond1" })]) {
  const { server, kube, close } = await startFakeCluster({
    seed,
    client: { userAgent: "node-network-test", qps: 1e6, burst: 1e6 },
  });
  const host = await fakeHost();
  await host.setLink("bond1", { operstate: "up" });
  host.setAddresses("bond1", ["192.0.2.10"]);
  const clock = testClock();
  return {
    server,
    kube,
    host,
    clock,
    async cleanup() {
      await host.cleanup();
      await close();
    },
  } satisfies Setup;
}

const ctx = (dryRun = false) => ({ signal: new AbortController().signal, dryRun });

function nodeConditions(server: FakeKubeApiServer): Record<string, NodeCondition> {
  const node = server.get("nodes", undefined, NODE);
  return Object.fromEntries((node.status.conditions as NodeCondition[]).map((c) => [c.type, c]));
}

function counts(server: FakeKubeApiServer) {
  const r = server.requests;
  return {
    patches: r.filter((q) => q.method === "PATCH").length,
    nodeGets: r.filter((q) => q.method === "GET" && q.path === `/api/v1/nodes/${NODE}`).length,
    nodeLists: r.filter((q) => q.method === "GET" && q.path === "/api/v1/nodes").length,
    configMapGets: r.filter((q) => q.method === "GET" && q.path.includes("/configmaps/")).length,
    total: r.length,
  };
}

Deno.test("first run: reads its own Node (never lists) and writes the four conditions in one PATCH", async () => {
  const s = await setup();
  try {
    const runner = ipmitoolRunner("ok");
    const c = createNodeNetworkController(
      testDeps({ kube: s.kube, clock: s.clock, runCommand: runner }),
      testOptions(),
      s.host,
    );
    const { result } = await c.run(ctx());
    assertEquals(counts(s.server), { patches: 1, nodeGets: 1, nodeLists: 0, configMapGets: 2, total: 4 });
    const patch = s.server.requests.find((q) => q.method === "PATCH")!;
    assertEquals(patch.path, `/api/v1/nodes/${NODE}/status`);
    assertEquals(patch.contentType, "application/strategic-merge-patch+json");
    const got = nodeConditions(s.server);
    const at = "2026-01-01T00:00:00Z";
    assertEquals(got.NodeClientNetworkUnavailable, {
      type: "NodeClientNetworkUnavailable",
      status: "False",
      reason: "StateUP",
      message: "bond1 StateUP",
      lastHeartbeatTime: at,
      lastTransitionTime: at,
    });
    assertEquals(statusReasonMessage(got.NodeClientIP), [
      "True",
      "bond1",
      "192.0.2.10",
    ]);
    assertEquals(statusReasonMessage(got.NodeOobIP), [
      "True",
      "PowerOn",
      "198.51.100.23",
    ]);
    assertEquals(statusReasonMessage(got.NodeRefreshFlag), [
      "True",
      "Refresh",
      "Refresh",
    ]);
    assertEquals(got.Ready.lastHeartbeatTime, "2025-12-31T23:59:00Z", "the kubelet's condition is left alone");
    assertEquals(
      { node: result.node, nic: result.nic, state: result.state, ipv4: result.ipv4, oobIp: result.oobIp },
      { node: NODE, nic: "bond1", state: "UP", ipv4: "192.0.2.10", oobIp: "198.51.100.23" },
    );
    assertEquals(result.conditions, [
      got.NodeClientNetworkUnavailable,
      got.NodeClientIP,
      got.NodeOobIP,
      got.NodeRefreshFlag,
    ]);
    assertEquals(result.written, true);
  } finally {
    await s.cleanup();
  }
});

Deno.test("steady state: no write until the report frequency, then one PATCH of all four; transition kept", async () => {
  const s = await setup();
  try {
    const c = controllerWithBmc(s);
    await c.run(ctx());
    const first = nodeConditions(s.server);
    s.server.clearRequests();
    // one hour of 3-second probes
    for (let i = 0; i < 1200; i++) {
      s.clock.advance(3000);
      await c.run(ctx());
    }
    const n = counts(s.server);
    assertEquals(n.nodeLists, 0);
    assertEquals(n.nodeGets, 0, "the Node is not read again while writes succeed");
    assertEquals(n.patches, 60, "one heartbeat PATCH per minute");
    assertEquals(n.configMapGets, 120, "ccm-config and controller-config once a minute each");
    const patches = s.server.requests.filter((q) => q.method === "PATCH").map((q) => JSON.parse(q.body));
    assert(patches.every((p) => p.status.conditions.length === 4));
    const last = nodeConditions(s.server);
    for (const type of ["NodeClientNetworkUnavailable", "NodeClientIP", "NodeOobIP", "NodeRefreshFlag"]) {
      assertEquals(last[type].lastTransitionTime, first[type].lastTransitionTime, type);
      assertEquals(last[type].lastHeartbeatTime, "2026-01-01T01:00:00Z", type);
    }
  } finally {
    await s.cleanup();
  }
});

Deno.test("changes: each is written by the next probe, only the changed conditions, transition on status change", async () => {
  const s = await setup();
  try {
    const deps = testDeps({ kube: s.kube, clock: s.clock, runCommand: ipmitoolRunner("ok") });
    const c = createNodeNetworkController(deps, testOptions(), s.host);
    await c.run(ctx());
    const sent = () => {
      const p = s.server.requests.filter((q) => q.method === "PATCH");
      s.server.clearRequests();
      return p.map((q) => (JSON.parse(q.body).status.conditions as NodeCondition[]).map((x) => x.type));
    };
    sent();

    s.clock.advance(3000);
    await s.host.setLink("bond1", { operstate: "down", carrier: null, flags: 0x1002 });
    await c.run(ctx());
    assertEquals(sent(), [["NodeClientNetworkUnavailable"]]);
    let got = nodeConditions(s.server);
    assertEquals(
      statusReasonMessage(got.NodeClientNetworkUnavailable),
      ["True", "StateDown", "bond1 StateDown"],
    );
    assertEquals(got.NodeClientNetworkUnavailable.lastTransitionTime, "2026-01-01T00:00:03Z");
    assertEquals(got.NodeRefreshFlag.lastHeartbeatTime, "2026-01-01T00:00:00Z", "unchanged ones not sent");
    assertEquals(deps.recorded.map((e) => [e.type, e.reason]), [["Warning", "ClientNetworkUnavailable"]]);

    s.clock.advance(3000);
    await s.host.setLink("bond1", { operstate: "lowerlayerdown", carrier: 0 });
    await c.run(ctx());
    assertEquals(sent(), [], "lowerlayerdown is still StateDown: nothing to send");

    s.clock.advance(3000);
    await s.host.setLink("bond1", { operstate: "unknown", flags: 0x1003, carrier: 1 });
    await c.run(ctx());
    assertEquals(sent(), [["NodeClientNetworkUnavailable"]], "unknown + IFF_UP + carrier = UP");
    got = nodeConditions(s.server);
    assertEquals([got.NodeClientNetworkUnavailable.status, got.NodeClientNetworkUnavailable.reason], [
      "False",
      "StateUP",
    ]);
    assertEquals(got.NodeClientNetworkUnavailable.lastTransitionTime, "2026-01-01T00:00:09Z");
    assertEquals(deps.recorded.at(-1)?.reason, "ClientNetworkAvailable");

    s.clock.advance(3000);
    s.host.setAddresses("bond1", ["198.51.100.7"]);
    await c.run(ctx());
    assertEquals(sent(), [["NodeClientIP"]]);
    got = nodeConditions(s.server);
    assertEquals(got.NodeClientIP.message, "198.51.100.7");
    assertEquals(got.NodeClientIP.lastTransitionTime, "2026-01-01T00:00:00Z", "same status: transition kept");

    s.clock.advance(3000);
    await s.host.removeLink("bond1");
    await c.run(ctx());
    assertEquals(sent(), [["NodeClientNetworkUnavailable", "NodeClientIP"]]);
    got = nodeConditions(s.server);
    assertEquals(
      statusReasonMessage(got.NodeClientNetworkUnavailable),
      ["True", "StateUnKnown", "bond1 StateUnKnown"],
    );
    assertEquals(statusReasonMessage(got.NodeClientIP), [
      "False",
      "bond1",
      "198.51.100.7",
    ]);
  } finally {
    await s.cleanup();
  }
});

Deno.test("restart: a fresh Node state is not rewritten; the last known IP comes from the Node", async () => {
  const fresh = "2026-01-01T00:00:00Z";
  const ours: NodeCondition[] = [
    ["NodeClientNetworkUnavailable", "False", "StateUP", "bond1 StateUP"],
    ["NodeClientIP", "True", "bond1", "192.0.2.10"],
    ["NodeOobIP", "True", "PowerOn", "198.51.100.23"],
    ["NodeRefreshFlag", "True", "Refresh", "Refresh"],
  ].map(([type, status, reason, message]) => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: fresh,
    lastTransitionTime: "2025-06-01T00:00:00Z",
  }));
  const s = await setup([seedNode(ours), configMap("ccm-config", { NET_CARD_NAME: "bond1" })]);
  try {
    s.clock.advance(10_000);
    const c = controllerWithBmc(s);
    const { result } = await c.run(ctx());
    assertEquals(counts(s.server).patches, 0, "nothing changed and the heartbeats are fresh");
    assertEquals(result.written, false);

    const s2 = controllerWithBmc(s);
    await s.host.removeLink("bond1");
    await s2.run(ctx());
    const got = nodeConditions(s.server);
    assertEquals([got.NodeClientIP.status, got.NodeClientIP.message], ["False", "192.0.2.10"]);
    assertEquals(got.NodeClientIP.lastTransitionTime, "2026-01-01T00:00:10Z");
    assertEquals(got.NodeOobIP.lastTransitionTime, "2025-06-01T00:00:00Z");
  } finally {
    await s.cleanup();
  }
});

Deno.test("own Node missing: a clear error, no write, and the next run tries again", async () => {
  const s = await setup([configMap("ccm-config", { NET_CARD_NAME: "bond1" })]);
  try {
    const c = controllerWithBmc(s);
    assertEquals(
      (await assertRejects(() => c.run(ctx()), Error)).message,
      'Node "node-1" not found: check --current-node-name',
    );
    assertEquals(counts(s.server).patches, 0);
    s.server.put(seedNode());
    s.clock.advance(3000);
    await c.run(ctx());
    assertEquals(counts(s.server).patches, 1);
    assertEquals(counts(s.server).nodeLists, 0);
  } finally {
    await s.cleanup();
  }
});

Deno.test("a failed write re-reads the Node and writes again at the next probe", async () => {
  const s = await setup();
  try {
    const c = controllerWithBmc(s);
    s.server.injectFault({ method: "PATCH", pathPrefix: `/api/v1/nodes/${NODE}/status`, count: 1, status: 403 });
    await assertRejects(() => c.run(ctx()), Error, /Node "node-1".*403/);
    s.server.clearRequests();
    s.clock.advance(3000);
    await c.run(ctx());
    assertEquals(
      s.server.requests.filter((q) => q.path.includes("/nodes/")).map((q) => `${q.method} ${q.status}`),
      ["GET 200", "PATCH 200"],
    );
    assertEquals(nodeConditions(s.server).NodeClientIP.message, "192.0.2.10");
  } finally {
    await s.cleanup();
  }
});

Deno.test("settings: isCheckOObIP false -> no NodeOobIP and no ipmitool; NET_CARD_NAME re-read each minute", async () => {
  const s = await setup([
    seedNode(),
    configMap("ccm-config", { NET_CARD_NAME: "bond1" }),
    configMap("controller-config", { isCheckOObIP: "false" }),
  ]);
  try {
    await s.host.setLink("eth7", { operstate: "up" });
    s.host.setAddresses("eth7", ["198.51.100.70"]);
    // ipmitool answers only when the test says so: whether the probe waits for it must not depend on timing.
    const ipmitool = ipmitoolRunner("ok");
    const answered = Promise.withResolvers<void>();
    const runner = Object.assign(
      (argv: readonly string[], options: RunOptions) => {
        runner.calls++;
        return answered.promise.then(() => ipmitool(argv, options));
      },
      { calls: 0 },
    );
    const ipmi = finishing(runner);
    const c = createNodeNetworkController(
      testDeps({ kube: s.kube, clock: s.clock, runCommand: ipmi.runner }),
      testOptions(),
      s.host,
    );
    let { result } = await c.run(ctx());
    assertEquals(runner.calls, 0);
    assertEquals(result.oobIp, null);
    assert(!("NodeOobIP" in nodeConditions(s.server)));

    s.server.put(configMap("ccm-config", { NET_CARD_NAME: "eth7" }));
    s.server.put(configMap("controller-config", { isCheckOObIP: "True" }));
    s.clock.advance(30_000);
    ({ result } = await c.run(ctx()));
    assertEquals(result.nic, "bond1", "re-read at most every minute");
    s.clock.advance(30_000);
    ({ result } = await c.run(ctx()));
    assertEquals(result.nic, "eth7");
    assertEquals(runner.calls, 1);
    assertEquals(result.oobIp, null, "pending: the probe does not wait for ipmitool");
    answered.resolve();
    await ipmi.landed();
    s.clock.advance(3000);
    ({ result } = await c.run(ctx()));
    assertEquals(result.oobIp, "198.51.100.23");
    const got = nodeConditions(s.server);
    assertEquals([got.NodeClientIP.reason, got.NodeClientIP.message], ["eth7", "198.51.100.70"]);
    assertEquals(got.NodeOobIP.message, "198.51.100.23");
  } finally {
    await s.cleanup();
  }
});

Deno.test("settings: --net-card-name overrides ccm-config; missing ConfigMaps mean bond1 and OOB on", async () => {
  const s = await setup([seedNode()]);
  try {
    await s.host.setLink("eth7", { operstate: "up" });
    const runner = ipmitoolRunner("ok");
    let c = createNodeNetworkController(
      testDeps({ kube: s.kube, clock: s.clock, runCommand: runner }),
      testOptions(),
      s.host,
    );
    let { result } = await c.run(ctx());
    assertEquals([result.nic, result.oobIp], ["bond1", "198.51.100.23"]);

    s.server.clearRequests();
    c = createNodeNetworkController(
      testDeps({ kube: s.kube, clock: s.clock, runCommand: runner }),
      testOptions({ netCardName: "eth7" }),
      s.host,
    );
    ({ result } = await c.run(ctx()));
    assertEquals(result.nic, "eth7");
    assert(!s.server.requests.some((q) => q.path.endsWith("/ccm-config")), "ccm-config is not read");
  } finally {
    await s.cleanup();
  }
});

Deno.test("dry run and local mode: everything computed, nothing written", async () => {
  const s = await setup();
  try {
    const c = controllerWithBmc(s);
    const { result, summary } = await c.run(ctx(true));
    assertEquals(counts(s.server).patches, 0);
    assertEquals(result.written, false);
    assertEquals(result.conditions.length, 4);
    assertMatch(summary, /would write 4 conditions/);

    const local = createNodeNetworkController(
      testDeps({ kube: null, clock: s.clock, runCommand: ipmitoolRunner("ok") }),
      testOptions(),
      s.host,
    );
    const out = await local.run(ctx());
    assertEquals([out.result.nic, out.result.state, out.result.ipv4], ["bond1", "UP", "192.0.2.10"]);
    assertEquals(out.result.written, false);
    assertEquals(counts(s.server).patches, 0);
  } finally {
    await s.cleanup();
  }
});
