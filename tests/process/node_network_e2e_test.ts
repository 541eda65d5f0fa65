/**
 * End to end: the daemon (`main.ts`) and the fake API server run as processes inside a network namespace that
 * holds a veth pair named bond1; the test changes the link and reads the Node through the fake server.
 */
import { assert, assertEquals, assertNotEquals, fail } from "../support/assert.ts";
import type { NodeCondition } from "../../controllers/node_network/conditions.ts";
import { addVeth, canMakeNetns, createNetns, type NetNs, type NsProcess, run, startIn } from "../support/netns.ts";
import { ipmitoolFixture, statusReasonMessage } from "../support/node_network_fixtures.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";
import { daemonCommand, waitFor } from "../support/daemon_process.ts";
import { fakeKubeApiServerCommand, seededServerFlags } from "../fake_kube/server.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CA = `${ROOT}tests/fake_kube/certs/ca.pem`;
const NODE = "node-e2e";
const PROBE_MS = 500;
const REPORT_MS = 5000;
const TOKEN = `e2e-${crypto.randomUUID()}`;

interface Logged {
  method: string;
  path: string;
  body: string;
  time: number;
}

class Cluster {
  constructor(readonly ns: NetNs, readonly url: string) {}

  async call(method: string, path: string): Promise<unknown> {
    const r = await this.ns.exec([
      "curl",
      "-sS",
      "--fail-with-body",
      "--cacert",
      CA,
      "-X",
      method,
      "-H",
      `Authorization: Bearer ${TOKEN}`,
      `${this.url}${path}`,
    ]);
    assert(r.code === 0, `Cannot ${method} ${path} on the fake server: ${r.stderr}${r.stdout}`);
    return r.stdout.trim() ? JSON.parse(r.stdout) : null;
  }

  async conditions(): Promise<Record<string, NodeCondition>> {
    const node = await this.call("GET", `/_fake/objects/nodes/${NODE}`) as {
      status?: { conditions?: NodeCondition[] };
    };
    return Object.fromEntries((node.status?.conditions ?? []).map((c) => [c.type, c]));
  }

  requests(): Promise<Logged[]> {
    return this.call("GET", "/_fake/requests") as Promise<Logged[]>;
  }

  async clearRequests(): Promise<void> {
    await this.call("DELETE", "/_fake/requests");
  }

  /** The arrival time of the first PATCH after `since` that wrote `type` with `status`. */
  async patchTime(since: number, { type, status }: { type: string; status: string }): Promise<number | null> {
    for (const r of await this.requests()) {
      // Only the Node's status: a repeated Event is PATCHed too, to raise its count.
      if (r.method !== "PATCH" || !r.path.endsWith("/status") || r.time < since) continue;
      const sent = JSON.parse(r.body).status.conditions as NodeCondition[];
      if (sent.some((c) => c.type === type && c.status === status)) return r.time;
    }
    return null;
  }
}

/** Makes a change and checks that the condition is written within 2 probe intervals of it. */
async function expectTransition(
  cluster: Cluster,
  want: { what: string; change: () => Promise<void>; type: string; status: string; reason: string },
) {
  const t0 = Date.now();
  await want.change();
  const at = await waitFor(() => cluster.patchTime(t0, want), { what: want.what, timeoutMs: 10_000 });
  const got = (await cluster.conditions())[want.type];
  assertEquals([got.status, got.reason], [want.status, want.reason], want.what);
  assert(at - t0 <= 2 * PROBE_MS, `${want.what}: written ${at - t0} ms after the change (limit ${2 * PROBE_MS})`);
  console.log(`${want.what}: written ${at - t0} ms after the change`);
}

const seed = [
  { apiVersion: "v1", kind: "Node", metadata: { name: NODE }, status: { conditions: [] } },
  {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "ccm-config", namespace: "kube-system" },
    data: { NET_CARD_NAME: "bond1", NET_MASK: "24" },
  },
  {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "controller-config", namespace: "kube-system" },
    data: { isCheckOObIP: "true" },
  },
];

