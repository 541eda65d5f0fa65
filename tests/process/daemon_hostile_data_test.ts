/**
 * Hostile cluster data, with the daemon as its own process: huge and odd annotations and data on the ranges
 * ConfigMap, version ConfigMaps with thousands of keys, pods without IPs or labels, the daemon's own Node missing
 * (then created), and `ccm-config` naming an interface that does not exist. The daemon stays up, the errors are
 * readable in `/api/v1/status`, and what can be published is published.
 */
import { assert, assertEquals, assertStringIncludes } from "../support/assert.ts";
import { freePort, startDaemon, waitFor } from "../support/daemon_process.ts";
import { startFakeKubeApiServer } from "../fake_kube/server.ts";
import {
  configMapObject,
  createDaemonHost,
  duplicateEvents,
  hostArgs,
  jobStatus,
  nodeObject,
  portRangeListeners,
  VERSION_LABELS,
} from "../support/faults_cluster.ts";
import { INSTANCE_LABEL } from "../../controllers/log_cleanup/plan.ts";

const NODE = "node-hostile";
const ODD = "\u0000\u0001\u0002\ufffd\ud800\u202e<script>\\\"'\n\t";

/** 10,000 annotations: binary-ish text, JSON, empty values, and 2,500 range-like values that are not ranges. */
function hostileAnnotations(range: readonly [number, number]): Record<string, string> {
  const annotations: Record<string, string> = {
    "polarbox.mpd.reserved.port.ranges": `${range[0]}-${range[1]}`,
    "huge.value": `1${"0".repeat(900 * 1024)}`,
  };
  for (let i = 0; i < 10_000; i++) {
    const kinds = [`${ODD}${i}`, `5400-${70_000 + i}`, JSON.stringify({ i, nested: [1, 2] }), ""];
    annotations[`example.com/k-${i}${i % 7 === 0 ? ODD.slice(0, 3) : ""}`] = kinds[i % 4];
  }
  return annotations;
}

function pod(name: string, options: { labels?: Record<string, string>; ip?: string; node?: string }): object {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "kube-system", labels: options.labels },
    spec: options.node ? { nodeName: options.node, containers: [{ name: "c", image: "x" }] } : {},
    status: options.ip === undefined ? {} : { podIP: options.ip },
  };
}

