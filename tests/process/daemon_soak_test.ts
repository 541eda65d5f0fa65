/**
 * A long run of the daemon as its own process: a 500 ms probe, the API server failing every ~15 s (a burst of
 * 500s, or a 30 s hang), and the HTTP API under a bounded load. Resident memory and open file descriptors stay
 * flat after the warm-up (the first third), and no job gets stuck. Prints `SOAK {json}` with the figures.
 *
 * `deno task test` runs it for 60 s; the full run is `SOAK_SECONDS=600 deno test -A tests/process/daemon_soak_test.ts`.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { freePort, startDaemon } from "../support/daemon_process.ts";
import { startFakeKubeApiServer } from "../fake_kube/server.ts";
import {
  configMapObject,
  createDaemonHost,
  hostArgs,
  jobStatus,
  nodeObject,
  portRangeListeners,
  processFootprint,
} from "../support/faults_cluster.ts";
import type { JobStatus } from "../../controllers/scheduler.ts";

const SECONDS = Number(Deno.env.get("SOAK_SECONDS") ?? "60");
const NODE = "node-soak";
const FAULT_EVERY_MS = 15_000;
const LOAD_WORKERS = 3;
const LIMITS_MS: Record<string, number> = { "port-usage": 50_000, "core-version": 60_000, "log-cleanup": 1_800_000 };

interface Sample {
  readonly at: number;
  readonly rssKb: number;
  readonly fds: number;
  readonly jobs: Record<string, JobStatus>;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

Deno.test(`soak: ${SECONDS} s of probes, faults and API load with flat memory and file descriptors`, async () => {
  assert(SECONDS >= 30, "SOAK_SECONDS must be at least 30");
  const host = await createDaemonHost();
  const listeners = portRangeListeners();
  const used = listeners.open();
  const server = await startFakeKubeApiServer({
    seed: [
      nodeObject(NODE),
      configMapObject("controller-config", { data: { isCheckOObIP: "false" } }),
      configMapObject("polardb4mpd-controller", {
        annotations: { "polarbox.mpd.reserved.port.ranges": `${listeners.range[0]}-${listeners.range[1]}` },
      }),
      configMapObject("minor-version-v1", {
        labels: { configtype: "minor_version_info", dbClusterMode: "WriteReadMore" },
        data: { name: "v1", engineImage: "busybox:latest" },
      }),
    ],
  });
  const daemon = await startDaemon([
    "--kubeconfig",
    server.kubeconfigPath,
    "--current-node-name",
    NODE,
    "--logtostderr=false",
    "--log-file",
    `${host.dir}/daemon.log`,
    ...hostArgs(host),
  ], { port: freePort(), env: { HOME: host.dir } });
  const pid = daemon.child.pid;
  const t0 = Date.now();
  const end = t0 + SECONDS * 1000;
  const samples: Sample[] = [];
  const statuses = new Map<string, number>();
  const unexpected: string[] = [];
  let faults = 0;

  const sampling = (async () => {
    while (Date.now() < end) {
      const [footprint, jobs] = await Promise.all([processFootprint(pid), jobStatus(daemon.url)]);
      samples.push({ at: Date.now() - t0, ...footprint, jobs });
      // Paces the soak's sampling: one sample a second.
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();

  const faulting = (async () => {
    for (let next = t0 + FAULT_EVERY_MS; next < end - 5000; next += FAULT_EVERY_MS) {
      // Paces the soak's faults: one every FAULT_EVERY_MS.
      await new Promise((r) => setTimeout(r, next - Date.now()));
      if (faults % 2 === 0) server.injectFault({ pathPrefix: "/api/", count: 15, status: 500 });
      else server.injectFault({ pathPrefix: `/api/v1/nodes/${NODE}`, count: 1, delayMs: 30_000 });
      faults++;
    }
  })();

  const requests: Array<[string, RequestInit?]> = [
    ["/healthz"],
    ["/readyz"],
    ["/metrics"],
    ["/api/v1/status"],
    ["/api/v1/ports"],
    ["/api/v1/node-network"],
    ["/api/v1/versions"],
    ["/api/v1/no-such-route"],
    ["/api/v1/InnerCheckCoreVersion", { method: "POST", body: "{}" }],
  ];
  let served = 0;
  const worker = async (w: number) => {
    for (let i = w; Date.now() < end; i++) {
      const [path, init] = requests[i % requests.length];
      const response = await fetch(`${daemon.url}${path}`, init);
      const body = await response.text();
      served++;
      const key = `${init?.method ?? "GET"} ${path} ${response.status}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      const allowed503 = path === "/readyz" || (path.startsWith("/api/v1/") && Date.now() - t0 < 10_000);
      const seconds = ((Date.now() - t0) / 1000).toFixed(1);
      if (response.status >= 500 && !(response.status === 503 && allowed503)) {
        unexpected.push(`${key} at ${seconds} s: ${body.slice(0, 300)}`);
      }
      if (path === "/healthz" && response.status !== 200) unexpected.push(`${key} at ${seconds} s`);
      // Paces the soak's load: each worker sends a request every 20 ms or so.
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  // An authenticated re-check every 5 s: a TokenReview (cached), a core-version run, a fan-out (pods listed).
  const rechecking = (async () => {
    while (Date.now() < end) {
      const response = await fetch(`${daemon.url}/api/v1/RequestCheckCoreVersion`, {
        method: "POST",
        headers: { Authorization: `Bearer ${server.peerToken}` },
      });
      await response.body?.cancel();
      if (response.status !== 200 && response.status !== 503) unexpected.push(`recheck ${response.status}`);
      // Paces the soak's re-checks: one every 5 s.
      await new Promise((r) => setTimeout(r, 5000));
    }
  })();

  try {
    await Promise.all([
      sampling,
      faulting,
      rechecking,
      ...Array.from({ length: LOAD_WORKERS }, (_, w) => worker(w)),
    ]);
    server.clearFaults();

    const warm = samples.filter((s) => s.at >= (SECONDS * 1000) / 3);
    const head = warm.slice(0, 5);
    const tail = warm.slice(-5);
    const rssStart = median(head.map((s) => s.rssKb));
    const rssEnd = median(tail.map((s) => s.rssKb));
    const fdStart = median(head.map((s) => s.fds));
    const fdEnd = median(tail.map((s) => s.fds));
    const last = samples[samples.length - 1].jobs;

    // Longest stretch each job was seen running, from the 1 s samples.
    const longestRunningMs: Record<string, number> = {};
    for (const name of Object.keys(last)) {
      let since: number | null = null;
      let longest = 0;
      for (const s of samples) {
        if (s.jobs[name].running) since ??= s.at;
        else since = null;
        if (since !== null) longest = Math.max(longest, s.at - since);
      }
      longestRunningMs[name] = longest;
    }
    // The probe's runs in every 5 s window of the run.
    let slowestWindow = Infinity;
    for (let i = 0; i + 5 < samples.length; i++) {
      slowestWindow = Math.min(
        slowestWindow,
        samples[i + 5].jobs["node-network"].runs - samples[i].jobs["node-network"].runs,
      );
    }

    const figures = {
      seconds: SECONDS,
      rssFirstMb: Math.round(samples[0].rssKb / 102.4) / 10,
      rssStartMb: Math.round(rssStart / 102.4) / 10,
      rssEndMb: Math.round(rssEnd / 102.4) / 10,
      rssMaxMb: Math.round(Math.max(...samples.map((s) => s.rssKb)) / 102.4) / 10,
      fdStart,
      fdEnd,
      fdMax: Math.max(...samples.map((s) => s.fds)),
      runs: Object.fromEntries(Object.entries(last).map(([name, job]) => [name, job.runs])),
      failures: Object.fromEntries(Object.entries(last).map(([name, job]) => [name, job.failures])),
      nodeNetworkRunsPer5sMin: slowestWindow,
      longestRunningMs,
      faults,
      apiRequests: served,
      apiServerRequests: server.requests.length,
    };
    console.log(`SOAK ${JSON.stringify(figures)}`);

    assertEquals(unexpected, [], `unexpected answers: ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert(rssEnd < rssStart * 1.1, `resident memory grew from ${rssStart} kB to ${rssEnd} kB after the warm-up`);
    assert(fdEnd < fdStart * 1.1 || fdEnd <= fdStart, `file descriptors grew from ${fdStart} to ${fdEnd}`);
    assert(slowestWindow >= 2, `node-network ran only ${slowestWindow} times in some 5 s window`);
    assert(last["node-network"].runs >= SECONDS, `node-network ran ${last["node-network"].runs} times`);
    for (const [name, limit] of Object.entries(LIMITS_MS)) {
      assert(longestRunningMs[name] <= limit + 2000, `${name} was running for ${longestRunningMs[name]} ms`);
    }
    assert(last["port-usage"].runs >= Math.max(1, Math.floor(SECONDS / 60)), "port-usage runs every minute");
    assert(
      last["core-version"].runs >= SECONDS / 10,
      `core-version ran ${last["core-version"].runs} times, asked every 5 s`,
    );
    assertEquals(
      server.get("configmaps", "kube-system", `cloud-provider-port-usage-${NODE}`)?.data?.[String(used)],
      "the port already use",
    );
  } finally {
    assertEquals(await daemon.stop(), 0);
    listeners.close();
    await server.close();
    await host.close();
  }
});
