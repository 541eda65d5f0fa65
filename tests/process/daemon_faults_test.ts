/**
 * A failing API server, with the daemon as its own process: down at start, then 500s, 429 with Retry-After, a 409
 * storm, a 30-second hang and dropped connections. The daemon stays up, its jobs neither stick nor overlap, and
 * after the faults every ConfigMap and condition converges to the truth, with no duplicate Event and no write lost.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "../support/assert.ts";
import { type DaemonProcess, freePort, startDaemon, waitFor } from "../support/daemon_process.ts";
import { type FakeKubeApiServer, startFakeKubeApiServer } from "../fake_kube/server.ts";
import {
  configMapObject,
  createDaemonHost,
  type DaemonHost,
  duplicateEvents,
  hostArgs,
  jobStatus,
  logLines,
  nodeObject,
  portRangeListeners,
  readiness,
  VERSION_LABELS,
  writeKubeconfig,
} from "../support/faults_cluster.ts";

const PORT_USED = "the port already use";

/** The objects every scenario starts from: its Node (unless left out), the switches, the ranges, one version. */
function seed(node: string, range: readonly [number, number], options: { withNode?: boolean } = {}): object[] {
  return [
    ...(options.withNode === false ? [] : [nodeObject(node)]),
    configMapObject("controller-config", { data: { isCheckOObIP: "false", enablePrintPort: "true" } }),
    configMapObject("polardb4mpd-controller", {
      annotations: { "polarbox.mpd.reserved.port.ranges": `${range[0]}-${range[1]}`, "bad.range": "70000-70010" },
    }),
    configMapObject("minor-version-v1", {
      labels: VERSION_LABELS,
      data: { name: "v1", engineImage: "busybox:latest" },
    }),
  ];
}

interface Conditions {
  [type: string]: { status: string; reason?: string; message?: string; lastHeartbeatTime?: string };
}

function conditionsOf(server: FakeKubeApiServer, node: string): Conditions {
  const found = server.get("nodes", undefined, node);
  return Object.fromEntries((found?.status?.conditions ?? []).map((c: { type: string }) => [c.type, c]));
}

async function expectAlive(daemon: DaemonProcess): Promise<void> {
  const response = await fetch(`${daemon.url}/healthz`);
  assertEquals(response.status, 200, "/healthz");
  await response.body?.cancel();
}

Deno.test("API server down at start: /healthz 200, /readyz 503 naming the cluster, jobs retry, then converge", async () => {
  const host = await createDaemonHost();
  const listeners = portRangeListeners();
  const apiPort = freePort();
  const token = `down-${crypto.randomUUID()}`;
  const kubeconfig = await writeKubeconfig(host.dir, { port: apiPort, token });
  const node = "node-down";
  const used = listeners.open();
  let server: FakeKubeApiServer | null = null;
  const daemon = await startDaemon(
    ["--kubeconfig", kubeconfig, "--current-node-name", node, ...hostArgs(host)],
    { port: freePort(), env: { HOME: host.dir } },
  );
  try {
    await expectAlive(daemon);
    const notReady = await readiness(daemon.url);
    assertEquals(notReady.status, 503);
    assertStringIncludes(notReady.body.reason, "cluster not reachable");
    assertStringIncludes(notReady.body.reason, `https://127.0.0.1:${apiPort}`);
    // The probe's run is abandoned at its 2 s limit while the cluster cache keeps trying to list its settings.
    const failing = await waitFor(async () => {
      const jobs = await jobStatus(daemon.url);
      return jobs["node-network"].failures >= 1 ? jobs : null;
    }, { what: "node-network to fail while the API server is down", timeoutMs: 10_000 });
    assertEquals(failing["node-network"].lastRun?.outcome, "failure");
    // The run stops at its limit and says what it was waiting for: the first list, and why it fails.
    assertMatch(
      failing["node-network"].lastRun?.error ?? "",
      /^Job "node-network" took longer than 2000 ms: Cannot read ConfigMap "controller-config" in kube-system: it was not listed yet \(Cannot list .*onnection refused.*\) and the run was stopped$/,
    );
    assertEquals((await readiness(daemon.url)).status, 503);
    await expectAlive(daemon);
    const retries = logLines(daemon.stderr()).filter((l) => /^Retry \d of /.test(l.message));
    assert(retries.length >= 2, `retries logged: ${retries.length}`);
    assert(retries.every((l) => Number(l.delayMs) > 0 && Number(l.delayMs) <= 30_000), "backoff within its cap");
    assert(retries.some((l) => /onnection refused/i.test(String(l.cause))), "the cause is named in the log");

    server = await startFakeKubeApiServer({ port: apiPort, token, seed: seed(node, listeners.range) });
    const up = performance.now();
    await waitFor(async () => (await readiness(daemon.url)).status === 200, {
      what: "/readyz 200 once the API server answers",
      timeoutMs: 30_000,
    });
    const s = server;
    const conditions = await waitFor(() => {
      const c = conditionsOf(s, node);
      return c.NodeClientNetworkUnavailable && c.NodeClientIP && c.NodeRefreshFlag ? c : null;
    }, { what: "the node conditions", timeoutMs: 15_000 });
    assertEquals(conditions.NodeClientNetworkUnavailable.message, "lo StateUP");
    const portUsage = await waitFor(
      () => s.get("configmaps", "kube-system", `cloud-provider-port-usage-${node}`),
      { what: "the port-usage ConfigMap (the start run's retries, or the next minute's run)", timeoutMs: 75_000 },
    );
    assertEquals(portUsage.data?.[String(used)], PORT_USED);
    const versions = await waitFor(
      () => s.get("configmaps", "kube-system", `polarstack-daemon-version-availability-${node}`),
      { what: "the version availability ConfigMap", timeoutMs: 15_000 },
    );
    assertEquals(versions.data?.existingVersions, "v1");
    console.log(`converged ${Math.round(performance.now() - up)} ms after the API server came up`);
    await expectAlive(daemon);
  } finally {
    assertEquals(await daemon.stop(), 0);
    listeners.close();
    await server?.close();
    await host.close();
  }
});

