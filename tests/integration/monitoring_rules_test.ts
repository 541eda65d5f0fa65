/**
 * The monitoring component's alerts and dashboard, refereed by Prometheus's own promtool: the rules load, each alert
 * fires on synthetic series that should page (with its labels and its annotations rendered by Prometheus's templates)
 * and stays quiet on ones that should not, and every dashboard expression parses.
 */
import { dump } from "js-yaml";
import { assert, assertEquals } from "../support/assert.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";
import { JOB_NAMES } from "../../core/jobs.ts";
import { checkExpressions, metricNames, promtool } from "../support/promql.ts";
import { type AlertRule, ALERTS, DASHBOARD, dashboardExpressions, RULE_GROUPS } from "../support/monitoring.ts";

// deno-lint-ignore no-explicit-any
type Doc = any;
const dashboard = DASHBOARD;

const ignore = skipUnless(hasCommand("promtool"), "promtool (Debian prometheus) is the referee");

async function rulesFile(): Promise<{ dir: string; file: string }> {
  const dir = await Deno.makeTempDir({ prefix: "psd-rules-" });
  const file = `${dir}/rules.yaml`;
  await Deno.writeTextFile(file, dump(RULE_GROUPS));
  return { dir, file };
}

/** An alert's annotations with the labels and value of one firing series put in, as the test expects them. */
function rendered(
  rule: AlertRule,
  { labels, value }: { labels: Record<string, string>; value?: number },
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, template] of Object.entries(rule.annotations)) {
    out[key] = template
      .replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, name: string) => labels[name] ?? "")
      .replace(/\{\{ \$value \}\}/g, String(value));
  }
  return out;
}

interface Case {
  /** Series as promtool reads them: `metric{labels}` and its values every minute. */
  readonly series: Record<string, string>;
  /** When to look. */
  readonly at: string;
  /** The labels of each alert expected then (the rule's own labels are added); none for a quiet case. */
  readonly fires: readonly Record<string, string>[];
  /** `$value` of the firing series, for annotations that show it. */
  readonly value?: number;
}

