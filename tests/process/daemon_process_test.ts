import { assert, assertEquals, assertMatch, assertStringIncludes } from "../support/assert.ts";
import { freePort, runMain, startDaemon, waitFor } from "../support/daemon_process.ts";
import { startFakeKubeApiServer } from "../fake_kube/server.ts";
import { FLAGS } from "../../config/flags.ts";
import denoConfig from "../../deno.json" with { type: "json" };

const TMP_ROOT = await Deno.makeTempDir({ prefix: "psd-daemon-" });
// The tests share this folder: it goes when the module unloads, after the last of them.
globalThis.addEventListener("unload", () => Deno.removeSync(TMP_ROOT, { recursive: true }));
const LOG_ROOT = `${TMP_ROOT}/logs`;
await Deno.mkdir(`${LOG_ROOT}/ins1`, { recursive: true });
// Everything the jobs touch on this host stays in temporary places.
const HOST_ARGS = [
  "--dbcluster-log-dir",
  LOG_ROOT,
  "--docker-host",
  `unix://${TMP_ROOT}/no-docker.sock`,
  "--net-card-name",
  "lo",
];

Deno.test("--help and once --help describe every flag; --version prints the version", async () => {
  const help = await runMain(["--help"]);
  assertEquals(help.code, 0);
  const onceHelp = await runMain(["once", "--help"]);
  assertEquals(onceHelp.code, 0);
  for (const flag of FLAGS) {
    assertStringIncludes(help.stdout, `--${flag.name}`);
    assertStringIncludes(onceHelp.stdout, `--${flag.name}`);
  }
  assertStringIncludes(onceHelp.stdout, "--dry-run");
  assertStringIncludes(onceHelp.stdout, "--json");
  const version = await runMain(["--version"]);
  assertEquals(version.stdout.trim(), denoConfig.version);
});

Deno.test("bad flags exit 2 with one line that names the flag", async () => {
  const cases: [string[], RegExp][] = [
    [["--port=abc"], /^Invalid value for --port: "abc" is not a whole number$/],
    [["--ins-folder-overdue-days=-1"], /^Invalid value for --ins-folder-overdue-days: -1 is out of range/],
    [["--net-probe-interval=fast"], /^Invalid value for --net-probe-interval: "fast" is not a duration/],
    [["--no-such-flag"], /^Unknown flag --no-such-flag: see --help$/],
    [["--port"], /^Flag --port needs a value$/],
    [["once", "everything"], /^Unknown task "everything": the tasks are port-usage, core-version, /],
    [["once"], /^The command once needs a task: one of port-usage, /],
    [["once", "port-usage", "extra"], /^Unexpected word "extra" after once port-usage$/],
    [["--dry-run"], /^Unknown flag --dry-run: see --help$/],
    [["once", "port-usage", "--dry-run=perhaps"], /^Invalid value for --dry-run/],
  ];
  for (const [args, pattern] of cases) {
    const { code, stderr } = await runMain(args);
    assertEquals(code, 2, `${args.join(" ")}: ${stderr}`);
    const lines = stderr.trim().split("\n");
    assertEquals(lines.length, 1, `one line for ${args.join(" ")}: ${stderr}`);
    assertMatch(lines[0], pattern);
  }
});

Deno.test("klog flags of the original DaemonSet are accepted; --log-file gets JSON lines with the task", async () => {
  const logFile = `${TMP_ROOT}/daemon.log`;
  const { code, stdout, stderr } = await runMain([
    "once",
    "log-cleanup",
    "--local",
    "--dry-run",
    "--json",
    "--v=5",
    "--logtostderr=false",
    `--log-dir=${TMP_ROOT}`,
    `--log-file=${logFile}`,
    "--log-flush-frequency=2s",
    "--stderrthreshold=1",
    ...HOST_ARGS,
  ]);
  assertEquals(code, 0, stderr);
  const result = JSON.parse(stdout);
  assertEquals(result.root, await Deno.realPath(LOG_ROOT));
  const lines = (await Deno.readTextFile(logFile)).trim().split("\n").map((l) => JSON.parse(l));
  assert(lines.length > 0);
  for (const line of lines) {
    assert(typeof line.task === "string" && line.task.length > 0, JSON.stringify(line));
    assert(typeof line.time === "string" && typeof line.level === "string");
  }
  assert(lines.some((l) => l.message.includes("LOCAL MODE")));
});

Deno.test("a log file that cannot be opened fails with a line naming it and the flag", async () => {
  const { code, stderr } = await runMain([
    "once",
    "port-usage",
    "--local",
    "--log-file",
    `${TMP_ROOT}/no/such/dir/x.log`,
  ]);
  assertEquals(code, 1);
  assertMatch(stderr.trim(), /^Cannot open log file ".*\/no\/such\/dir\/x\.log" \(--log-file or --log-dir\): /);
});

