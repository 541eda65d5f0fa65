/**
 * The live /metrics of the daemon as a process, in local mode and in cluster mode (the fake API server), refereed by
 * `promtool check metrics`; every job's counters there from the start; the gauges operators expect; and every metric
 * that the alerts and the dashboard name is one the live daemon exports or kube-state-metrics documents.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { freePort, startDaemon, waitFor } from "../support/daemon_process.ts";
import { startFakeKubeApiServer } from "../fake_kube/server.ts";
import {
  configMapObject,
  createDaemonHost,
  hostArgs,
  jobStatus,
  nodeObject,
  VERSION_LABELS,
} from "../support/faults_cluster.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";
import { exportedNames, metricNames, promtool } from "../support/promql.ts";
import { ALERTS, dashboardExpressions, OTHERS_METRICS } from "../support/monitoring.ts";
import { createMetrics } from "../../api/metrics.ts";
import { JOB_NAMES } from "../../core/jobs.ts";
import { VERSION } from "../../core/version.ts";

const ignore = skipUnless(hasCommand("promtool"), "promtool (Debian prometheus) is the referee");

/** The families of a /metrics text by name, with their type and each sample line's series (name and labels). */
function families(text: string): Map<string, { type: string; series: Map<string, number> }> {
  const out = new Map<string, { type: string; series: Map<string, number> }>();
  let current: { type: string; series: Map<string, number> } | null = null;
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      current = { type: type[2], series: new Map() };
      out.set(type[1], current);
    } else if (line && !line.startsWith("#") && current) {
      const cut = line.lastIndexOf(" ");
      current.series.set(line.slice(0, cut), Number(line.slice(cut + 1)));
    }
  }
  return out;
}