Deno.test({
  name: "daemon in a network namespace keeps the Node conditions of a real veth bond1",
  ignore: skipUnless(canMakeNetns() && hasCommand("curl"), "needs root, iproute2 (ip) and curl"),
  sanitizeResources: false,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "psd-e2e-" });
    const ns = await createNetns();
    const processes: NsProcess[] = [];
    try {
      await addVeth(ns, { nic: "bond1", peer: "bond1p", cidr: "192.0.2.10/24" });
      await Deno.writeTextFile(`${dir}/seed.json`, JSON.stringify(seed));
      await Deno.mkdir(`${dir}/bin`);
      await Deno.symlink(ipmitoolFixture("ok"), `${dir}/bin/ipmitool`);
      const fake = await startIn(
        ns,
        fakeKubeApiServerCommand(seededServerFlags(dir, { token: TOKEN })),
        { cwd: ROOT, ready: /listening on (https:\/\/\S+)/ },
      );
      processes.push(fake.process);
      const cluster = new Cluster(ns, fake.match![1]);
      const env = { PATH: `${dir}/bin:/usr/sbin:/usr/bin:/sbin:/bin` };
      const common = ["--kubeconfig", `${dir}/kubeconfig`, "--current-node-name", NODE];
      const daemon = await startIn(ns, [
        ...daemonCommand([]),
        ...common,
        "--net-probe-interval",
        `${PROBE_MS}ms`,
        "--node-status-report-frequency",
        `${REPORT_MS / 1000}s`,
        "--port",
        "18999",
        "--dbcluster-log-dir",
        dir,
      ], { cwd: ROOT, env });
      processes.push(daemon.process);
      const diag = () => `daemon stderr:\n${daemon.process.stderr().slice(-3000)}`;

      await t.step("first report: StateUP, the client IP, the OOB IP from ipmitool", async () => {
        const got = await waitFor(async () => {
          const c = await cluster.conditions();
          return c.NodeOobIP && c.NodeClientNetworkUnavailable ? c : null;
        }, { what: "the first report", timeoutMs: 30_000 }).catch((e) => fail(`${e.message}\n${diag()}`));
        assertEquals(
          statusReasonMessage(got.NodeClientNetworkUnavailable),
          ["False", "StateUP", "bond1 StateUP"],
        );
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
        assertEquals(got.NodeRefreshFlag.status, "True");
        const log = await cluster.requests();
        assert(!log.some((r) => r.method === "GET" && r.path === "/api/v1/nodes"), "never a LIST of nodes");
      });

      await t.step(
        "link down -> True/StateDown, up again -> False/StateUP, each within 2 probe intervals",
        async () => {
          await expectTransition(cluster, {
            what: "link down",
            change: () => ns.ip("link", "set", "bond1", "down"),
            type: "NodeClientNetworkUnavailable",
            status: "True",
            reason: "StateDown",
          });
          await expectTransition(cluster, {
            what: "link up",
            change: () => ns.ip("link", "set", "bond1", "up"),
            type: "NodeClientNetworkUnavailable",
            status: "False",
            reason: "StateUP",
          });
          await expectTransition(cluster, {
            what: "peer down (lowerlayerdown)",
            change: () => ns.ip("link", "set", "bond1p", "down"),
            type: "NodeClientNetworkUnavailable",
            status: "True",
            reason: "StateDown",
          });
          await expectTransition(cluster, {
            what: "peer up",
            change: () => ns.ip("link", "set", "bond1p", "up"),
            type: "NodeClientNetworkUnavailable",
            status: "False",
            reason: "StateUP",
          });
        },
      );

      await t.step("address change -> NodeClientIP follows", async () => {
        const t0 = Date.now();
        await ns.ip("addr", "add", "198.51.100.7/24", "dev", "bond1");
        await ns.ip("addr", "del", "192.0.2.10/24", "dev", "bond1");
        await waitFor(async () => (await cluster.conditions()).NodeClientIP?.message === "198.51.100.7", {
          what: "the new client IP",
          timeoutMs: 10_000,
        });
        const patch = (await cluster.requests()).find((r) =>
          r.method === "PATCH" && r.time >= t0 && r.body.includes("198.51.100.7")
        );
        assert(patch && patch.time - t0 <= 2 * PROBE_MS, "within 2 probe intervals");
      });

      await t.step("steady period: heartbeats once per report period, transition times kept, no LIST", async () => {
        const before = await cluster.conditions();
        await cluster.clearRequests();
        const seconds = 11;
        // The span whose requests are counted: the assertions are about what happens during it.
        await new Promise((r) => setTimeout(r, seconds * 1000));
        const log = await cluster.requests();
        const after = await cluster.conditions();
        const patches = log.filter((r) => r.method === "PATCH");
        const lists = log.filter((r) => r.method === "GET" && r.path === "/api/v1/nodes");
        const nodeGets = log.filter((r) => r.method === "GET" && r.path === `/api/v1/nodes/${NODE}`);
        assertEquals(lists.length, 0, "no LIST of nodes");
        assertEquals(nodeGets.length, 0, "the Node is not re-read while writes succeed");
        assert(
          patches.length >= 2 && patches.length <= Math.ceil(seconds * 1000 / REPORT_MS),
          `${patches.length} PATCHes in ${seconds} s with a ${REPORT_MS} ms report period`,
        );
        for (const p of patches) assertEquals(JSON.parse(p.body).status.conditions.length, 4);
        for (const type of ["NodeClientNetworkUnavailable", "NodeClientIP", "NodeOobIP", "NodeRefreshFlag"]) {
          assertEquals(after[type].lastTransitionTime, before[type].lastTransitionTime, `${type} transition kept`);
          assertNotEquals(after[type].lastHeartbeatTime, before[type].lastHeartbeatTime, `${type} heartbeat moved`);
        }
        console.log(
          `steady ${seconds} s: ${log.length} requests (${patches.length} PATCH, ${
            log.filter((r) => r.path.includes("/configmaps/")).length
          } ConfigMap GET, 0 LIST)`,
        );
      });

      await t.step("GET /api/v1/node-network answers the last probe", async () => {
        const r = await ns.exec(["curl", "-sS", "http://127.0.0.1:18999/api/v1/node-network"]);
        const body = JSON.parse(r.stdout);
        assertEquals(body.code, "1");
        assertEquals(
          [body.data.node, body.data.nic, body.data.state, body.data.ipv4, body.data.oobIp],
          [NODE, "bond1", "UP", "198.51.100.7", "198.51.100.23"],
        );
        assertEquals(body.data.conditions.length, 4);
      });

      await t.step("interface deleted -> StateUnKnown, NodeClientIP False with the last known IP", async () => {
        await expectTransition(cluster, {
          what: "interface deleted",
          change: () => ns.ip("link", "del", "bond1"),
          type: "NodeClientNetworkUnavailable",
          status: "True",
          reason: "StateUnKnown",
        });
        const got = await cluster.conditions();
        assertEquals(statusReasonMessage(got.NodeClientIP), [
          "False",
          "bond1",
          "198.51.100.7",
        ]);
        assertEquals(got.NodeClientNetworkUnavailable.message, "bond1 StateUnKnown");
      });

      await t.step("once node-network --json --dry-run: the same shape, no write", async () => {
        await daemon.process.stop();
        await cluster.clearRequests();
        const r = await run(ns.wrap([
          "env",
          `PATH=${env.PATH}`,
          "NO_COLOR=1",
          ...daemonCommand([]),
          "once",
          "node-network",
          "--json",
          "--dry-run",
          ...common,
        ]));
        assertEquals(r.code, 0, r.stderr);
        const out = JSON.parse(r.stdout);
        assertEquals(
          [out.node, out.nic, out.state, out.ipv4, out.oobIp],
          [NODE, "bond1", "UNKNOWN", null, "198.51.100.23"],
        );
        assertEquals(out.conditions.map((c: NodeCondition) => `${c.type}=${c.status}`), [
          "NodeClientNetworkUnavailable=True",
          "NodeClientIP=False",
          "NodeOobIP=True",
          "NodeRefreshFlag=True",
        ]);
        assertEquals(out.conditions[1].message, "198.51.100.7", "the last known IP, read from the Node");
        const log = await cluster.requests();
        assert(!log.some((q) => q.method !== "GET"), "a dry run writes nothing");
        assert(!log.some((q) => q.path === "/api/v1/nodes"), "and lists no nodes");
      });
    } finally {
      for (const p of processes.reverse()) await p.stop();
      await ns.remove();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
