import { assert, assertEquals, assertMatch, assertStringIncludes } from "../support/assert.ts";
import type { CacheState } from "../../k8s/config_map_cache.ts";
import { getLogger } from "@logtape/logtape";
import { type AppDeps, createApp } from "../../api/app.ts";
import { isIp } from "../../core/addresses.ts";
import { createMetrics } from "../../api/metrics.ts";
import { type CronRegistrar, Scheduler } from "../../controllers/scheduler.ts";
import { type Controller, systemClock } from "../../core/types.ts";
import { waitFor } from "../support/daemon_process.ts";

const noCron: CronRegistrar = () => Promise.resolve();

function job(name: string, result: unknown): Controller {
  return {
    name,
    schedule: { cron: "* * * * *" },
    runAtStart: false,
    timeoutMs: 1000,
    run: () => Promise.resolve({ summary: `${name} done`, result }),
  };
}

function setUp(overrides: Partial<AppDeps> = {}) {
  const scheduler = new Scheduler([
    job("port-usage", { node: "n1", used: [5432] }),
    job("core-version", { node: "n1" }),
  ], {
    clock: systemClock,
    log: getLogger(["test"]),
    cron: noCron,
  });
  scheduler.start();
  const metrics = createMetrics();
  const app = createApp({
    jobs: scheduler,
    kube: null,
    clusterState: () => null,
    metrics,
    log: getLogger(["test"]),
    node: "n1",
    ...overrides,
  });
  return { app, scheduler, metrics };
}

/** Waits until `scheduler` has finished `runs` runs of `job`. */
function ran(scheduler: Scheduler, job: string, runs: number) {
  return waitFor(() => scheduler.status().find((j) => j.name === job)?.runs === runs, {
    what: `run ${runs} of ${job}`,
  });
}

Deno.test("GET /healthz answers the original's body", async () => {
  const { app } = setUp();
  const res = await app.request("/healthz");
  assertEquals(res.status, 200);
  assertEquals(await res.json(), { status: "ok" });
  assertMatch(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
});

Deno.test("/readyz is 503 with the reason until every job has run, and until the cluster answers", async () => {
  const cluster = { reachable: false, reason: "network error or timeout" };
  const { app, scheduler } = setUp({ clusterState: () => cluster });
  let res = await app.request("/readyz");
  assertEquals(res.status, 503);
  const body = await res.json();
  assertStringIncludes(body.reason, "cluster not reachable: network error or timeout");
  assertStringIncludes(body.reason, "jobs that have not run yet: port-usage, core-version");
  scheduler.trigger("port-usage");
  scheduler.trigger("core-version");
  await waitFor(() => scheduler.notYetRun().length === 0, { what: "a run of every job" });
  res = await app.request("/readyz");
  assertEquals((await res.json()).reason, "cluster not reachable: network error or timeout");
  cluster.reachable = true;
  res = await app.request("/readyz");
  assertEquals(res.status, 200);
  assertEquals(await res.json(), { status: "ready", mode: "cluster" });
});

Deno.test("/readyz and /api/v1/status: a cache never listed is not ready; a lost watch is ready, degraded, with its age", async () => {
  const at = new Date("2026-12-01T10:00:00Z");
  const base = { resourceVersion: "7", failures: 0, lists: 1, lastError: null, ageMs: 0 };
  const caches: CacheState[] = [
    { ...base, what: 'ConfigMap "ccm-config" in kube-system', synced: true, watching: true },
    { ...base, what: 'ConfigMap "controller-config" in kube-system', synced: true, watching: false },
    { ...base, what: 'ConfigMap "x" in kube-system', synced: false, watching: false, ageMs: null, resourceVersion: "" },
  ];
  const { app, scheduler } = setUp({ caches: () => caches });
  scheduler.trigger("port-usage");
  scheduler.trigger("core-version");
  await waitFor(() => scheduler.notYetRun().length === 0, { what: "a run of every job" });
  assertEquals(await (await app.request("/readyz")).json(), { status: "ready", mode: "local" }, "between two watches");

  caches[2] = { ...caches[2], failures: 3, lastError: { message: "Cannot list ...: 503", at } };
  let res = await app.request("/readyz");
  assertEquals(res.status, 503);
  assertEquals((await res.json()).reason, 'ConfigMap "x" in kube-system not listed yet: Cannot list ...: 503');

  caches[2] = { ...caches[2], synced: true, lists: 1, ageMs: 0, resourceVersion: "7" };
  caches[1] = { ...caches[1], failures: 2, ageMs: 42_400, lastError: { message: "Cannot watch ...: 503", at } };
  res = await app.request("/readyz");
  assertEquals(res.status, 200);
  assertEquals((await res.json()).degraded, [
    'ConfigMap "controller-config" in kube-system not watched for 42 s, the last objects are used: Cannot watch ...: 503',
    'ConfigMap "x" in kube-system not watched for 0 s, the last objects are used: Cannot list ...: 503',
  ]);
  const status = (await (await app.request("/api/v1/status")).json()).data.caches;
  assertEquals(status[1], {
    ...caches[1],
    lastError: { message: "Cannot watch ...: 503", at: "2026-12-01T10:00:00.000Z" },
  });
});

Deno.test("/api/v1 answers in the original's envelope and echoes X-Request-Id", async () => {
  const { app } = setUp();
  const res = await app.request("/api/v1/TestConn", { headers: { "X-Request-Id": "abc-123" } });
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("x-request-id"), "abc-123");
  assertEquals(await res.json(), { code: "1", data: { message: "connected" }, message: "", requestId: "abc-123" });
});