Deno.test("hostile cluster data: the daemon stays up, says what is wrong, and publishes what it can", async () => {
  const host = await createDaemonHost();
  const listeners = portRangeListeners();
  const used = listeners.open();
  const manyKeys: Record<string, string> = { name: "v-many" };
  for (let i = 0; i < 3000; i++) {
    manyKeys[i % 2 ? `xImage${i}` : `note-${i}`] = i % 2 ? `registry.example/img:${i}` : ODD;
  }
  const server = await startFakeKubeApiServer({
    seed: [
      configMapObject("ccm-config", { data: { NET_CARD_NAME: "nosuchnic0" } }),
      configMapObject("controller-config", { data: { isCheckOObIP: "false", enablePrintPort: ODD } }),
      configMapObject("polardb4mpd-controller", {
        annotations: hostileAnnotations(listeners.range),
        data: { blob: ODD.repeat(30_000), [`${"k".repeat(250)}`]: "" },
      }),
      configMapObject("minor-version-many", { labels: VERSION_LABELS, data: manyKeys }),
      configMapObject("minor-version-ok", { labels: VERSION_LABELS, data: { name: "v-ok", engineImage: "busybox" } }),
      configMapObject("minor-version-nameless", { labels: VERSION_LABELS, data: { engineImage: "busybox" } }),
      configMapObject("minor-version-root", { labels: VERSION_LABELS, data: { latestVersion: ODD } }),
      pod("daemon-no-ip", { labels: { app: "polarstack-daemon" }, node: "other-1" }),
      pod("daemon-no-node", { labels: { app: "polarstack-daemon" }, ip: "10.255.255.1" }),
      pod("daemon-bad-ip", { labels: { app: "polarstack-daemon" }, node: "other-2", ip: "not an ip" }),
      pod("no-labels", {}),
      pod("instance-empty-label", { labels: { [INSTANCE_LABEL]: "" } }),
    ],
  });
  const daemon = await startDaemon(
    ["--kubeconfig", server.kubeconfigPath, "--current-node-name", NODE, ...hostArgs(host, { nic: null })],
    { port: freePort(), env: { HOME: host.dir } },
  );
  try {
    // The own Node is missing: a clear error naming it, retried at every probe.
    const missing = await waitFor(async () => {
      const job = (await jobStatus(daemon.url))["node-network"];
      return job.failures >= 3 ? job : null;
    }, { what: "node-network to fail a few times on the missing Node", timeoutMs: 20_000 });
    assertStringIncludes(missing.lastRun?.error ?? "", `Node "${NODE}" not found`);

    const jobs = await waitFor(async () => {
      const all = await jobStatus(daemon.url);
      return ["port-usage", "core-version", "log-cleanup"].every((name) => all[name].runs >= 1) ? all : null;
    }, { what: "the other jobs' first runs", timeoutMs: 40_000 });
    for (const name of ["port-usage", "core-version", "log-cleanup"]) {
      assertEquals(jobs[name].lastRun?.outcome, "success", `${name}: ${jobs[name].lastRun?.error}`);
    }
    const portUsage = server.get("configmaps", "kube-system", `cloud-provider-port-usage-${NODE}`);
    assertEquals(portUsage?.data?.[String(used)], "the port already use");
    const ports = await (await fetch(`${daemon.url}/api/v1/ports`)).json();
    assert(ports.data.used.includes(used), "the valid range is scanned");
    assert(ports.data.invalid.length >= 2, `invalid ranges reported: ${ports.data.invalid.length}`);

    const availability = server.get("configmaps", "kube-system", `polarstack-daemon-version-availability-${NODE}`);
    assertEquals(availability?.data?.existingVersions, "v-ok");
    const details = JSON.parse(availability?.data?.details ?? "[]") as Array<{ name: string; missing: string[] }>;
    assertEquals(details.find((v) => v.name === "v-many")?.missing.length, 1500);

    // Pods without IPs, nodes or labels: the fan-out skips or reports them, nothing breaks.
    const asked = await fetch(`${daemon.url}/api/v1/RequestCheckCoreVersion`, {
      method: "POST",
      headers: { Authorization: `Bearer ${server.peerToken}` },
    });
    assertEquals(asked.status, 200, await asked.text());
    const fanOut = await waitFor(async () => {
      const body = await (await fetch(`${daemon.url}/api/v1/versions`)).json();
      return body.data?.fanOut ?? null;
    }, { what: "the fan-out's outcome", timeoutMs: 15_000 });
    const called = fanOut.peers.map((p: { pod: string }) => p.pod).sort();
    assert(!called.includes("daemon-no-ip"), "a pod without an IP is not called");
    for (const peer of fanOut.peers) assertEquals(peer.ok, false, JSON.stringify(peer));

    // The Node appears: the conditions follow, with the missing interface as StateUnKnown.
    server.put(nodeObject(NODE));
    const conditions = await waitFor(() => {
      const found = server.get("nodes", undefined, NODE)?.status?.conditions as
        | Array<{ type: string; status: string; reason: string; message: string }>
        | undefined;
      const byType = Object.fromEntries((found ?? []).map((c) => [c.type, c]));
      return byType.NodeClientNetworkUnavailable ? byType : null;
    }, { what: "the conditions once the Node exists", timeoutMs: 10_000 });
    assertEquals(conditions.NodeClientNetworkUnavailable, {
      ...conditions.NodeClientNetworkUnavailable,
      status: "True",
      reason: "StateUnKnown",
      message: "nosuchnic0 StateUnKnown",
    });
    const recovered = (await jobStatus(daemon.url))["node-network"];
    assertEquals(recovered.lastRun?.outcome, "success");
    assertStringIncludes(recovered.lastRun?.summary ?? "", "nosuchnic0 UNKNOWN");

    const events = await waitFor(() => {
      const found = server.list("events", "default");
      return found.some((e) => e.reason === "ClientNetworkUnavailable") ? found : null;
    }, { what: "the Event of the missing interface", timeoutMs: 10_000 });
    assertEquals(duplicateEvents(events), []);
    for (const event of events) {
      assert(event.message.length <= 4096, `Event ${event.reason} is ${event.message.length} characters long`);
    }
    assert(events.some((e) => e.reason === "PortRangeInvalid"), "the invalid ranges are reported");
    const longest = Math.max(...daemon.stderr().split("\n").map((line) => line.length));
    assert(longest <= 8192, `the longest log line has ${longest} characters`);
    const health = await fetch(`${daemon.url}/healthz`);
    assertEquals(health.status, 200);
    await health.body?.cancel();
  } finally {
    assertEquals(await daemon.stop(), 0);
    listeners.close();
    await server.close();
    await host.close();
  }
});
