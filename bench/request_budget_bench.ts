/**
 * Requests per node-hour at steady state, by verb and path: the daemon with its cluster cache against the same daemon
 * with `--cluster-cache=false` (every job GETs what it reads, as before), each as a process with the default periods
 * against its own fake API server, counted in the same window. Counts are scaled to an hour; the watches the cache
 * re-opens when the server ends them are added from the `timeoutSeconds` each open watch asked for, and the hourly
 * rewrite of the availability ConfigMap (`--version-check-report-interval`) from its period when the window is
 * shorter than that. Printed beside the measured 300 and the kubelet's 360 (a 10 s Lease renewal).
 * Usage: BUDGET_SECONDS=3600 deno run -A bench/request_budget_bench.ts (default 600: one core-version tick).
 */
import { freePort, startDaemon, waitFor } from "../tests/support/daemon_process.ts";
import {
  configMapObject,
  createDaemonHost,
  hostArgs,
  nodeObject,
  VERSION_LABELS,
} from "../tests/support/faults_cluster.ts";
import { type FakeKubeApiServer, startFakeKubeApiServer } from "../tests/fake_kube/server.ts";

const WINDOW_S = Number(Deno.env.get("BUDGET_SECONDS") ?? 600);
const HOUR_S = 3600;
const REPORT_INTERVAL_S = 3600;
const TODAY = 300;
const KUBELET = 360;

interface Run {
  readonly label: string;
  readonly rows: Map<string, number>;
  readonly total: number;
}

function seed(node: string): object[] {
  return [
    nodeObject(node),
    configMapObject("polardb4mpd-controller", {
      // Ranges outside the kernel's ephemeral range: the daemons' own connections would change the ports every
      // minute, and the port-usage writes would measure this host's sockets rather than the cache.
      annotations: { "polarbox.mpd.engine.port.range": "30000-32000", "polarbox.novip.engine.port.range": "5400-5800" },
    }),
    configMapObject("ccm-config", { data: { NET_CARD_NAME: "lo", NET_MASK: "24" } }),
    configMapObject("controller-config", { data: { isCheckOObIP: "false", enableVip: "false" } }),
    configMapObject("pg-1-0-rwo", {
      labels: { ...VERSION_LABELS, dbType: "PostgreSQL" },
      data: { name: "image-open", pgEngineImage: "busybox:latest" },
    }),
  ];
}

/** `METHOD path` with the node's name replaced, and watches marked. */
function rowOf(request: { method: string; path: string; query: string }, node: string): string {
  const watch = /(^|&)watch=true/.test(request.query) ? " (watch)" : "";
  return `${request.method} ${request.path.replaceAll(node, "<node>")}${watch}`;
}

async function measure(label: string, args: readonly string[]): Promise<Run> {
  const node = `budget-${label}`;
  const host = await createDaemonHost();
  const server: FakeKubeApiServer = await startFakeKubeApiServer({ seed: seed(node), bookmarkIntervalMs: 60_000 });
  const daemon = await startDaemon([
    "--kubeconfig",
    server.kubeconfigPath,
    "--current-node-name",
    node,
    ...hostArgs(host, { nic: null }).slice(0, 6),
    ...args,
  ], { port: freePort() });
  try {
    await waitFor(async () => (await fetch(`${daemon.url}/readyz`)).status === 200, {
      what: `${label}: every job's first run`,
      timeoutMs: 60_000,
    });
    // The start (first lists, first writes) is not steady state.
    await new Promise((r) => setTimeout(r, 5_000));
    server.clearRequests();
    return await new Promise<Run>((resolve) => {
      setTimeout(() => {
        const rows = new Map<string, number>();
        const add = (row: string, n: number) => rows.set(row, (rows.get(row) ?? 0) + n);
        for (const request of server.requests) add(rowOf(request, node), HOUR_S / WINDOW_S);
        // Watches last their timeoutSeconds: one re-open per watch per that many seconds, beyond the window.
        if (WINDOW_S < 1800) {
          for (const watch of server.watches()) {
            const timeout = Number(new URLSearchParams(watch.query).get("timeoutSeconds"));
            add(`${rowOf({ method: "GET", ...watch }, node)} re-opened every ${timeout} s`, HOUR_S / timeout);
          }
        }
        if (WINDOW_S < REPORT_INTERVAL_S) {
          const name = `polarstack-daemon-version-availability-${node}`;
          add(`PUT /api/v1/namespaces/kube-system/configmaps/${name.replace(node, "<node>")} (hourly rewrite)`, 1);
        }
        const total = [...rows.values()].reduce((a, b) => a + b, 0);
        resolve({ label, rows, total });
      }, WINDOW_S * 1000);
    });
  } finally {
    await daemon.stop();
    await server.close();
    await host.close();
  }
}

console.log(`Steady window ${WINDOW_S} s per daemon, both at once; per node-hour:`);
const [cached, today] = await Promise.all([
  measure("cached", []),
  measure("uncached", ["--cluster-cache=false"]),
]);
for (const run of [cached, today]) {
  console.log(`\n${run.label === "cached" ? "with the cluster cache" : "--cluster-cache=false (as before)"}:`);
  for (const [row, n] of [...run.rows].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${n.toFixed(1).padStart(7)}  ${row}`);
  }
  console.log(`  ${run.total.toFixed(1).padStart(7)}  total`);
}
// The port-usage writes follow this host's sockets (a listener opened or closed in the ranges): the same in both.
const own = (run: Run) =>
  run.total - [...run.rows].filter(([row]) => row.startsWith("PUT") && row.includes("cloud-provider-port-usage-"))
    .reduce((n, [, count]) => n + count, 0);
console.log(
  `without the port-usage writes (this host's sockets, the same in both): cache ${own(cached).toFixed(1)}, ` +
    `without it ${own(today).toFixed(1)}`,
);
console.log(
  `\nper node-hour: cache ${cached.total.toFixed(0)}, without it ${
    today.total.toFixed(0)
  } (issue's measure ${TODAY}),` +
    ` kubelet's Lease ${KUBELET}; ratio ${(today.total / cached.total).toFixed(1)}x fewer, ` +
    `${(cached.total / KUBELET).toFixed(2)} of the kubelet's; target 70 (without the port-usage writes): ` +
    `${own(cached) <= 70 ? "met" : "missed"}`,
);
console.log(
  `RESULT ${
    JSON.stringify({
      bench: "request_budget",
      windowSeconds: WINDOW_S,
      cachedPerNodeHour: +cached.total.toFixed(1),
      cachedWithoutPortWrites: +own(cached).toFixed(1),
      uncachedWithoutPortWrites: +own(today).toFixed(1),
      uncachedPerNodeHour: +today.total.toFixed(1),
      issueToday: TODAY,
      kubelet: KUBELET,
      ratio: +(today.total / cached.total).toFixed(2),
      cached: Object.fromEntries([...cached.rows].map(([k, v]) => [k, +v.toFixed(2)])),
      uncached: Object.fromEntries([...today.rows].map(([k, v]) => [k, +v.toFixed(2)])),
    })
  }`,
);