Deno.test("job routes serve the last result, 503 before the first run", async () => {
  const { app, scheduler } = setUp();
  let res = await app.request("/api/v1/ports");
  assertEquals(res.status, 503);
  const err = await res.json();
  assertEquals(err.code, "503");
  assertEquals(err.message, 'Job "port-usage" has not finished a run yet: try again shortly');
  scheduler.trigger("port-usage");
  await ran(scheduler, "port-usage", 1);
  res = await app.request("/api/v1/ports");
  assertEquals((await res.json()).data, { node: "n1", used: [5432] });
  const status = await (await app.request("/api/v1/status")).json();
  assertEquals(status.data.jobs.map((j: { name: string }) => j.name), ["port-usage", "core-version"]);
  assertEquals(status.data.jobs[0].lastRun.summary, "port-usage done");
  assertEquals(status.data.mode, "local");
});

Deno.test("a job that only failed answers 500 with its error, not 503; later failures keep the last result", async () => {
  let fail = true;
  const cause = "Cannot list images: Docker at unix:///var/run/docker.sock: no such socket";
  const flaky = (name: string): Controller => ({
    name,
    schedule: { cron: "* * * * *" },
    runAtStart: false,
    timeoutMs: 1000,
    run: () =>
      fail
        ? Promise.reject(new Error(cause))
        : Promise.resolve({ summary: "ok", result: { node: "n1", existingVersions: ["v1"] } }),
  });
  const fanOut = { time: "2026-01-01T00:00:00.000Z", peers: [] };
  const scheduler = new Scheduler([flaky("core-version"), flaky("log-cleanup")], {
    clock: systemClock,
    log: getLogger(["test"]),
    cron: noCron,
  });
  scheduler.start();
  const app = createApp({
    jobs: scheduler,
    kube: null,
    clusterState: () => null,
    metrics: createMetrics(),
    log: getLogger(["test"]),
    node: "n1",
    versionsExtra: () => ({ fanOut }),
  });
  let res = await app.request("/api/v1/versions");
  assertEquals(res.status, 503, "before any run, with the fan-out only in data");
  assertEquals((await res.json()).data, { fanOut });

  for (const [path, job] of [["/api/v1/versions", "core-version"], ["/api/v1/log-cleanup", "log-cleanup"]]) {
    scheduler.trigger(job);
    await ran(scheduler, job, 1);
    res = await app.request(path);
    assertEquals(res.status, 500, path);
    const body = await res.json();
    assertEquals(body.code, "500");
    assertEquals(body.message, `Job "${job}" failed: ${cause}`);
    assertEquals([body.data.lastRun.outcome, body.data.lastRun.error], ["failure", cause]);
  }

  fail = false;
  scheduler.trigger("core-version");
  await ran(scheduler, "core-version", 2);
  res = await app.request("/api/v1/versions");
  assertEquals((await res.json()).data, { node: "n1", existingVersions: ["v1"], fanOut });
  fail = true;
  scheduler.trigger("core-version");
  await ran(scheduler, "core-version", 3);
  res = await app.request("/api/v1/versions");
  assertEquals(res.status, 200);
  const { lastRun, ...data } = (await res.json()).data;
  assertEquals(data, { node: "n1", existingVersions: ["v1"], fanOut }, "the last good result is kept");
  assertEquals([lastRun.outcome, lastRun.error], ["failure", cause], "and the failure is shown");
  await scheduler.stop(100);
});