Deno.test("500s, 429 Retry-After, a 409 storm, a 30 s hang, dropped connections: no stuck job, convergence after", async () => {
  const host: DaemonHost = await createDaemonHost();
  const listeners = portRangeListeners();
  const node = "node-faults";
  const cmName = `cloud-provider-port-usage-${node}`;
  const stalePort = listeners.freePortInRange();
  const before = listeners.open();
  const server = await startFakeKubeApiServer({
    seed: [
      ...seed(node, listeners.range),
      configMapObject(cmName, { data: { [String(stalePort)]: PORT_USED } }),
    ],
  });
  const nodePath = `/api/v1/nodes/${node}`;
  // Queued in order: the first matching fault with requests left is used.
  server.injectFault({ method: "GET", pathPrefix: nodePath, count: 1, delayMs: 30_000 });
  server.injectFault({ method: "PATCH", pathPrefix: `${nodePath}/status`, count: 2, status: 429, retryAfter: 1 });
  server.injectFault({ method: "PATCH", pathPrefix: `${nodePath}/status`, count: 3, status: 500 });
  server.injectFault({ method: "PATCH", pathPrefix: `${nodePath}/status`, count: 2, drop: true });
  server.injectFault({
    method: "PUT",
    pathPrefix: `/api/v1/namespaces/kube-system/configmaps/${cmName}`,
    count: 10,
    status: 409,
  });
  server.injectFault({ method: "POST", pathPrefix: "/api/v1/namespaces/default/events", count: 2, status: 500 });
  server.injectFault({ method: "GET", pathPrefix: "/api/v1/namespaces/kube-system/configmaps", count: 3, status: 503 });
  server.injectFault({ method: "GET", pathPrefix: "/api/v1/pods", count: 1, drop: true });

  const daemon = await startDaemon(
    ["--kubeconfig", server.kubeconfigPath, "--current-node-name", node, ...hostArgs(host)],
    { port: freePort(), env: { HOME: host.dir } },
  );
  const opened = listeners.open();
  let healthFailures = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const response = await fetch(`${daemon.url}/healthz`).catch(() => null);
      if (response?.status !== 200) healthFailures++;
      await response?.body?.cancel();
      // Paces the health watcher, which samples the whole test: not a wait for a state.
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  try {
    // The 409 storm outlasts the start run's five read-decide-write attempts: that run fails, readably.
    const portRun = await waitFor(async () => {
      const job = (await jobStatus(daemon.url))["port-usage"];
      return job.runs >= 1 ? job : null;
    }, { what: "the first port-usage run", timeoutMs: 30_000 });
    assertEquals(portRun.lastRun?.outcome, "failure");
    assertStringIncludes(portRun.lastRun?.error ?? "", `Cannot replace ConfigMap "${cmName}": 409`);

    // While the node faults last, the probe keeps being run (each run stopped at its 2 s limit), never piling up: a
    // run held by the hung GET would wait for the client's 10 s timeout instead.
    const early = (await jobStatus(daemon.url))["node-network"];
    await waitFor(async () => (await jobStatus(daemon.url))["node-network"].runs >= early.runs + 2, {
      what: `two more node-network runs after run ${early.runs}, during the node faults`,
      timeoutMs: 9_000,
    });

    const conditions = await waitFor(() => {
      const c = conditionsOf(server, node);
      return c.NodeClientNetworkUnavailable ? c : null;
    }, { what: "the node conditions after the node faults", timeoutMs: 45_000 });
    assertEquals(conditions.NodeClientIP.message, "127.0.0.1");

    server.clearFaults();
    const faultsEnded = Date.now();
    const written = await waitFor(() => {
      const cm = server.get("configmaps", "kube-system", cmName);
      return cm?.data?.[String(opened)] ? cm : null;
    }, { what: "the listener opened during the faults in the port-usage ConfigMap", timeoutMs: 2 * 60_000 + 10_000 });
    const convergedMs = Date.now() - faultsEnded;
    assertEquals(written.data?.[String(before)], PORT_USED);
    assert(!(String(stalePort) in (written.data ?? {})), `the stale port ${stalePort} is gone`);
    // The heartbeats go on after the faults: one stamped after now arrives within a few 2 s periods.
    const now = Math.floor(Date.now() / 1000) * 1000;
    await waitFor(() => Date.parse(conditionsOf(server, node).NodeRefreshFlag?.lastHeartbeatTime ?? "") > now, {
      what: "a NodeRefreshFlag heartbeat after the faults",
      timeoutMs: 10_000,
    });
    const versions = server.get("configmaps", "kube-system", `polarstack-daemon-version-availability-${node}`);
    assertEquals(versions?.data?.existingVersions, "v1");

    // What the API server saw.
    const nodeRequests = server.requests.filter((r) => r.path.startsWith(nodePath));
    const hung = nodeRequests.findIndex((r) => r.method === "GET");
    const afterHang = nodeRequests[hung + 1];
    const gap = afterHang.time - nodeRequests[hung].time;
    assertEquals(afterHang.method, "GET", "the hung GET is asked again before anything else is sent for the node");
    // The run's 2 s limit cancels the hung GET (not the client's 10 s timeout); the next probe asks again.
    assert(gap < 10_000, `the hung GET was asked again ${gap} ms later (run limit 2 s, client timeout 10 s)`);
    const stopped = logLines(daemon.stderr()).filter((l) =>
      l.message.startsWith("Job node-network failed") && String(l.error).includes(`Cannot get Node "${node}"`)
    );
    assertStringIncludes(
      String(stopped[0]?.error),
      `took longer than 2000 ms: Cannot get Node "${node}": the run was stopped`,
    );
    const patches = nodeRequests.filter((r) => r.method === "PATCH");
    const limited = patches.findIndex((r) => r.status === 429);
    const waited = patches[limited + 1].time - patches[limited].time;
    assert(waited >= 950, `the PATCH after a 429 with Retry-After: 1 came ${waited} ms later`);
    const conflicts = server.requests.filter((r) => r.method === "PUT" && r.path.endsWith(cmName) && r.status === 409);
    assert(conflicts.length >= 5, `PUTs answered 409: ${conflicts.length}`);

    const events = server.list("events", "default");
    assertEquals(duplicateEvents(events), []);
    const invalid = events.filter((e) => e.reason === "PortRangeInvalid");
    assertEquals(invalid.length, 1, "the Event of the start run was written despite the 500s");
    assertStringIncludes(invalid[0].message, "bad.range");

    const jobs = await jobStatus(daemon.url);
    assert(jobs["port-usage"].runs >= 2 && jobs["port-usage"].lastRun?.outcome === "success", "port-usage recovered");
    assertEquals(jobs["node-network"].lastRun?.outcome, "success");
    assertEquals(jobs["core-version"].lastRun?.outcome, "success");
    assertEquals(jobs["log-cleanup"].lastRun?.outcome, "success");
    assertEquals((await readiness(daemon.url)).status, 200);
    assertEquals(healthFailures, 0, "/healthz answered 200 all along");
    console.log(`port-usage converged ${convergedMs} ms after the faults ended (its period is 60 s)`);
  } finally {
    watching = false;
    await watcher;
    assertEquals(await daemon.stop(), 0);
    listeners.close();
    await server.close();
    await host.close();
  }
});
