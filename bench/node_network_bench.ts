/**
 * Node-network request benchmark: one simulated hour of 3-second probes (a fast clock), counted from the fake
 * API server's request log, for this daemon's controller against the original's pattern driven by the same
 * clock and server (every probe: a LIST of all nodes, then one PATCH per condition, with the original's
 * hourly skip of NodeClientIP and NodeOobIP). Two hours are played: a steady one, and one whose link flaps
 * every 5.35 minutes. The cluster holds 3 nodes: the counts do not depend on its size (the original's LIST bodies do).
 * Run: `deno run -A bench/node_network_bench.ts`.
 */
import { getLogger } from "@logtape/logtape";
import { defaultConfig } from "../config/config.ts";
import type { NodeCondition } from "../controllers/node_network/conditions.ts";
import { createNodeNetworkController } from "../controllers/node_network/job.ts";
import { nodeNetworkOptions } from "../job_options.ts";
import { kubeTime } from "../k8s/values.ts";
import { createKubeClient, type KubeClient } from "../k8s/client.ts";
import { type FakeKubeApiServer, startFakeKubeApiServer } from "../tests/fake_kube/server.ts";
import { fakeHost, ipmitoolRunner } from "../tests/support/node_network_fixtures.ts";
import { testClock } from "../tests/support/job_deps.ts";

const NODE = "node-1";
const PROBE_MS = 3000;
const HOUR_MS = 3_600_000;
const PROBES = Number(Deno.env.get("BENCH_PROBES") ?? HOUR_MS / PROBE_MS);
const FLAP_EVERY = 107; // probes: a state change every 5.35 minutes (off the heartbeat minute)

interface Counts {
  writes: number;
  reads: number;
  lists: number;
  requestBytes: number;
}

function count(server: FakeKubeApiServer): Counts {
  const r = server.requests;
  return {
    writes: r.filter((q) => q.method !== "GET").length,
    reads: r.filter((q) => q.method === "GET").length,
    lists: r.filter((q) => q.method === "GET" && q.path === "/api/v1/nodes").length,
    requestBytes: r.reduce((n, q) => n + q.body.length, 0),
  };
}

function seed() {
  const nodes = Array.from({ length: 3 }, (_, i) => ({
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: `node-${i + 1}`, labels: { "kubernetes.io/hostname": `node-${i + 1}` } },
    status: {
      addresses: [{ type: "InternalIP", address: `192.0.2.${i + 1}` }, { type: "Hostname", address: `node-${i + 1}` }],
      conditions: [{
        type: "Ready",
        status: "True",
        reason: "KubeletReady",
        message: "kubelet is posting ready status",
        lastHeartbeatTime: "2026-01-01T00:00:00Z",
        lastTransitionTime: "2026-01-01T00:00:00Z",
      }],
    },
  }));
  return [
    ...nodes,
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "ccm-config", namespace: "kube-system" },
      data: { NET_CARD_NAME: "bond1" },
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "controller-config", namespace: "kube-system" },
      data: { isCheckOObIP: "true" },
    },
  ];
}

/** The original's probe (node_network_probe.go), request for request, with the same clock for its times. */
function originalProbe(
  kube: KubeClient,
  { now, state }: { now: () => Date; state: () => { up: boolean; ip: string } },
) {
  let initialized = false;
  return async function probe(): Promise<void> {
    if (!initialized) {
      // Init: the card name from ccm-config, its own Node by name; the hybrid-deploy setting once
      await kube.getConfigMap("ccm-config");
      await kube.getNode(NODE);
      await kube.getConfigMap("controller-config");
      initialized = true;
    }
    const list = await kube.request("GET", "/api/v1/nodes", { what: "list Nodes" }) as {
      items: { metadata: { name: string }; status?: { conditions?: NodeCondition[] } }[];
    };
    const node = list.items.find((n) => n.metadata.name === NODE)!;
    const conditions = node.status?.conditions ?? [];
    const find = (type: string) => conditions.find((c) => c.type === type);
    const fresh = (c: NodeCondition | undefined) =>
      c !== undefined && c.status === "True" && now().getTime() - Date.parse(c.lastHeartbeatTime ?? "") <= HOUR_MS;
    const write = async (c: Omit<NodeCondition, "lastHeartbeatTime" | "lastTransitionTime">) => {
      const at = kubeTime(now());
      await kube.patchNodeStatus(NODE, {
        status: { conditions: [{ ...c, lastHeartbeatTime: at, lastTransitionTime: at }] },
      });
    };
    const { up, ip } = state();
    const reason = up ? "StateUP" : "StateDown";
    await write({
      type: "NodeClientNetworkUnavailable",
      status: up ? "False" : "True",
      reason,
      message: `bond1 ${reason}`,
    });
    const clientIp = find("NodeClientIP");
    if (!(fresh(clientIp) && clientIp?.reason === "bond1")) {
      await write({ type: "NodeClientIP", status: "True", reason: "bond1", message: ip });
    }
    if (!fresh(find("NodeOobIP"))) {
      await write({ type: "NodeOobIP", status: "True", reason: "PowerOn", message: "198.51.100.23" });
    }
    await write({ type: "NodeRefreshFlag", status: "True", reason: "Refresh", message: "Refresh" });
  };
}