Deno.test("unknown paths are JSON 404, wrong methods JSON 405 with Allow", async () => {
  const { app } = setUp();
  let res = await app.request("/nope");
  assertEquals(res.status, 404);
  assertEquals((await res.json()).message, "No route GET /nope");
  res = await app.request("/api/v1/TestConn", { method: "DELETE" });
  assertEquals(res.status, 405);
  assertEquals(res.headers.get("allow"), "GET");
  assertEquals((await res.json()).code, "405");
  res = await app.request("/api/v1/InnerCheckCoreVersion");
  assertEquals(res.status, 405);
});

Deno.test("POST bodies over 1 MiB get 413; malformed JSON gets 400", async () => {
  const { app } = setUp();
  let res = await app.request("/api/v1/InnerCheckCoreVersion", { method: "POST", body: "x".repeat(1024 * 1024 + 1) });
  assertEquals(res.status, 413);
  assertEquals((await res.json()).code, "413");
  res = await app.request("/api/v1/InnerCheckCoreVersion", { method: "POST", body: "{not json" });
  assertEquals(res.status, 400);
  assertEquals((await res.json()).message, "Request body is not valid JSON");
  res = await app.request("/api/v1/InnerCheckCoreVersion", { method: "POST", body: '{"HostName": 7}' });
  assertEquals(res.status, 400);
});

Deno.test("InnerCheckCoreVersion triggers a check here; RequestCheckCoreVersion also fans out", async () => {
  let fanOuts = 0;
  const { app, scheduler } = setUp({ fanOut: () => fanOuts++ });
  let res = await app.request("/api/v1/InnerCheckCoreVersion", { method: "POST", body: '{"HostName":"n2"}' });
  assertEquals((await res.json()).data, "OK");
  await ran(scheduler, "core-version", 1);
  assertEquals(scheduler.status().find((j) => j.name === "core-version")?.runs, 1);
  res = await app.request("/api/v1/RequestCheckCoreVersion", { method: "POST" });
  assertEquals((await res.json()).data, "done");
  await ran(scheduler, "core-version", 2);
  assertEquals(fanOuts, 1);
  assertEquals(scheduler.status().find((j) => j.name === "core-version")?.runs, 2);
});

Deno.test("a version check asked while the daemon stops answers 503 and starts nothing", async () => {
  let fanOuts = 0;
  const { app, scheduler } = setUp({ fanOut: () => fanOuts++ });
  await scheduler.stop(100);
  for (const path of ["/api/v1/RequestCheckCoreVersion", "/api/v1/InnerCheckCoreVersion"]) {
    const res = await app.request(path, { method: "POST" });
    assertEquals(res.status, 503, path);
    assertEquals((await res.json()).message, "The daemon is shutting down: no version check starts now");
  }
  assertEquals(fanOuts, 0);
  assertEquals(scheduler.status().find((j) => j.name === "core-version")?.runs, 0);
});

Deno.test("POST routes refuse callers the authorizer refuses", async () => {
  const { app } = setUp({
    authorize: (h) => Promise.resolve(h ? null : { status: 401 as const, message: "Missing bearer token" }),
  });
  let res = await app.request("/api/v1/InnerCheckCoreVersion", { method: "POST" });
  assertEquals(res.status, 401);
  assertEquals((await res.json()).message, "Missing bearer token");
  res = await app.request("/api/v1/InnerCheckCoreVersion", { method: "POST", headers: { Authorization: "Bearer x" } });
  assertEquals(res.status, 200);
});