/** The value of one series of a /metrics text, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const family of families(text).values()) {
    const value = family.series.get(series);
    if (value !== undefined) return value;
  }
  return undefined;
}

async function metricsText(url: string): Promise<string> {
  const response = await fetch(`${url}/metrics`);
  assertEquals(response.status, 200);
  assert(response.headers.get("content-type")?.startsWith("text/plain; version=0.0.4"));
  return await response.text();
}

async function allJobsRan(url: string): Promise<boolean> {
  const jobs = await jobStatus(url);
  return JOB_NAMES.every((name) => jobs[name]?.lastRun);
}

// Series whose labels are only known once they happen (an HTTP route and code, an API-server answer).
const OPEN_FAMILIES = new Set(["polarstack_daemon_http_requests_total", "polarstack_daemon_kube_requests_total"]);

Deno.test({
  name: "local mode: /metrics passes promtool; every job counter is there from the start; build info and gauges",
  ignore,
  async fn() {
    const host = await createDaemonHost();
    const daemon = await startDaemon(["--local", ...hostArgs(host)], { port: freePort(), env: { HOME: host.dir } });
    try {
      await waitFor(() => allJobsRan(daemon.url), { what: "every job's first run", timeoutMs: 30_000 });
      const text = await metricsText(daemon.url);
      const checked = await promtool(["check", "metrics"], text);
      assertEquals(checked.code, 0, `${checked.output}\n${text}`);

      // What a daemon that has run nothing shows, against this one after every job ran: no counter or histogram
      // series has appeared since the start, and none is missing.
      const start = families(await createMetrics().registry.metrics());
      const live = families(text);
      for (const [name, family] of live) {
        if (family.type === "gauge" || OPEN_FAMILIES.has(name)) continue;
        assertEquals([...family.series.keys()], [...(start.get(name)?.series.keys() ?? [])], `${name} at the start`);
      }
      for (const [name, family] of start) {
        if (family.type !== "gauge") assert(live.has(name), `${name} is exported`);
      }
      for (const job of JOB_NAMES) {
        for (const outcome of ["success", "failure"]) {
          const series = `polarstack_daemon_job_runs_total{job="${job}",outcome="${outcome}"}`;
          assert(sample(text, series) !== undefined, `${series} in\n${text}`);
        }
      }
      assertEquals(sample(text, "polarstack_daemon_log_cleanup_bytes_freed_total"), 0, "nothing to free here");
      assertEquals(sample(text, `polarstack_daemon_build_info{version="${VERSION}"}`), 1);
      const startedAt = sample(text, "process_start_time_seconds")!;
      assert(startedAt > Date.now() / 1000 - 120 && startedAt <= Date.now() / 1000, `start time ${startedAt}`);

      // The gauges say what the API says: the client NIC's state, the used ports, the floating IPs held.
      const network = (await (await fetch(`${daemon.url}/api/v1/node-network`)).json()).data;
      const states = ["UP", "DOWN", "UNKNOWN"].map((state) =>
        sample(text, `polarstack_daemon_node_network_client_state{state="${state}"}`)
      );
      assertEquals(states, ["UP", "DOWN", "UNKNOWN"].map((state) => state === network.state ? 1 : 0));
      await waitFor(async () => {
        const ports = (await (await fetch(`${daemon.url}/api/v1/ports`)).json()).data;
        const now = await metricsText(daemon.url);
        return ports.used.length > 0 && sample(now, "polarstack_daemon_port_usage_used_ports") === ports.used.length;
      }, { what: "the used-ports gauge to equal the API's count" });
      assertEquals(sample(text, "polarstack_daemon_floating_ip_held"), 0);
      assertEquals(sample(text, "polarstack_daemon_floating_ip_not_ready"), 0);
      assert(!/node=/.test(text), "the node label comes from the scrape, not from the daemon");
    } finally {
      assertEquals(await daemon.stop(), 0);
      await host.close();
    }
  },
});

Deno.test({
  name:
    "cluster mode: /metrics passes promtool, shows the versions, and holds every metric the alerts and dashboard use",
  ignore,
  async fn() {
    const host = await createDaemonHost({ images: ["reg.local/pg-engine:1.0", "reg.local/pfsd:1.0"] });
    const server = await startFakeKubeApiServer({
      seed: [
        nodeObject("node-a"),
        configMapObject("controller-config", { data: { isCheckOObIP: "false" } }),
        configMapObject("version-1", {
          labels: VERSION_LABELS,
          data: { name: "1.0.1", pgEngineImage: "reg.local/pg-engine:1.0", pfsdImage: "reg.local/pfsd:1.0" },
        }),
        configMapObject("version-2", {
          labels: VERSION_LABELS,
          data: { name: "1.0.2", pgEngineImage: "reg.local/pg-engine:2.0", pfsdImage: "reg.local/pfsd:1.0" },
        }),
      ],
    });
    const daemon = await startDaemon([
      "--kubeconfig",
      server.kubeconfigPath,
      "--current-node-name",
      "node-a",
      ...hostArgs(host),
    ], { port: freePort(), env: { HOME: host.dir } });
    try {
      await waitFor(async () => (await fetch(`${daemon.url}/readyz`)).status === 200, {
        what: "/readyz to turn 200",
        timeoutMs: 30_000,
      });
      const text = await metricsText(daemon.url);
      const checked = await promtool(["check", "metrics"], text);
      assertEquals(checked.code, 0, `${checked.output}\n${text}`);
      assertEquals(sample(text, "polarstack_daemon_core_version_versions"), 2);
      assertEquals(sample(text, "polarstack_daemon_core_version_available_versions"), 1);
      assertEquals(sample(text, 'polarstack_daemon_core_version_missing_images{version="1.0.1"}'), 0);
      assertEquals(sample(text, 'polarstack_daemon_core_version_missing_images{version="1.0.2"}'), 1);
      assert((sample(text, 'polarstack_daemon_kube_requests_total{method="GET",status="200"}') ?? 0) > 0, text);

      const exported = exportedNames(text);
      const named = [...dashboardExpressions(), ...ALERTS.map((r) => r.expr)].flatMap(metricNames);
      const unknown = [...new Set(named)].filter((name) => !exported.has(name) && !OTHERS_METRICS.includes(name));
      assertEquals(unknown, [], "metrics named by the dashboard or the alerts that nothing exports");
      assert(named.includes("polarstack_daemon_floating_ip_announce_seconds_bucket"), "the checked list is whole");

      // A version that is gone loses its series at the next check (a change of a version ConfigMap runs it).
      server.remove("configmaps", "kube-system", "version-2");
      const after = await waitFor(async () => {
        const now = await metricsText(daemon.url);
        return sample(now, "polarstack_daemon_core_version_versions") === 1 ? now : null;
      }, { what: "the version check after version-2 was deleted" });
      assertEquals(sample(after, 'polarstack_daemon_core_version_missing_images{version="1.0.2"}'), undefined);
      assertEquals(sample(after, 'polarstack_daemon_core_version_missing_images{version="1.0.1"}'), 0);
    } finally {
      assertEquals(await daemon.stop(), 0);
      await server.close();
      await host.close();
    }
  },
});