const node = "db-host-1";
const CASES: Record<string, { fires: Case; quiet: Case }> = {
  PolarstackDaemonJobFailing: {
    fires: {
      series: {
        [`polarstack_daemon_job_runs_total{job="port-usage",outcome="success",node="${node}"}`]: "0+1x10 10x30",
        [`polarstack_daemon_job_runs_total{job="port-usage",outcome="failure",node="${node}"}`]: "0x10 0+1x30",
      },
      at: "27m",
      fires: [{ job: "port-usage", outcome: "failure", node }],
    },
    // The same job 10 minutes after its last success, and a job that fails every other run.
    quiet: {
      series: {
        [`polarstack_daemon_job_runs_total{job="port-usage",outcome="success",node="${node}"}`]: "0+1x10 10x30",
        [`polarstack_daemon_job_runs_total{job="port-usage",outcome="failure",node="${node}"}`]: "0x10 0+1x30",
        [`polarstack_daemon_job_runs_total{job="core-version",outcome="success",node="${node}"}`]: "0+1x40",
        [`polarstack_daemon_job_runs_total{job="core-version",outcome="failure",node="${node}"}`]: "0+1x40",
      },
      at: "20m",
      fires: [],
    },
  },
  PolarstackDaemonLogCleanupStale: {
    // Last success at the epoch (time() starts at 0 in promtool), and a daemon up 14 hours that never succeeded.
    fires: {
      series: {
        [`polarstack_daemon_job_last_success_timestamp_seconds{job="log-cleanup",node="${node}"}`]: "0x900",
        [`process_start_time_seconds{job="polarstack-daemon",node="db-host-2"}`]: "0x900",
      },
      at: "14h",
      fires: [{ job: "log-cleanup", node }, { job: "polarstack-daemon", node: "db-host-2" }],
    },
    // A success 12 hours ago, and a daemon started 10 hours ago that has not succeeded yet.
    quiet: {
      series: {
        [`polarstack_daemon_job_last_success_timestamp_seconds{job="log-cleanup",node="${node}"}`]: "7200x900",
        [`process_start_time_seconds{job="polarstack-daemon",node="db-host-2"}`]: "14400x900",
      },
      at: "14h",
      fires: [],
    },
  },
  PolarstackDaemonClientNetworkDown: {
    fires: {
      series: {
        [`polarstack_daemon_node_network_client_state{state="UP",node="${node}"}`]: "0x10",
        [`polarstack_daemon_node_network_client_state{state="DOWN",node="${node}"}`]: "1x10",
      },
      at: "2m",
      fires: [{ state: "DOWN", node }],
    },
    quiet: {
      series: {
        [`polarstack_daemon_node_network_client_state{state="UP",node="${node}"}`]: "1x10",
        [`polarstack_daemon_node_network_client_state{state="DOWN",node="${node}"}`]: "0x10",
        [`polarstack_daemon_node_network_client_state{state="UNKNOWN",node="${node}"}`]: "0x10",
      },
      at: "2m",
      fires: [],
    },
  },
  PolarstackNodeClientNetworkUnavailable: {
    fires: {
      series: {
        [`kube_node_status_condition{condition="NodeClientNetworkUnavailable",status="true",node="${node}"}`]: "1x10",
        [`kube_node_status_condition{condition="NodeClientNetworkUnavailable",status="false",node="${node}"}`]: "0x10",
      },
      at: "2m",
      fires: [{ condition: "NodeClientNetworkUnavailable", status: "true", node }],
    },
    quiet: {
      series: {
        [`kube_node_status_condition{condition="NodeClientNetworkUnavailable",status="true",node="${node}"}`]: "0x10",
        [`kube_node_status_condition{condition="NodeClientNetworkUnavailable",status="false",node="${node}"}`]: "1x10",
        [`kube_node_status_condition{condition="Ready",status="true",node="${node}"}`]: "1x10",
      },
      at: "2m",
      fires: [],
    },
  },
  PolarstackDaemonEphemeralPortOverlap: {
    fires: {
      series: { [`polarstack_daemon_port_usage_ephemeral_overlap_ports{node="${node}"}`]: "6000x90" },
      at: "70m",
      fires: [{ node }],
      value: 6000,
    },
    // Reserved after 30 minutes.
    quiet: {
      series: { [`polarstack_daemon_port_usage_ephemeral_overlap_ports{node="${node}"}`]: "6000x30 0x60" },
      at: "70m",
      fires: [],
    },
  },
  PolarstackFloatingIPConflict: {
    fires: {
      series: { [`polarstack_daemon_floating_ip_conflicts_total{node="${node}"}`]: "0x5 1x30" },
      at: "8m",
      fires: [{ node }],
    },
    // The same conflict 25 minutes later.
    quiet: {
      series: { [`polarstack_daemon_floating_ip_conflicts_total{node="${node}"}`]: "0x5 1x30" },
      at: "30m",
      fires: [],
    },
  },
  PolarstackFloatingIPNotReady: {
    fires: {
      series: { [`polarstack_daemon_floating_ip_not_ready{node="${node}"}`]: "0 1x10" },
      at: "4m",
      fires: [{ node }],
      value: 1,
    },
    // Ready again after a minute.
    quiet: {
      series: { [`polarstack_daemon_floating_ip_not_ready{node="${node}"}`]: "0 1 0x10" },
      at: "4m",
      fires: [],
    },
  },
  PolarstackImageReplicationFailing: {
    fires: {
      series: {
        [`polarstack_daemon_job_runs_total{job="image-replication",outcome="success",node="${node}"}`]: "0x60",
        [`polarstack_daemon_job_runs_total{job="image-replication",outcome="failure",node="${node}"}`]: "0+1x60",
      },
      at: "40m",
      fires: [{ job: "image-replication", outcome: "failure", node }],
    },
    // 20 minutes after its last success.
    quiet: {
      series: {
        [`polarstack_daemon_job_runs_total{job="image-replication",outcome="success",node="${node}"}`]: "0+1x20 20x40",
        [`polarstack_daemon_job_runs_total{job="image-replication",outcome="failure",node="${node}"}`]: "0x20 0+1x40",
      },
      at: "40m",
      fires: [],
    },
  },
  PolarstackDaemonDown: {
    // A target that fails, and a node with no target at all.
    fires: {
      series: {
        [`up{job="polarstack-daemon",node="${node}"}`]: "0x20",
        [`kube_node_info{node="${node}"}`]: "1x20",
        [`kube_node_info{node="db-host-2"}`]: "1x20",
      },
      at: "15m",
      fires: [{ node }, { node: "db-host-2" }],
    },
    // Scraped, and down for 5 minutes only.
    quiet: {
      series: {
        [`up{job="polarstack-daemon",node="${node}"}`]: "1x20",
        [`kube_node_info{node="${node}"}`]: "1x20",
        [`up{job="polarstack-daemon",node="db-host-2"}`]: "1x10 0x10",
        [`kube_node_info{node="db-host-2"}`]: "1x20",
      },
      at: "15m",
      fires: [],
    },
  },
};