Deno.test("ReplicateCoreVersion: authorized, a version in the body, handed to the job; /images answers before any run", async () => {
  const asked: { version: string }[] = [];
  const images = {
    transfers: () => ({ incoming: 1, transfers: [{ version: "v-1", state: "copying" }] }),
    request: (request: { version: string }) => void asked.push(request),
  };
  const triggered: string[] = [];
  const jobs = {
    status: () => [],
    lastResult: () => null,
    notYetRun: () => [],
    trigger: (name: string) => (triggered.push(name), "queued" as const),
  };
  const { app } = setUp({
    authorize: (h) => Promise.resolve(h ? null : { status: 401 as const, message: "Missing bearer token" }),
    images,
    jobs,
  });
  const post = (body: string, headers: Record<string, string> = { Authorization: "Bearer x" }) =>
    app.request("/api/v1/ReplicateCoreVersion", { method: "POST", body, headers });
  let res = await post('{"version":"v-1"}', {});
  assertEquals(res.status, 401);
  for (
    const [body, message] of [
      ["not json", "Request body is not valid JSON"],
      ['{"version": 3}', 'Invalid request body: expected {"version": "<name>"}'],
      ['{"version": " "}', 'Invalid request body: expected {"version": "<name>"}'],
      ["null", 'Invalid request body: expected {"version": "<name>"}'],
    ]
  ) {
    res = await post(body);
    assertEquals([res.status, (await res.json()).message], [400, message], body);
  }
  assertEquals(asked, []);
  res = await post('{"version":" v-1 "}');
  assertEquals([res.status, (await res.json()).data], [200, { version: "v-1", run: "queued" }]);
  assertEquals([asked, triggered], [[{ version: "v-1" }], ["image-replication"]]);
  res = await app.request("/api/v1/images");
  assertEquals(res.status, 200);
  const data = (await res.json()).data;
  assertEquals([data.incoming, data.exportsInProgress, data.transfers.length, data.lastRun], [1, 0, 1, null]);
  res = await app.request("/api/v1/images/export?ref=x");
  assertEquals(res.status, 404, "no export endpoint given: no route");
});

Deno.test("GetStandByIp: 400 names the parameter; 503 in local mode", async () => {
  const { app } = setUp();
  let res = await app.request("/api/v1/GetStandByIp");
  assertEquals(res.status, 400);
  assertEquals((await res.json()).message, "Missing query parameter podName");
  res = await app.request("/api/v1/GetStandByIp?podName=Bad_Name");
  assertEquals(res.status, 400);
  assertStringIncludes((await res.json()).message, "Invalid query parameter podName");
  res = await app.request("/api/v1/GetStandByIp?podName=p1&namespace=a%20b");
  assertStringIncludes((await res.json()).message, "Invalid query parameter namespace");
  res = await app.request("/api/v1/GetStandByIp?podName=p1");
  assertEquals(res.status, 503);
});

Deno.test("/metrics renders job and HTTP counters and process memory", async () => {
  const { app, metrics } = setUp();
  const counting: Controller = {
    ...job("x", 1),
    run: () =>
      Promise.resolve({
        summary: "x done",
        result: 1,
        counters: [{ name: "x_bytes_total", help: "Bytes", value: 5, labels: { kind: "a" } }],
      }),
  };
  const s = new Scheduler([counting], {
    clock: systemClock,
    log: getLogger(["test"]),
    cron: noCron,
    onRun: (n, r, { outcome }) => {
      metrics.jobRun(n, r);
      for (const counter of outcome?.counters ?? []) metrics.jobCounter(counter);
    },
  });
  s.start();
  s.trigger("x");
  await ran(s, "x", 1);
  s.trigger("x");
  await ran(s, "x", 2);
  await app.request("/api/v1/TestConn");
  const text = await (await app.request("/metrics")).text();
  assertStringIncludes(text, 'polarstack_daemon_job_runs_total{job="x",outcome="success"} 2');
  assertStringIncludes(text, 'polarstack_daemon_x_bytes_total{kind="a"} 10');
  assertStringIncludes(
    text,
    'polarstack_daemon_http_requests_total{route="/api/v1/TestConn",method="GET",code="200"} 1',
  );
  assertMatch(text, /process_resident_memory_bytes \d{6,}/);
  assertMatch(text, /polarstack_daemon_job_last_success_timestamp_seconds\{job="x"\} \d+/);
});

Deno.test("isIp", () => {
  for (const ip of ["10.0.0.1", "255.255.255.255", "::1", "fe80::1", "2001:db8::8a2e:370:7334"]) assert(isIp(ip), ip);
  // One rule with the BMC address parser: a leading zero is not a dotted address.
  for (const bad of ["", "0.0.0", "256.1.1.1", "abc", "1.2.3.4.5", ":::", "10.0.0.1\n", "01.2.3.4"]) {
    assert(!isIp(bad), bad);
  }
});
