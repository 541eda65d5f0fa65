/**
 * The daemon as a process with its cluster cache, against the fake API server: a change of the ranges ConfigMap is
 * published in under 2 s and a new `NET_CARD_NAME` is in the conditions within one probe, without waiting for the
 * minute; in between, the jobs' reads cost no request; `/readyz` and `/api/v1/status` say when a watch is lost.
 */
import { assert, assertEquals, fail } from "../support/assert.ts";
import { portUsageConfigMapName } from "../../controllers/port_usage/plan.ts";
import { freePort, startDaemon, waitFor } from "../support/daemon_process.ts";
import { configMapObject, createDaemonHost, hostArgs, nodeObject, readiness } from "../support/faults_cluster.ts";
import { startFakeKubeApiServer } from "../fake_kube/server.ts";

const NODE = "node-cache-e2e";
const RANGES = "polardb4mpd-controller";
const PROBE_MS = 500;
const CMS = "/api/v1/namespaces/kube-system/configmaps";

interface CacheLine {
  what: string;
  synced: boolean;
  watching: boolean;
  ageMs: number | null;
  lastError: { message: string } | null;
}

Deno.test({
  name: "daemon: the cache follows a ConfigMap change in under 2 s, reads cost nothing, a lost watch is reported",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const host = await createDaemonHost();
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const listening = (listener.addr as Deno.NetAddr).port;
    const server = await startFakeKubeApiServer({
      seed: [
        nodeObject(NODE),
        configMapObject(RANGES, { annotations: { "polarbox.mpd.engine.port.range": "2-3" } }),
        configMapObject("ccm-config", { data: { NET_CARD_NAME: "lo" } }),
        configMapObject("controller-config", { data: { isCheckOObIP: "false" } }),
      ],
    });
    const daemon = await startDaemon([
      "--kubeconfig",
      server.kubeconfigPath,
      "--current-node-name",
      NODE,
      ...hostArgs(host, { nic: null }),
    ], { port: freePort() });
    const diag = () => `daemon stderr:\n${daemon.stderr().slice(-3000)}`;
    const published = () => server.get("configmaps", "kube-system", portUsageConfigMapName(NODE));
    const caches = async () => {
      const body = await (await fetch(`${daemon.url}/api/v1/status`)).json();
      return body.data.caches as CacheLine[];
    };
    try {
      await t.step("at start: five caches listed and watching, the port-usage ConfigMap published", async () => {
        // The floating-IP job's two watches too: their first lists would otherwise fall into the steady span.
        await waitFor(async () => (await caches()).filter((c) => c.watching).length === 7 && published(), {
          what: "the caches and the first port-usage write",
          timeoutMs: 30_000,
        }).catch((error) => fail(`${error.message}\n${diag()}`));
        assertEquals(published()?.data, {});
        await waitFor(async () => (await readiness(daemon.url)).status === 200, { what: "every job's first run" });
      });

      await t.step("a new port range is scanned and published in under 2 s", async () => {
        server.clearRequests();
        const t0 = Date.now();
        server.put(configMapObject(RANGES, { annotations: { "polarbox.mpd.engine.port.range": String(listening) } }));
        await waitFor(() => published()?.data?.[String(listening)], { what: "the new port", timeoutMs: 10_000 })
          .catch((error) => fail(`${error.message}\n${diag()}`));
        const write = server.requests.find((r) =>
          r.method === "PUT" && r.path === `${CMS}/${portUsageConfigMapName(NODE)}`
        )!;
        console.log(`ranges ConfigMap changed -> port-usage ConfigMap written ${write.time - t0} ms later`);
        assert(write.time - t0 < 2000, `written ${write.time - t0} ms after the change`);
        const gets = server.requests.filter((r) => r.method === "GET" && !r.query.includes("watch=true"));
        assertEquals(gets.map((r) => r.path), [], "the job read the ConfigMaps from the cache");
      });

      await t.step("a new NET_CARD_NAME is in the conditions within one probe", async () => {
        const conditions = () =>
          Object.fromEntries(
            (server.get("nodes", undefined, NODE)?.status?.conditions ?? []).map((
              c: { type: string; reason: string },
            ) => [c.type, c.reason]),
          );
        await waitFor(() => conditions().NodeClientIP === "lo", { what: "the first conditions" });
        server.clearRequests();
        const t0 = Date.now();
        server.put(configMapObject("ccm-config", { data: { NET_CARD_NAME: "psdnone0" } }));
        await waitFor(() => conditions().NodeClientIP === "psdnone0", { what: "the new interface", timeoutMs: 5_000 });
        const patch = server.requests.find((r) => r.method === "PATCH" && r.body.includes("psdnone0"))!;
        console.log(`NET_CARD_NAME changed -> conditions written ${patch.time - t0} ms later (probe ${PROBE_MS} ms)`);
        assert(patch.time - t0 <= PROBE_MS, `written ${patch.time - t0} ms after the change`);
      });

      await t.step("steady: only the Node status heartbeat reaches the server", async () => {
        server.clearRequests();
        // The span whose requests are counted.
        await new Promise((r) => setTimeout(r, 5_000));
        // Events follow the changes of the steps before (the new range is in the ephemeral range): not counted here.
        const seen = server.requests.filter((r) => !r.path.endsWith("/events") && !r.path.includes("/events/"))
          .map((r) => `${r.method} ${r.path}`);
        assert(seen.length >= 2, `${seen.length} requests in 5 s`);
        assertEquals([...new Set(seen)], [`PATCH /api/v1/nodes/${NODE}/status`]);
      });

      await t.step("a lost watch: still ready, /readyz and /api/v1/status say which cache, how old, why", async () => {
        server.injectFault({ pathPrefix: CMS, watch: true, count: 1_000_000, status: 503 });
        const degraded = await waitFor(async () => {
          const { status, body } = await readiness(daemon.url);
          return status === 200 && body.degraded?.length === 5 ? body.degraded : null;
        }, { what: "/readyz to report the lost watches", timeoutMs: 10_000 });
        assert(
          [...degraded].every((line: string) => /not watched for \d+ s, the last objects are used: .*503/.test(line)),
          [...degraded].join("\n"),
        );
        const lost = (await caches()).filter((c) => c.what.startsWith("ConfigMap"));
        assertEquals(lost.length, 5);
        assert(
          lost.every((c) => c.synced && !c.watching && c.lastError?.message.includes("503")),
          JSON.stringify(lost),
        );
        server.clearFaults();
        await waitFor(async () => (await readiness(daemon.url)).body.degraded === undefined, {
          what: "the watches to come back",
          timeoutMs: 45_000,
        });
        assertEquals((await caches()).filter((c) => c.watching).length, 7);
      });
    } finally {
      await daemon.stop();
      listener.close();
      await server.close();
      await host.close();
    }
  },
});
