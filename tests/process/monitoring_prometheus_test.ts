/**
 * A real Prometheus scrapes the daemon as the PodMonitor has it (the daemon's `job` label kept, `node` from the pod)
 * and evaluates the alerts and the dashboard's queries on what it scraped: the series carry the labels the rules
 * select, no rule and no query fails at evaluation (which promtool's parse cannot show: matching errors need data),
 * and the alert for a daemon that is not scraped names the node once the daemon stops.
 */
import { dump, load } from "js-yaml";
import { assert, assertEquals } from "../support/assert.ts";
import { freePort, startDaemon, waitFor } from "../support/daemon_process.ts";
import { stopChild } from "../support/child.ts";
import { createDaemonHost, hostArgs } from "../support/faults_cluster.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";
import { ALERTS, dashboardExpressions, RULE_GROUPS } from "../support/monitoring.ts";
import { JOB_NAMES } from "../../core/jobs.ts";

// deno-lint-ignore no-explicit-any
type Doc = any;

const podMonitor = load(
  Deno.readTextFileSync(new URL("../../manifests/monitoring/pod_monitor.yaml", import.meta.url)),
) as Doc;

/**
 * The scrape configuration the Prometheus Operator makes of the PodMonitor for one pod: the job named by the pods'
 * `jobLabel` label, `honor_labels`, the path, and the relabeling's `node` (here a target label: no pod to discover).
 */
function scrapeConfig(target: string, node: string): Doc {
  const endpoint = podMonitor.spec.podMetricsEndpoints[0];
  assertEquals(podMonitor.spec.jobLabel, "app");
  assertEquals(endpoint.relabelings[0].targetLabel, "node");
  return {
    job_name: "polarstack-daemon",
    honor_labels: endpoint.honorLabels,
    metrics_path: endpoint.path,
    scrape_interval: "1s",
    static_configs: [{ targets: [target], labels: { node } }],
  };
}

interface Prometheus {
  readonly url: string;
  query(expr: string): Promise<{ status: string; error?: string; data?: { result: Doc[] } }>;
  stop(): Promise<void>;
}

async function startPrometheus(dir: string, scrape: Doc): Promise<Prometheus> {
  await Deno.writeTextFile(`${dir}/rules.yaml`, dump(RULE_GROUPS));
  await Deno.writeTextFile(
    `${dir}/prometheus.yaml`,
    dump({
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: [`${dir}/rules.yaml`],
      scrape_configs: [scrape],
    }),
  );
  const port = freePort();
  const child = new Deno.Command("prometheus", {
    args: [
      `--config.file=${dir}/prometheus.yaml`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  const query = async (expr: string) => {
    const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return await response.json();
  };
  await waitFor(async () => (await fetch(`${url}/-/ready`)).ok, { what: "Prometheus to be ready", timeoutMs: 30_000 });
  return { url, query, stop: async () => void await stopChild(child, { killAfterMs: 10_000 }) };
}

Deno.test({
  name: "a real Prometheus scrapes the daemon as the PodMonitor says and evaluates every alert and dashboard query",
  ignore: skipUnless(hasCommand("prometheus"), "prometheus (Debian prometheus) scrapes and evaluates"),
  async fn() {
    const host = await createDaemonHost();
    const port = freePort();
    const daemon = await startDaemon(["--local", ...hostArgs(host)], { port, env: { HOME: host.dir } });
    const prometheus = await startPrometheus(host.dir, scrapeConfig(`127.0.0.1:${port}`, "node-a"));
    let running = true;
    try {
      // Two scrapes of every job's runs, under the daemon's own job label and the node's name.
      const runs = await waitFor(async () => {
        const answer = await prometheus.query(
          'count_over_time(polarstack_daemon_job_runs_total{outcome="success",node="node-a"}[1m]) >= 2',
        );
        const jobs = (answer.data?.result ?? []).map((r: Doc) => r.metric.job).sort();
        return jobs.length === JOB_NAMES.length ? jobs : null;
      }, { what: "two scrapes of every job's runs", timeoutMs: 30_000 });
      assertEquals(runs, [...JOB_NAMES].sort());
      const up = await prometheus.query('up{job="polarstack-daemon",node="node-a"}');
      assertEquals(up.data?.result.map((r: Doc) => r.value[1]), ["1"]);

      // Every dashboard query evaluates on the scraped data.
      for (const expr of dashboardExpressions()) {
        const answer = await prometheus.query(expr);
        assertEquals([answer.status, answer.error], ["success", undefined], expr);
      }
      const used = await prometheus.query('polarstack_daemon_port_usage_used_ports{node=~".*"}');
      assert(Number(used.data?.result[0]?.value[1]) > 0, JSON.stringify(used));

      // Every alerting rule has been evaluated without error, and none fires on a healthy daemon.
      const rules = await waitFor(async () => {
        const body = await (await fetch(`${prometheus.url}/api/v1/rules?type=alert`)).json();
        const all: Doc[] = body.data.groups.flatMap((g: Doc) => g.rules);
        return all.length === ALERTS.length && all.every((r) => r.lastEvaluation > "0001-01-01T00:00:00Z") ? all : null;
      }, { what: "every alert evaluated once" });
      for (const rule of rules) {
        assertEquals([rule.name, rule.health, rule.lastError ?? ""], [rule.name, "ok", ""]);
        // The overlap of the host's ephemeral range is real here; it waits an hour before it fires.
        assert(rule.state !== "firing", `${rule.name} fires on a healthy daemon`);
      }

      // The daemon stops: the expression of PolarstackDaemonDown names its node.
      assertEquals(await daemon.stop(), 0);
      running = false;
      const down = ALERTS.find((r) => r.alert === "PolarstackDaemonDown")!;
      const nodes = await waitFor(async () => {
        const answer = await prometheus.query(down.expr);
        return answer.data?.result.length ? answer.data.result.map((r: Doc) => r.metric) : null;
      }, { what: "PolarstackDaemonDown's expression to select the node" });
      assertEquals(nodes, [{ node: "node-a" }]);
    } finally {
      if (running) await daemon.stop();
      await prometheus.stop();
      await host.close();
    }
  },
});