/** Whether a process is alive (a zombie waiting for its reaper is not). */
function alive(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

Deno.test("once node-network and the daemon leave no hung ipmitool behind when they exit", async () => {
  const dir = await Deno.makeTempDir({ dir: TMP_ROOT });
  const pidFile = `${dir}/ipmitool.pid`;
  // An ipmitool whose BMC never answers, which says who it is first.
  await Deno.writeTextFile(`${dir}/ipmitool`, `#!/bin/sh\necho $$ > "${pidFile}"\nexec sleep 120\n`, { mode: 0o755 });
  const env = { PATH: `${dir}:${Deno.env.get("PATH")}`, HOME: TMP_ROOT };
  const hungPid = () => Number(Deno.readTextFileSync(pidFile).trim());

  const once = await runMain(["once", "node-network", "--local", "--json", ...HOST_ARGS], { env });
  assertEquals(once.code, 0, once.stderr);
  assertEquals(JSON.parse(once.stdout).oobIp, null, "no OOB answer came");
  const first = hungPid();
  await waitFor(() => !alive(first), { what: `ipmitool ${first} to be gone after once exits` });

  await Deno.remove(pidFile);
  const daemon = await startDaemon(["--local", ...HOST_ARGS], { port: freePort(), env });
  const second = await waitFor(hungPid, { what: "the daemon to start ipmitool" });
  assert(alive(second));
  await daemon.stop();
  await waitFor(() => !alive(second), { what: `ipmitool ${second} to be gone after the daemon stops` });
});

Deno.test("local mode: the daemon serves /healthz and every job on /api/v1/status, and exits 0 on SIGTERM", async () => {
  const port = freePort();
  const daemon = await startDaemon(["--local", ...HOST_ARGS], { port, env: { HOME: TMP_ROOT } });
  try {
    assertEquals(await (await fetch(`${daemon.url}/healthz`)).json(), { status: "ok" });
    const status = await waitFor(async () => {
      const body = await (await fetch(`${daemon.url}/api/v1/status`)).json();
      return body.data.jobs.every((j: { runs: number }) => j.runs > 0) ? body : null;
    }, { what: "every job to run once" });
    assertEquals(status.code, "1");
    assertEquals(status.data.mode, "local");
    assertEquals(status.data.jobs.map((j: { name: string }) => j.name).sort(), [
      "core-version",
      "floating-ip",
      "image-replication",
      "log-cleanup",
      "node-network",
      "port-usage",
    ]);
    const ready = await fetch(`${daemon.url}/readyz`);
    assertEquals(ready.status, 200);
    assertEquals((await ready.json()).mode, "local");
    const ports = await (await fetch(`${daemon.url}/api/v1/ports`)).json();
    assert(Array.isArray(ports.data.used) && ports.data.used.includes(port), "the daemon sees its own port");
  } finally {
    assertEquals(await daemon.stop("SIGTERM"), 0);
  }
  assertStringIncludes(daemon.stderr(), "LOCAL MODE");
});

Deno.test("cluster mode: kubeconfig, user agent, readiness, and the client-side rate limit", async () => {
  const server = await startFakeKubeApiServer({
    seed: [{ apiVersion: "v1", kind: "Node", metadata: { name: "node-a" }, status: { conditions: [] } }],
  });
  const port = freePort();
  const daemon = await startDaemon([
    "--kubeconfig",
    server.kubeconfigPath,
    "--current-node-name",
    "Node-A",
    "--kube-api-qps",
    "4",
    "--kube-api-burst",
    "1",
    ...HOST_ARGS,
  ], { port, env: { HOME: TMP_ROOT } });
  try {
    await waitFor(async () => (await fetch(`${daemon.url}/readyz`)).status === 200, {
      what: "/readyz to turn 200",
      timeoutMs: 30_000,
    });
    const mine = server.requests.filter((r) => r.userAgent.startsWith("polarstack-daemon/"));
    assert(mine.length >= 4, `requests seen: ${mine.length}`);
    assertEquals(new Set(mine.map((r) => r.userAgent)), new Set([`polarstack-daemon/${denoConfig.version}`]));
    // QPS 4, burst 1: n requests need at least (n - 1) / 4 seconds (less the first connection's TLS set-up).
    const times = mine.map((r) => r.time).sort((a, b) => a - b);
    const span = times[times.length - 1] - times[0];
    assert(span >= (times.length - 1) * 250 - 150, `${times.length} requests within ${span} ms`);
    assert(!server.requests.some((r) => r.method === "GET" && r.path === "/api/v1/nodes"), "never lists all nodes");
    // No image store here, so core-version fails: one Warning Event on the Node says so.
    // (At QPS 4 another job may also miss its limit while it waits for the rate limit: its Event is not this one.)
    const failed = await waitFor(
      () =>
        server.list("events", "default").find((e) =>
          e.reason === "JobFailed" && String(e.message).includes('Job "core-version"')
        ),
      { what: "a JobFailed Event of core-version" },
    );
    assertEquals(failed.type, "Warning");
    assertEquals(failed.involvedObject.name, "node-a");
    assertStringIncludes(failed.message, 'Job "core-version" failed: Cannot list images');
  } finally {
    assertEquals(await daemon.stop("SIGTERM"), 0);
    await server.close();
  }
});

Deno.test("SIGTERM during a running job: exit 0 within the grace time", async () => {
  // A Docker socket that accepts and never answers keeps the core-version job running.
  const socket = `${TMP_ROOT}/hang.sock`;
  const listener = Deno.listen({ transport: "unix", path: socket });
  const held: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  const port = freePort();
  const daemon = await startDaemon([
    "--local",
    "--image-store",
    "docker",
    "--shutdown-grace-period",
    "2s",
    ...HOST_ARGS,
    "--docker-host",
    `unix://${socket}`,
  ], { port, env: { HOME: TMP_ROOT } });
  try {
    await waitFor(async () => {
      const body = await (await fetch(`${daemon.url}/api/v1/status`)).json();
      return body.data.jobs.find((j: { name: string }) => j.name === "core-version")?.running;
    }, { what: "core-version to be running" });
    const t0 = performance.now();
    const code = await daemon.stop("SIGTERM");
    const took = performance.now() - t0;
    assertEquals(code, 0);
    assert(took < 2000 + 3000, `exit took ${Math.round(took)} ms, grace is 2000 ms`);
  } finally {
    listener.close();
    for (const conn of held) conn.close();
  }
});