Deno.test({
  name: "promtool check rules accepts the PrometheusRule's groups",
  ignore,
  async fn() {
    const { dir, file } = await rulesFile();
    try {
      const checked = await promtool(["check", "rules", file]);
      assertEquals(checked.code, 0, checked.output);
      assert(checked.output.includes(`SUCCESS: ${ALERTS.length} rules found`), checked.output);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("every alert has a severity, a summary and a description naming the node, and a runbook in the README", () => {
  const readme = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));
  const start = readme.indexOf("\n## Monitoring\n");
  assert(start >= 0, "the README has a Monitoring section");
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  for (const rule of ALERTS) {
    assert(["critical", "warning", "info"].includes(rule.labels.severity), `${rule.alert}: severity`);
    assertEquals(Object.keys(rule.annotations).sort(), ["description", "summary"], rule.alert);
    for (const text of [rule.annotations.summary, rule.annotations.description]) {
      assert(text.includes("{{ $labels.node }}"), `${rule.alert} does not name the node: ${text}`);
    }
    assert(section.includes(`\n#### ${rule.alert}\n`), `no runbook "#### ${rule.alert}" in README's Monitoring`);
  }
  assertEquals(Object.keys(CASES).sort(), ALERTS.map((r) => r.alert).sort(), "one pair of cases per alert");
  assertEquals(ALERTS.find((r) => r.alert === "PolarstackDaemonEphemeralPortOverlap")?.labels.severity, "info");
});

Deno.test({
  name: "promtool test rules: each alert fires with its labels and annotations, and stays quiet when it should",
  ignore,
  async fn() {
    const { dir, file } = await rulesFile();
    try {
      const tests = Object.entries(CASES).flatMap(([name, { fires, quiet }]) => {
        const rule = ALERTS.find((r) => r.alert === name)!;
        return [fires, quiet].map((c) => ({
          name: `${name} ${c === fires ? "fires" : "stays quiet"}`,
          interval: "1m",
          input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
          alert_rule_test: [{
            eval_time: c.at,
            alertname: name,
            exp_alerts: c.fires.map((labels) => ({
              exp_labels: { ...rule.labels, ...labels },
              exp_annotations: rendered(rule, { labels, value: c.value }),
            })),
          }],
        }));
      });
      const testFile = `${dir}/alerts_test.yaml`;
      await Deno.writeTextFile(testFile, dump({ rule_files: [file], evaluation_interval: "1m", tests }));
      const result = await promtool(["test", "rules", testFile]);
      assertEquals(result.code, 0, result.output);
      assert(result.output.includes("SUCCESS"), result.output);
      // The referee can fail: a firing case that expects no alert is reported.
      const wrong = { ...tests[0], alert_rule_test: [{ ...tests[0].alert_rule_test[0], exp_alerts: [] }] };
      await Deno.writeTextFile(testFile, dump({ rule_files: [file], evaluation_interval: "1m", tests: [wrong] }));
      const failed = await promtool(["test", "rules", testFile]);
      assert(failed.code !== 0, failed.output);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "every dashboard expression parses (promtool check rules on a rule file made of them)",
  ignore,
  async fn() {
    const exprs = dashboardExpressions();
    assert(exprs.length >= 40, `expressions: ${exprs.length}`);
    const dir = await Deno.makeTempDir({ prefix: "psd-dashboard-" });
    try {
      const checked = await checkExpressions(exprs, dir);
      assertEquals(checked.code, 0, checked.output);
      // The referee can fail.
      const broken = await checkExpressions(["sum by (node) (polarstack_daemon_job_runs_total"], dir);
      assert(broken.code !== 0, broken.output);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("the dashboard: a node variable, a cluster overview, a row per job, each selecting the job and $node", () => {
  const node = dashboard.templating.list.find((v: Doc) => v.name === "node");
  assertEquals([node.type, node.multi, node.includeAll, node.allValue], ["query", true, true, ".*"]);
  const rows: string[] = dashboard.panels.filter((p: Doc) => p.type === "row").map((p: Doc) => p.title);
  assertEquals(rows[0], "Cluster overview");
  const jobs = ["port-usage", "core-version", "log-cleanup", "node-network", "floating-ip", "image-replication"];
  assertEquals(rows.slice(1).map((r) => /\(([\w-]+)\)$/.exec(r)?.[1]), jobs);
  for (const job of JOB_NAMES) assert(jobs.includes(job), `no dashboard row for job ${job}`);
  // Each panel below a job's row selects that job's own series and the chosen nodes.
  let row = "";
  for (const panel of dashboard.panels) {
    if (panel.type === "row") {
      row = panel.title;
      continue;
    }
    for (const target of panel.targets) {
      if (row === "Cluster overview") continue;
      assert(target.expr.includes('node=~"$node"'), `${row} / ${panel.title}: ${target.expr}`);
      if (target.expr.includes("polarstack_daemon_job_")) {
        const job = /\(([\w-]+)\)$/.exec(row)![1];
        assert(target.expr.includes(`job="${job}"`), `${row} / ${panel.title}: ${target.expr}`);
      }
    }
  }
  assertEquals(metricNames('sum by (le) (rate(a_bucket{job="x"}[5m])) / on (node) b offset 5m and c'), [
    "a_bucket",
    "b",
    "c",
  ]);
});