async function playHour(who: "ours" | "original", flap: boolean): Promise<Counts> {
  const host = await fakeHost();
  // the original's role could list every node; ours is held to the manifests' RBAC
  const server = await startFakeKubeApiServer({ seed: seed(), rbac: who === "ours" ? "manifests" : false });
  try {
    const kube = createKubeClient(server.connection(), { userAgent: "bench", qps: 1e9, burst: 1e9 });
    const clock = testClock();
    await host.setLink("bond1", { operstate: "up" });
    host.setAddresses("bond1", ["192.0.2.10"]);
    let up = true;
    const config = defaultConfig({
      currentNodeName: NODE,
      netProbeInterval: PROBE_MS,
      nodeStatusReportFrequency: 60_000,
      // The bench's client asks the server at every read (no cluster cache): settings re-read each minute.
      clusterCache: false,
    });
    const ours = createNodeNetworkController(
      {
        kube,
        clock,
        events: { record: () => {} },
        log: getLogger(["bench"]),
        runCommand: ipmitoolRunner("ok"),
      },
      nodeNetworkOptions(config),
      host,
    );
    const original = originalProbe(kube, { now: () => clock.now(), state: () => ({ up, ip: "192.0.2.10" }) });
    const ctx = { signal: new AbortController().signal, dryRun: false };
    for (let i = 0; i < PROBES; i++) {
      if (flap && i > 0 && i % FLAP_EVERY === 0) {
        up = !up;
        await host.setLink("bond1", up ? { operstate: "up" } : { operstate: "down", carrier: null, flags: 0x1002 });
      }
      if (who === "ours") await ours.run(ctx);
      else await original();
      clock.advance(PROBE_MS);
    }
    return count(server);
  } finally {
    await server.close();
    await host.cleanup();
  }
}

function show(name: string, r: { ours: Counts; original: Counts }) {
  const line = (who: string, c: Counts) =>
    `  ${who.padEnd(9)} ${String(c.writes).padStart(5)} writes  ${String(c.reads).padStart(5)} reads ` +
    `(${c.lists} LIST of all nodes)  ${(c.requestBytes / 1024).toFixed(0)} KiB sent`;
  console.log(`${name}: per node per hour (probe every ${PROBE_MS / 1000} s, ${PROBES} probes)`);
  console.log(line("ours", r.ours));
  console.log(line("original", r.original));
  console.log(
    `  ratio     ${(r.original.writes / r.ours.writes).toFixed(1)}x fewer writes, ` +
      `${(r.original.reads / r.ours.reads).toFixed(1)}x fewer reads, ` +
      `${((r.original.writes + r.original.reads) / (r.ours.writes + r.ours.reads)).toFixed(1)}x fewer requests`,
  );
}

const t0 = performance.now();
// Played side by side: the fake server's TLS answers over 1 KB take about 40 ms each, so the original's hour is slow.
const [oursSteady, originalSteady, oursFlapping, originalFlapping] = await Promise.all([
  playHour("ours", false),
  playHour("original", false),
  playHour("ours", true),
  playHour("original", true),
]);
const steady = { ours: oursSteady, original: originalSteady };
const flapping = { ours: oursFlapping, original: originalFlapping };
show("Steady hour", steady);
show(`Flapping hour (link down/up every ${(FLAP_EVERY * PROBE_MS) / 60_000} min)`, flapping);
console.log(`(4 simulated hours played in ${((performance.now() - t0) / 1000).toFixed(0)} s)`);

const summary = (r: { ours: Counts; original: Counts }) => ({
  ours: { writes: r.ours.writes, reads: r.ours.reads, lists: r.ours.lists },
  original: { writes: r.original.writes, reads: r.original.reads, lists: r.original.lists },
  writeRatio: Number((r.original.writes / r.ours.writes).toFixed(1)),
  readRatio: Number((r.original.reads / r.ours.reads).toFixed(1)),
  requestRatio: Number(((r.original.writes + r.original.reads) / (r.ours.writes + r.ours.reads)).toFixed(1)),
});
console.log(
  `RESULT ${
    JSON.stringify({
      bench: "node-network",
      unit: "requests per node per hour",
      steady: summary(steady),
      flapping: summary(flapping),
    })
  }`,
);
