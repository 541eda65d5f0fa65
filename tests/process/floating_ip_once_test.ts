/**
 * `once floating-ip` as an operator runs it: a dry run against the cluster shows what this host would do, changes
 * nothing (no Lease, no address); local mode keeps every address and says why.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { runMain } from "../support/daemon_process.ts";
import { startFakeKubeApiServer } from "../fake_kube/server.ts";

const FIP = "10.211.0.50";

Deno.test("once floating-ip --dry-run --json: the plan for this host from the watch, and nothing written", async () => {
  const server = await startFakeKubeApiServer({
    seed: [
      {
        apiVersion: "mpd.polardb.aliyun.com/v1",
        kind: "MPDCluster",
        metadata: { name: "pg", namespace: "db" },
        spec: { netCfg: { leaderFloatingIP: { ipAddressCfgType: "manual", ipAddress: FIP, mask: 24 } } },
        status: { leaderInstanceHost: "h1", dbInstanceStatus: { ins1: { insType: "rw", nodeName: "h1" } } },
      },
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "controller-config", namespace: "kube-system" },
        data: { enableVip: "true" },
      },
    ],
  });
  try {
    const { code, stdout, stderr } = await runMain([
      "once",
      "floating-ip",
      "--dry-run",
      "--json",
      "--kubeconfig",
      server.kubeconfigPath,
      "--current-node-name=h1",
      "--net-card-name=lo",
    ]);
    assertEquals(code, 0, stderr);
    const result = JSON.parse(stdout);
    assertEquals([result.node, result.apiReachable, result.enableVip, result.clusters, result.dryRun], [
      "h1",
      true,
      true,
      1,
      true,
    ]);
    assertEquals(
      result.addresses.map((a: Record<string, unknown>) => [a.address, a.cluster, a.action, a.held, a.nic, a.mode]),
      [[FIP, "db/pg", "acquire", false, "lo", "VirtualIF"]],
    );
    assertEquals(server.list("leases"), []);
    const writes = server.requests.filter((r) => r.method !== "GET");
    assertEquals(writes.map((r) => `${r.method} ${r.path}`), []);
  } finally {
    await server.close();
  }
});

Deno.test("once floating-ip --local --json: no cluster, so every address is kept and nothing is taken", async () => {
  const { code, stdout, stderr } = await runMain(["once", "floating-ip", "--local", "--json"]);
  assertEquals(code, 0, stderr);
  const result = JSON.parse(stdout);
  assertEquals([result.apiReachable, result.clusters, result.dryRun], [false, 0, true]);
  assert(result.addresses.every((a: { action: string }) => a.action === "none"));
});
