/**
 * `ccm-config` (the site's) and `controller-config` (the operator's) are never created by the manifests, so a
 * cluster may lack them: each missing one is one clear log line naming it and the default used, once, not at
 * every read; the jobs go on with the defaults.
 */
import { assert, assertEquals } from "../support/assert.ts";
import type { Logger } from "../../core/types.ts";
import { defaultConfig } from "../../config/config.ts";
import { createPortUsageController } from "../../controllers/port_usage/job.ts";
import { nodeNetworkOptions, portUsageOptions } from "../../job_options.ts";
import { createNodeNetworkController } from "../../controllers/node_network/job.ts";
import { createCommandRunner } from "../../host/command.ts";
import { createSettingReader } from "../../k8s/config_maps.ts";
import { configMapObject, nodeObject } from "../support/faults_cluster.ts";
import { systemClock } from "../../core/types.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";
import { jobDeps } from "../support/job_deps.ts";

/** A logger that keeps `level message` lines, with the properties filled in. */
function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = new Proxy({}, {
    get: (_, level) => (message: string, props?: Record<string, unknown>) =>
      lines.push(`${String(level)} ${message.replace(/\{(\w+)\}/g, (_, k) => String(props?.[k]))}`),
  }) as Logger;
  return { log, lines };
}

Deno.test("a missing ConfigMap of another owner: one line naming it and the default; a line when it appears", async () => {
  const { server, kube, close } = await startFakeCluster({ client: { userAgent: "test", namespace: "kube-system" } });
  try {
    const { log, lines } = recordingLog();
    const read = createSettingReader(log);
    const nic = { configMap: "ccm-config", key: "NET_CARD_NAME", fallback: "bond1" };
    assertEquals([await read(kube, nic), await read(kube, nic), await read(kube, nic)], [
      undefined,
      undefined,
      undefined,
    ]);
    assertEquals(lines, [
      'warn ConfigMap "ccm-config" not found in namespace kube-system: using the default NET_CARD_NAME=bond1 (create it from manifests/examples/config_maps.yaml to choose)',
    ]);
    server.put(configMapObject("ccm-config", { data: { NET_CARD_NAME: "eth9" } }));
    assertEquals(await read(kube, nic), "eth9");
    assertEquals(lines.at(-1), 'info ConfigMap "ccm-config" found: NET_CARD_NAME is read from it');
    server.remove("configmaps", "kube-system", "ccm-config");
    assertEquals(await read(kube, nic), undefined);
    assertEquals(lines.length, 3, "missing again: said again, once");
  } finally {
    await close();
  }
});

Deno.test("port-usage and node-network on a cluster without ccm-config and controller-config say so and use defaults", async () => {
  const node = "node-no-settings";
  const { server, kube, close } = await startFakeCluster({
    seed: [nodeObject(node)],
    client: { userAgent: "test", namespace: "kube-system" },
  });
  try {
    const { log, lines } = recordingLog();
    const config = defaultConfig({ currentNodeName: node, portRanges: "1-2" });
    const deps = jobDeps({
      kube,
      clock: systemClock,
      log,
      runCommand: createCommandRunner(),
    });
    const ctx = () => ({ signal: AbortSignal.timeout(20_000), dryRun: true });
    const ports = await createPortUsageController(deps, portUsageOptions(config)).run(ctx());
    assertEquals((ports.result as { enabled: boolean }).enabled, true);
    const network = await createNodeNetworkController(deps, nodeNetworkOptions(config)).run(ctx());
    assertEquals((network.result as { nic: string }).nic, "bond1");
    const missing = lines.filter((l) => l.includes("not found in namespace kube-system"));
    assertEquals(missing.map((l) => l.slice(0, l.indexOf(" (create"))), [
      'warn ConfigMap "controller-config" not found in namespace kube-system: using the default enablePrintPort=true',
      'warn ConfigMap "ccm-config" not found in namespace kube-system: using the default NET_CARD_NAME=bond1',
      'warn ConfigMap "controller-config" not found in namespace kube-system: using the default isCheckOObIP=true',
    ]);
    assert(server.list("configmaps", "kube-system").every((cm) => cm.metadata.name !== "ccm-config"));
  } finally {
    await close();
  }
});
