/** The metrics text, refereed by Prometheus's own `promtool check metrics`, and its values read back. */
import { assert, assertEquals, assertThrows } from "../support/assert.ts";
import { Counter, Gauge, Histogram, Registry } from "../../api/prometheus.ts";
import { createMetrics } from "../../api/metrics.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";

async function promtool(text: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, output: decode(out.stdout) + decode(out.stderr) };
}

const ignore = skipUnless(hasCommand("promtool"), "promtool (Debian prometheus) is the referee");

Deno.test({
  name: "counters, gauges and histograms with hostile label values pass promtool, with the values put in",
  ignore,
  async fn() {
    const registry = new Registry();
    const counter = new Counter({
      name: "t_requests_total",
      help: "Requests\nby route \\ code",
      labelNames: ["route", "code"],
    }, registry);
    const gauge = new Gauge({ name: "t_temperature", help: "A gauge", labelNames: ["room"] }, registry);
    const histogram = new Histogram({
      name: "t_duration_seconds",
      help: "Durations",
      labelNames: ["job"],
      buckets: [1, 0.1, 5],
    }, registry);
    new Gauge({ name: "t_collected", help: "Set at render", collect: (g) => g.set({}, 42) }, registry);
    counter.inc({ route: '/a"b\\c\nd', code: "200" });
    counter.inc({ route: '/a"b\\c\nd', code: "200" }, 2.5);
    counter.inc({ code: "500", route: "/x" });
    gauge.set({ room: "ü" }, -3.25);
    gauge.set({ room: "nan" }, NaN);
    for (const v of [0.05, 0.5, 0.5, 3, 10]) histogram.observe({ job: "port-usage" }, v);
    const text = await registry.metrics();
    const checked = await promtool(text);
    assertEquals(checked.code, 0, `${checked.output}\n${text}`);
    const lines = text.split("\n");
    assert(lines.includes('t_requests_total{route="/a\\"b\\\\c\\nd",code="200"} 3.5'), text);
    assert(lines.includes('t_requests_total{route="/x",code="500"} 1'), text);
    assert(lines.includes('t_temperature{room="ü"} -3.25') && lines.includes('t_temperature{room="nan"} NaN'), text);
    assert(lines.includes("t_collected 42"), text);
    const buckets = lines.filter((l) => l.startsWith("t_duration_seconds_bucket"));
    assertEquals(buckets, [
      't_duration_seconds_bucket{job="port-usage",le="0.1"} 1',
      't_duration_seconds_bucket{job="port-usage",le="1"} 3',
      't_duration_seconds_bucket{job="port-usage",le="5"} 4',
      't_duration_seconds_bucket{job="port-usage",le="+Inf"} 5',
    ]);
    assert(
      lines.includes('t_duration_seconds_sum{job="port-usage"} 14.05') &&
        lines.includes('t_duration_seconds_count{job="port-usage"} 5'),
    );
  },
});

Deno.test({
  name: "the daemon's own metrics after runs, skips, requests and job figures pass promtool",
  ignore,
  async fn() {
    const metrics = createMetrics();
    metrics.jobRun("port-usage", {
      startedAt: new Date().toISOString(),
      durationMs: 12,
      outcome: "success",
      summary: "",
      dryRun: false,
    });
    metrics.jobRun("port-usage", {
      startedAt: new Date().toISOString(),
      durationMs: 99,
      outcome: "failure",
      summary: "x",
      error: "x",
      dryRun: false,
    });
    metrics.jobSkipped("core-version");
    metrics.httpRequest("/metrics", "GET", 200);
    metrics.kubeRequest("PUT", 409);
    metrics.jobCounter({ name: "log_cleanup_bytes_freed_total", help: "Bytes", value: 10 });
    metrics.jobCounter({ name: "floating_ip_held", help: "Held", kind: "gauge", value: 1 });
    metrics.jobCounter({
      name: "floating_ip_announce_seconds",
      help: "Seconds",
      kind: "histogram",
      buckets: [1, 2],
      value: 1.5,
    });
    const text = await metrics.registry.metrics();
    const checked = await promtool(text);
    assertEquals(checked.code, 0, `${checked.output}\n${text}`);
    assert(text.includes('polarstack_daemon_job_runs_total{job="port-usage",outcome="failure"} 1'), text);
    assert(text.includes('polarstack_daemon_floating_ip_announce_seconds_bucket{le="2"} 1'), text);
    assert(/^process_resident_memory_bytes \d+$/m.test(text), text);
  },
});

Deno.test("names are checked, counters never go down, a name is registered once", () => {
  const registry = new Registry();
  assertThrows(() => new Counter({ name: "bad-name", help: "x" }, registry), Error, 'Invalid metric name "bad-name"');
  assertThrows(
    () => new Gauge({ name: "g", help: "x", labelNames: ["__x"] }, registry),
    Error,
    'Invalid label name "__x"',
  );
  const counter = new Counter({ name: "c_total", help: "x" }, registry);
  assertThrows(() => counter.inc({}, -1), Error, 'Cannot add -1 to counter "c_total"');
  assertThrows(() => new Counter({ name: "c_total", help: "x" }, registry), Error, 'Cannot register metric "c_total"');
});

Deno.test("a job's gauges show what its last run reported: a series it no longer reports goes, others' stay", async () => {
  const metrics = createMetrics();
  const missing = (version: string, value: number) => ({
    name: "core_version_missing_images",
    help: "Missing",
    kind: "gauge" as const,
    value,
    labels: { version },
  });
  metrics.jobOutcome("core-version", { summary: "", result: {}, counters: [missing("1.0", 0), missing("2.0", 3)] });
  metrics.jobOutcome("port-usage", {
    summary: "",
    result: {},
    counters: [{ name: "port_usage_used_ports", help: "Used", kind: "gauge", value: 7 }],
  });
  metrics.jobOutcome("core-version", { summary: "", result: {}, counters: [missing("1.0", 1)] });
  const text = await metrics.registry.metrics();
  assert(text.includes('polarstack_daemon_core_version_missing_images{version="1.0"} 1\n'), text);
  assert(!text.includes('version="2.0"'), text);
  assert(text.includes("polarstack_daemon_port_usage_used_ports 7\n"), text);
});

Deno.test("floating IPs not ready: the False LeaderIPReady conditions this node reports, but a switched-off job's", async () => {
  const metrics = createMetrics();
  const condition = (status: string, reason: string) => ({
    cluster: { namespace: "db", name: reason },
    status,
    reason,
  });
  const result = {
    conditions: [
      condition("True", "AddressHeld"),
      condition("False", "LeaseHeldElsewhere"),
      condition("False", "InterfaceMissing"),
      condition("False", "Disabled"),
    ],
  };
  metrics.jobOutcome("floating-ip", { summary: "", result });
  assert((await metrics.registry.metrics()).includes("polarstack_daemon_floating_ip_not_ready 2\n"));
  metrics.jobOutcome("floating-ip", { summary: "", result: { conditions: [condition("True", "AddressHeld")] } });
  assert((await metrics.registry.metrics()).includes("polarstack_daemon_floating_ip_not_ready 0\n"));
  metrics.jobOutcome("port-usage", { summary: "", result });
  assert(!(await metrics.registry.metrics()).includes("polarstack_daemon_floating_ip_not_ready 2"), "only its own job");
});
