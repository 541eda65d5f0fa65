/**
 * Fan-out of a change: N daemon processes (each its own node name) against one fake API server on this machine. The
 * ranges ConfigMap is changed once, and the time until each daemon has published the new port is taken from the
 * server's request log; then the same with `--cluster-cache=false`, where the change waits for the minute's run.
 * Also: the server's requests per second at steady state, and each daemon's RSS. N is 5 by default;
 * `FAN_OUT_DAEMONS=50` runs the full case (about 4 GB of RAM); `FAN_OUT_PEER=false` skips the peer (for the test
 * `tests/process/cache_fan_out_test.ts`). Usage: deno run -A bench/cache_fan_out_bench.ts
 */
import { portUsageConfigMapName } from "../controllers/port_usage/plan.ts";
import { type DaemonProcess, freePort, startDaemon, waitFor } from "../tests/support/daemon_process.ts";
import { configMapObject, createDaemonHost, hostArgs, nodeObject } from "../tests/support/faults_cluster.ts";
import { startFakeKubeApiServer } from "../tests/fake_kube/server.ts";

const N = Number(Deno.env.get("FAN_OUT_DAEMONS") ?? 5);
const STEADY_S = Number(Deno.env.get("FAN_OUT_STEADY_SECONDS") ?? 60);
const RANGES = "polardb4mpd-controller";

interface Phase {
  readonly label: string;
  readonly medianMs: number;
  readonly maxMs: number;
  readonly steadyPerSecond: number;
  readonly rssMb: number[];
}

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]) / 1024;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

async function phase(label: string, args: readonly string[], listening: number): Promise<Phase> {
  const nodes = Array.from({ length: N }, (_, i) => `fan-${label}-${i}`);
  const host = await createDaemonHost();
  const server = await startFakeKubeApiServer({
    seed: [
      ...nodes.map(nodeObject),
      configMapObject(RANGES, { annotations: { "polarbox.novip.engine.port.range": "5400-5800" } }),
      configMapObject("ccm-config", { data: { NET_CARD_NAME: "lo" } }),
      configMapObject("controller-config", { data: { isCheckOObIP: "false" } }),
    ],
    // About what the real server does; the fake's default (1 s) would be 50 x 5 stream events a second.
    bookmarkIntervalMs: 60_000,
  });
  const daemons: DaemonProcess[] = [];
  try {
    const t0 = Date.now();
    for (const node of nodes) {
      daemons.push(
        await startDaemon([
          "--kubeconfig",
          server.kubeconfigPath,
          "--current-node-name",
          node,
          ...hostArgs(host, { nic: null }).slice(0, 6),
          ...args,
        ], { port: freePort() }),
      );
    }
    await waitFor(async () => {
      for (const d of daemons) if ((await fetch(`${d.url}/readyz`)).status !== 200) return false;
      return true;
    }, { what: `${label}: every daemon ready`, timeoutMs: 300_000 });
    console.log(`${label}: ${N} daemons started and ready in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    // The starts are not steady state.
    await new Promise((r) => setTimeout(r, 10_000));
    server.clearRequests();
    await new Promise((r) => setTimeout(r, STEADY_S * 1000));
    const steadyPerSecond = server.requests.length / STEADY_S;
    const rss = daemons.map((d) => rssMb(d.child.pid));

    server.clearRequests();
    const changedAt = Date.now();
    server.put(configMapObject(RANGES, { annotations: { "polarbox.novip.engine.port.range": String(listening) } }));
    const acted = () =>
      nodes.map((node) => {
        const path = `/api/v1/namespaces/kube-system/configmaps/${portUsageConfigMapName(node)}`;
        const write = server.requests.find((r) => r.method === "PUT" && r.path === path && r.status === 200);
        return write ? write.time - changedAt : null;
      });
    await waitFor(() => acted().every((ms) => ms !== null), {
      what: `${label}: every daemon to act`,
      timeoutMs: 150_000,
    });
    const times = acted() as number[];
    return { label, medianMs: median(times), maxMs: Math.max(...times), steadyPerSecond, rssMb: rss };
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    await server.close();
    await host.close();
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const listening = (listener.addr as Deno.NetAddr).port;
const cached = await phase("cached", [], listening);
const polled = Deno.env.get("FAN_OUT_PEER") === "false"
  ? null
  : await phase("uncached", ["--cluster-cache=false"], listening);
listener.close();
for (const p of polled ? [cached, polled] : [cached]) {
  const rss = p.rssMb;
  console.log(
    `${p.label.padEnd(9)} ${N} daemons: change acted on after median ${p.medianMs} ms, max ${p.maxMs} ms; ` +
      `steady ${p.steadyPerSecond.toFixed(2)} requests/s; RSS min ${Math.min(...rss).toFixed(1)} median ` +
      `${median(rss).toFixed(1)} max ${Math.max(...rss).toFixed(1)} MB`,
  );
}
if (polled) {
  console.log(
    `ratio: the cache acts ${(polled.maxMs / cached.maxMs).toFixed(0)}x sooner (max), with ` +
      `${(polled.steadyPerSecond / cached.steadyPerSecond).toFixed(1)}x fewer steady requests; targets: max < 2 s ` +
      `${cached.maxMs < 2000 ? "met" : "missed"}, < 1 request/s ${cached.steadyPerSecond < 1 ? "met" : "missed"}, ` +
      `RSS <= 96 MB ${Math.max(...cached.rssMb) <= 96 ? "met" : "missed"}`,
  );
}
console.log(
  `RESULT ${
    JSON.stringify({
      bench: "cache_fan_out",
      daemons: N,
      steadySeconds: STEADY_S,
      cached: { ...cached, rssMb: undefined, rssMaxMb: +Math.max(...cached.rssMb).toFixed(1) },
      uncached: polled && { ...polled, rssMb: undefined, rssMaxMb: +Math.max(...polled.rssMb).toFixed(1) },
    })
  }`,
);
