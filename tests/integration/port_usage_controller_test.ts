/** The port-usage job end to end: real listeners, the real /proc scan, the fake API server. */
import { assert, assertEquals, assertMatch, assertNotMatch, assertRejects } from "../support/assert.ts";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { getLogger } from "@logtape/logtape";
import { defaultConfig } from "../../config/config.ts";
import { createPortScanner } from "../../controllers/port_usage/scanner.ts";
import {
  createPortUsageController,
  OVERLAP_GAUGE,
  type PortUsageHooks,
  type PortUsageResult,
} from "../../controllers/port_usage/job.ts";
import { SWITCH_CACHE_MS } from "../../controllers/port_usage/observe.ts";
import { CONFIGMAP_MAX_BYTES } from "../../controllers/port_usage/plan.ts";
import type { Config } from "../../config/config.ts";
import { portUsageOptions } from "../../job_options.ts";
import type { Logger } from "../../core/types.ts";
import { createCommandRunner } from "../../host/command.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { KubeError } from "../../k8s/errors.ts";
import { createMetrics } from "../../api/metrics.ts";
import { readProcLocalPorts } from "../../host/proc_net.ts";
import { bindFails } from "../../host/bind_scan.ts";
import type { FakeKubeApiServer } from "../fake_kube/server.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";
import { jobDeps, testClock } from "../support/job_deps.ts";

const NS = "kube-system";
const NODE = "n1";
const OUT = "cloud-provider-port-usage-n1";
const OUT_PATH = `/api/v1/namespaces/${NS}/configmaps/${OUT}`;

function configMap(name: string, fields: Partial<V1ConfigMap>): V1ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", ...fields, metadata: { name, namespace: NS, ...fields.metadata } };
}

/** A folder standing for /proc/sys/net/ipv4 with the two sysctls; by default no test port is ephemeral. */
function sysctlFolder(range = "61000 65000", reserved = ""): string {
  const dir = Deno.makeTempDirSync({ prefix: "port_usage_sysctl_" });
  Deno.writeTextFileSync(`${dir}/ip_local_port_range`, `${range}\n`);
  Deno.writeTextFileSync(`${dir}/ip_local_reserved_ports`, `${reserved}\n`);
  return dir;
}

function setup(kube: KubeClient | null, overrides: Partial<Config> = {}, sysctlDir = sysctlFolder()) {
  const clock = testClock("2026-11-25T08:00:00.500Z");
  // The tests' clients ask the server at every read: the switch is kept as with --cluster-cache=false.
  const config = defaultConfig({ currentNodeName: NODE, clusterCache: false, ...overrides });
  const deps = jobDeps({ kube, clock, log: getLogger(["test", "port-usage"]), runCommand: createCommandRunner() });
  const make = (hooks?: PortUsageHooks) =>
    createPortUsageController(deps, portUsageOptions(config), { sysctlDir, ...hooks });
  return { deps, events: deps.recorded, clock, make, sysctlDir };
}

function run(controller: ReturnType<typeof createPortUsageController>, dryRun = false) {
  return controller.run({ signal: AbortSignal.timeout(20_000), dryRun });
}

function writes(server: FakeKubeApiServer) {
  return server.requests.filter((r) => (r.method === "PUT" || r.method === "POST") && r.path.includes("/configmaps"));
}

function dataKeys(server: FakeKubeApiServer): number[] {
  const stored = server.get("configmaps", NS, OUT) as V1ConfigMap | undefined;
  return Object.keys(stored?.data ?? {}).map(Number).sort((a, b) => a - b);
}

/**
 * A port below the kernel's default ephemeral range (32768-60999) that nothing holds, nor its `span - 1` next ones.
 * The local port of any TCP socket counts as used, so a port that an outgoing connection of this busy host may take
 * at any moment would make a "not used" assertion flaky.
 */
function freePort(span = 1): number {
  for (;;) {
    const start = 20000 + Math.floor(Math.random() * (32768 - 20000 - span));
    const ports = Array.from({ length: span }, (_, i) => start + i);
    if (ports.every((p) => !bindFails(p, "0.0.0.0") && !bindFails(p, "::"))) return start;
  }
}

function port(listener: Deno.Listener): number {
  return (listener.addr as Deno.NetAddr).port;
}

Deno.test("port-usage publishes real listeners, writes only on change, retries a 409, keeps metadata", async () => {
  const a = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const b = Deno.listen({ hostname: "::", port: 0 });
  const later = freePort();
  const idle = freePort();
  // One port per annotation keeps other processes' listeners out of the ranges.
  const { server, kube, close } = await startFakeCluster({
    seed: [
      configMap("polardb4mpd-controller", {
        metadata: {
          annotations: {
            "polarbox.mpd.engine.port.range": `${port(a)}`,
            "polarbox.mpd.external.port.range": `${port(b)}-${port(b)}`,
            "polarbox.novip.engine.port.range": `${later}+0`,
            "polarbox.mpd.reserved.port.ranges": `${idle}`,
            "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"ConfigMap"}',
          },
        },
      }),
    ],
    client: { backoffCapMs: 50 },
  });
  let c: Deno.Listener | null = null;
  try {
    const { make, clock, events } = setup(kube);
    const controller = make();
    assertEquals(controller.name, "port-usage");
    assertEquals(controller.schedule, { cron: "* * * * *" });
    assertEquals(controller.runAtStart, true);

    const first = await run(controller);
    const expected = [port(a), port(b)].sort((x, y) => x - y);
    const ranges = [port(a), port(b), later, idle].sort((x, y) => x - y).map((p): [number, number] => [p, p]);
    assertEquals(
      first.result,
      {
        node: NODE,
        ranges,
        used: expected,
        changed: true,
        configMap: OUT,
        enabled: true,
        invalid: [],
        ephemeralOverlap: [],
      } satisfies PortUsageResult,
    );
    assertMatch(first.summary, new RegExp(`^2 used ports in 4 ranges; ConfigMap "${OUT}" created$`));
    const stored = server.get("configmaps", NS, OUT) as V1ConfigMap;
    assertEquals(stored.data, Object.fromEntries(expected.map((p) => [String(p), "the port already use"])));
    assertEquals(stored.metadata?.annotations?.updateTimestamp, "2026-11-25T08:00:00Z");
    assertEquals(writes(server).length, 1);
    assertEquals(writes(server)[0].method, "POST");

    // Unchanged: no write, not even after a restart (a new controller compares with the stored keys).
    server.clearRequests();
    clock.advance(60_000);
    assertEquals((await run(controller)).result.changed, false);
    const restarted = await run(make());
    assertEquals(restarted.result.changed, false);
    assertMatch(restarted.summary, /unchanged$/);
    assertEquals(writes(server).length, 0);

    // Someone labels the ConfigMap meanwhile: the next write keeps it.
    const labelled = server.get("configmaps", NS, OUT) as V1ConfigMap;
    server.put({ ...labelled, metadata: { ...labelled.metadata, labels: { owner: "ops" } } });

    // A new listener in a range: exactly one update.
    c = Deno.listen({ hostname: "127.0.0.1", port: later });
    clock.advance(60_000);
    server.clearRequests();
    const grown = await run(controller);
    assertEquals(grown.result.changed, true);
    assertMatch(grown.summary, /updated$/);
    assertEquals(grown.result.used, [...expected, later].sort((x, y) => x - y));
    assertEquals(writes(server).map((r) => [r.method, r.status]), [["PUT", 200]]);
    assertEquals(dataKeys(server), grown.result.used);
    const afterGrow = server.get("configmaps", NS, OUT) as V1ConfigMap;
    assertEquals(afterGrow.metadata?.labels, { owner: "ops" });
    assertEquals(afterGrow.metadata?.annotations?.updateTimestamp, "2026-11-25T08:02:00Z");
    assertEquals((await run(controller)).result.changed, false);
    assertEquals(writes(server).length, 1);

    // The listener goes away and the first PUT meets a 409: read again, write again.
    c.close();
    c = null;
    server.clearRequests();
    server.injectFault({ method: "PUT", pathPrefix: OUT_PATH, count: 1, status: 409 });
    const shrunk = await run(controller);
    assertEquals(shrunk.result.changed, true);
    assertEquals(writes(server).map((r) => [r.method, r.status]), [["PUT", 409], ["PUT", 200]]);
    assertEquals(dataKeys(server), expected);
    assertEquals(events, []);
  } finally {
    c?.close();
    a.close();
    b.close();
    await close();
  }
});

Deno.test("port-usage: bad annotations are reported once per change and skipped", async () => {
  const a = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const mpd = (annotations: Record<string, string>) =>
    configMap("polardb4mpd-controller", { metadata: { annotations } });
  const { server, kube, close } = await startFakeCluster({
    seed: [mpd({ good: `${port(a)}`, typo: "04-abcd", high: "65535-65536", json: "{}", empty: "" })],
    client: { backoffCapMs: 50 },
  });
  try {
    const { make, events } = setup(kube);
    const controller = make();
    const first = await run(controller);
    assertEquals(first.result.used, [port(a)]);
    assertEquals(first.result.ranges, [[port(a), port(a)]]);
    assertEquals(first.result.invalid, [
      { key: "high", value: "65535-65536", reason: "65536 is outside 1..65535" },
      { key: "typo", value: "04-abcd", reason: '"abcd" is not a port number' },
    ]);
    assertEquals(events.length, 1);
    assertEquals(events[0].type, "Warning");
    assertEquals(events[0].reason, "PortRangeInvalid");
    assertMatch(events[0].message, /ConfigMap "polardb4mpd-controller".*high="65535-65536".*typo="04-abcd"/);
    await run(controller);
    assertEquals(events.length, 1, "the same invalid values are not reported again");

    server.put(mpd({ good: `${port(a)}`, typo: "04-abcd" }));
    await run(controller);
    assertEquals(events.length, 2, "a change of the invalid set is reported");
    assertNotMatch(events[1].message, /high=/);

    // No valid range at all: nothing is measured, so the published ConfigMap holds no port (as the original wrote).
    server.put(mpd({ typo: "abc-1" }));
    server.clearRequests();
    const dry = await run(controller, true);
    assertMatch(dry.summary, /with no ports would be written \(dry run\)$/);
    assertEquals(writes(server).length, 0);
    const none = await run(controller);
    assertEquals([none.result.ranges, none.result.used, none.result.changed], [[], [], true]);
    assertMatch(
      none.summary,
      /^No port ranges to scan \(no valid range in ConfigMap "polardb4mpd-controller" annotations\); .* updated$/,
    );
    assertEquals(writes(server).length, 1);
    assertEquals(dataKeys(server), []);
    const stored = server.get("configmaps", NS, OUT) as V1ConfigMap;
    assertEquals(stored.metadata?.annotations?.updateTimestamp, "2026-11-25T08:00:00Z");

    // No ranges ConfigMap: the same, and nothing more to write.
    server.remove("configmaps", NS, "polardb4mpd-controller");
    const missing = await run(controller);
    assertMatch(missing.summary, /ConfigMap "polardb4mpd-controller" not found\); .* unchanged$/);
    assertEquals(missing.result.changed, false);
    assertEquals(writes(server).length, 1);

    // A range again: its ports are back.
    server.put(mpd({ good: `${port(a)}` }));
    assertEquals((await run(controller)).result.used, [port(a)]);
    assertEquals(dataKeys(server), [port(a)]);
  } finally {
    a.close();
    await close();
  }
});

Deno.test('port-usage: enablePrintPort is lenient, re-read every 30 minutes, and "no" stops writes', async () => {
  const a = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const later = freePort();
  const { server, kube, close } = await startFakeCluster({
    seed: [
      configMap("polardb4mpd-controller", { metadata: { annotations: { r: `${port(a)}`, s: `${later}` } } }),
      configMap("controller-config", { data: { isCheckOObIP: "true" } }),
    ],
    client: { backoffCapMs: 50 },
  });
  let c: Deno.Listener | null = null;
  try {
    const { make, clock } = setup(kube);
    const controller = make();
    assertEquals((await run(controller)).result.changed, true, "no enablePrintPort key: on");

    server.put(configMap("controller-config", { data: { enablePrintPort: " No " } }));
    c = Deno.listen({ hostname: "127.0.0.1", port: later });
    clock.advance(SWITCH_CACHE_MS - 1000);
    server.clearRequests();
    assertEquals((await run(controller)).result.changed, true, "the switch is cached for 30 minutes");
    const getsOfSwitch = () => server.requests.filter((r) => r.path.endsWith("/configmaps/controller-config")).length;
    assertEquals(getsOfSwitch(), 0);

    c.close();
    c = null;
    clock.advance(2000);
    server.clearRequests();
    const off = await run(controller);
    assertEquals(getsOfSwitch(), 1);
    assertEquals(off.result.enabled, false);
    assertEquals(off.result.changed, false);
    assertMatch(off.summary, /Port printing is off/);
    assertEquals(writes(server).length, 0);
    assertEquals(dataKeys(server), [port(a), later].sort((x, y) => x - y), "the old content stays");

    server.put(configMap("controller-config", { data: { enablePrintPort: "maybe" } }));
    clock.advance(SWITCH_CACHE_MS);
    const on = await run(controller);
    assertEquals(on.result.enabled, true, "an unknown word means the default, true");
    assertEquals(on.result.changed, true);
    assertEquals(dataKeys(server), [port(a)]);
  } finally {
    c?.close();
    a.close();
    await close();
  }
});

Deno.test("port-usage: --port-ranges overrides the ConfigMap; --dry-run writes nothing", async () => {
  // Its neighbour must stay free: both below the ephemeral range.
  const a = Deno.listen({ hostname: "127.0.0.1", port: freePort(2) });
  const { server, kube, close } = await startFakeCluster({
    seed: [configMap("polardb4mpd-controller", { metadata: { annotations: { r: "1-10" } } })],
    client: { backoffCapMs: 50 },
  });
  try {
    const { make } = setup(kube, { portRanges: `${port(a)},${port(a) + 1}` });
    const controller = make();
    const dry = await run(controller, true);
    assertEquals(dry.result.ranges, [[port(a), port(a) + 1]]);
    assertEquals(dry.result.used, [port(a)]);
    assertEquals(dry.result.changed, true, "would be written");
    assertMatch(dry.summary, /would be written \(dry run\)$/);
    assertEquals(writes(server).length, 0);
    assertEquals(server.get("configmaps", NS, OUT), undefined);
    assertEquals(server.requests.filter((r) => r.path.includes("polardb4mpd-controller")).length, 0);

    assertEquals((await run(controller)).result.changed, true);
    const dryAgain = await run(controller, true);
    assertEquals(dryAgain.result.changed, false);
    assertMatch(dryAgain.summary, /unchanged \(dry run\)$/);
    assertEquals(writes(server).length, 1);
  } finally {
    a.close();
    await close();
  }
});

Deno.test("port-usage: more than 1 MiB of data fails the run, records an event and leaves the old content", async () => {
  const old = configMap(OUT, {
    metadata: { annotations: { updateTimestamp: "2026-01-01T00:00:00Z" } },
    data: { "5432": "the port already use" },
  });
  const { server, kube, close } = await startFakeCluster({ seed: [old], client: { backoffCapMs: 50 } });
  try {
    // Every port reserved: no ephemeral overlap Event beside the one this test is about.
    const { make, events } = setup(kube, { portRanges: "1-65535" }, sysctlFolder("32768 60999", "1-65535"));
    // Every port in use: 1,627,269 bytes. The scanner is injected: no host has 65535 listeners to spare.
    const everything = make({ scan: () => Promise.resolve(new Set(Array.from({ length: 65535 }, (_, i) => i + 1))) });
    server.clearRequests();
    await assertRejects(
      () => run(everything),
      Error,
      new RegExp(
        `^Error: Cannot write ConfigMap "${OUT}": 65535 used ports take 1627269 bytes, more than the limit of 1048576`,
      ),
    );
    assertEquals(writes(server).length, 0);
    assertEquals((server.get("configmaps", NS, OUT) as V1ConfigMap).data, old.data);
    assertEquals(events.map((e) => [e.type, e.reason]), [["Warning", "PortUsageTooLarge"]]);
    assertMatch(events[0].message, /65535 used ports take 1627269 bytes/);
    await assertRejects(() => run(everything, true), Error, /65535 used ports/);
    assertEquals(events.length, 1, "a dry run records nothing");

    // The byte count is the API server's: 41,943 five-digit ports (25 bytes each) plus one
    // more key of 1 byte fit exactly; one byte more is refused with 422.
    const exact: Record<string, string> = {};
    for (let p = 10000; p < 10000 + 41943; p++) exact[String(p)] = "the port already use";
    exact["x"] = "";
    assertEquals(Object.keys(exact).length * 25 - 24, CONFIGMAP_MAX_BYTES);
    const current = await kube.getConfigMap(OUT);
    const fits = await kube.replaceConfigMap({ ...current!, data: exact });
    const refused = await kube.replaceConfigMap({ ...fits, data: { ...exact, x: "!" } }).catch((e) => e);
    assert(refused instanceof KubeError && refused.status === 422, String(refused));

    const fewer = make({ scan: () => Promise.resolve(new Set([22, 5432])) });
    assertEquals((await run(fewer)).result.changed, true);
  } finally {
    await close();
  }
});

Deno.test("port-usage in local mode: scans 1-65535, publishes nothing, reports changes between runs", async () => {
  const a = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let closed = false;
  try {
    const { make } = setup(null);
    const controller = make();
    const first = await run(controller);
    assertEquals(first.result.ranges, [[1, 65535]]);
    assert(first.result.used.includes(port(a)));
    assertEquals(first.result.changed, true);
    assertMatch(first.summary, /not written \(local mode\)$/);
    const ranged = setup(null, { portRanges: `${port(a)}` }).make();
    assertEquals((await run(ranged)).result.used, [port(a)]);
    assertEquals((await run(ranged)).result.changed, false);
    a.close();
    closed = true;
    assertEquals((await run(ranged)).result.changed, true);
  } finally {
    if (!closed) a.close();
  }
});

/** A /proc/net/tcp-like table with one listener row per port. */
function table(ports: readonly number[]): string {
  const rows = ports.map((p, i) =>
    `${String(i).padStart(4)}: 0100007F:${p.toString(16).toUpperCase().padStart(4, "0")} 00000000:0000 0A ` +
    "00000000:00000000 00:00000000 00000000     0        0 1 1"
  );
  return ["  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode", ...rows]
    .join("\n") + "\n";
}

Deno.test("port-usage: a table that changes between reads never frees a port on one torn read", async () => {
  const { server, kube, close } = await startFakeCluster({
    seed: [configMap("polardb4mpd-controller", { metadata: { annotations: { r: "5000-5010" } } })],
    client: { backoffCapMs: 50 },
  });
  const dir = await Deno.makeTempDir({ prefix: "port_usage_torn_" });
  const path = `${dir}/tcp`;
  // Each read gets the next version of the table, as the kernel's would be rewritten between two scans.
  const versions = [
    [5001, 5002, 5003], // run 1: the first run always scans twice
    [5001, 5002, 5003],
    [5001, 5003], // run 2: 5002 hidden by a torn read...
    [5001, 5002, 5003, 5004], // ...and there again in the second scan; 5004 is new
    [5001, 5003, 5004], // run 3: 5002 closed, and two scans in a row agree
    [5001, 5003, 5004],
    [5001, 5003, 5004, 5005], // run 4: nothing missing, so one scan; 5005 published at once
  ];
  let reads = 0;
  const scan = async () => {
    const { ports } = await readProcLocalPorts({ paths: [path] });
    reads++;
    if (reads < versions.length) await Deno.writeTextFile(path, table(versions[reads]));
    return ports;
  };
  try {
    await Deno.writeTextFile(path, table(versions[0]));
    const { make } = setup(kube);
    const controller = make({ scan });
    const used = async () => (await run(controller)).result.used;
    assertEquals(await used(), [5001, 5002, 5003]);
    assertEquals(reads, 2);
    server.clearRequests();
    assertEquals(await used(), [5001, 5002, 5003, 5004], "5002 kept, 5004 added");
    assertEquals(reads, 4);
    assertEquals(dataKeys(server), [5001, 5002, 5003, 5004]);
    assertEquals(await used(), [5001, 5003, 5004], "dropped when two scans agree");
    assertEquals(reads, 6);
    assertEquals(await used(), [5001, 5003, 5004, 5005]);
    assertEquals(reads, 7, "no second scan when nothing went missing");
    assertEquals(dataKeys(server), [5001, 5003, 5004, 5005]);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await close();
  }
});

Deno.test("port-usage reports the ephemeral overlap: result, gauge, one Warning Event per change naming the sysctl", async () => {
  const { kube, close } = await startFakeCluster({ client: { backoffCapMs: 50 } });
  const sysctl = sysctlFolder("30500 36999", "8080,36500-36600");
  try {
    const { make, events } = setup(kube, { portRanges: "30000-32999,36000-39999" }, sysctl);
    const controller = make({ scan: () => Promise.resolve(new Set<number>()) });
    const first = await run(controller);
    assertEquals(first.result.ephemeralOverlap, [[30500, 32999], [36000, 36499], [36601, 36999]]);
    assertMatch(first.summary, /^0 used ports in 2 ranges \(3399 ports in the kernel's ephemeral range\); /);
    const metrics = createMetrics();
    for (const counter of first.counters ?? []) metrics.jobCounter(counter);
    assertMatch(await metrics.registry.metrics(), new RegExp(`^polarstack_daemon_${OVERLAP_GAUGE} 3399$`, "m"));
    assertEquals(events.map((e) => [e.type, e.reason]), [["Warning", "EphemeralPortOverlap"]]);
    assertMatch(
      events[0].message,
      /^Ports 30500-32999,36000-36499,36601-36999 \(3399 ports\) of the scanned ranges are in net\.ipv4\.ip_local_port_range \(30500-36999\) and not in net\.ipv4\.ip_local_reserved_ports: .*add them to sysctl net\.ipv4\.ip_local_reserved_ports \(or run the daemon with --reserve-port-ranges\)$/,
    );
    await run(controller);
    assertEquals(events.length, 1, "the same overlap is not reported again");

    await Deno.writeTextFile(`${sysctl}/ip_local_port_range`, "32768\t60999\n");
    const second = await run(controller);
    assertEquals(second.result.ephemeralOverlap, [[32768, 32999], [36000, 36499], [36601, 39999]]);
    assertEquals(events.length, 2, "a changed overlap is reported");
    for (const counter of second.counters ?? []) metrics.jobCounter(counter);
    assertMatch(await metrics.registry.metrics(), new RegExp(`^polarstack_daemon_${OVERLAP_GAUGE} 4131$`, "m"));
    const dry = await run(controller, true);
    assertEquals(dry.result.ephemeralOverlap, second.result.ephemeralOverlap);

    // --reserve-port-ranges: the scanned ranges join the entries already there, written once.
    const reserving = setup(kube, { portRanges: "30000-32999,36000-39999", reservePortRanges: true }, sysctl);
    const fixer = reserving.make({ scan: () => Promise.resolve(new Set<number>()) });
    const reservedFile = `${sysctl}/ip_local_reserved_ports`;
    assertEquals((await run(fixer, true)).result.ephemeralOverlap.length, 3, "a dry run reserves nothing");
    assertEquals(await Deno.readTextFile(reservedFile), "8080,36500-36600\n");
    const fixed = await run(fixer);
    assertEquals(fixed.result.ephemeralOverlap, []);
    assertEquals(await Deno.readTextFile(reservedFile), "8080,30000-32999,36000-39999\n");
    assertEquals(fixed.counters?.map((c) => [c.name, c.value, c.kind]), [
      [OVERLAP_GAUGE, 0, "gauge"],
      ["port_usage_used_ports", 0, "gauge"],
    ]);
    const written = (await Deno.stat(reservedFile)).mtime?.getTime();
    // A span after which a second write would show in the mtime: the assertion is that none happens.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await run(fixer);
    assertEquals((await Deno.stat(reservedFile)).mtime?.getTime(), written, "unchanged: not written again");
    assertEquals(reserving.events, [], "nothing left to report");

    // A sysctl that cannot be read does not stop the ports from being published.
    await Deno.remove(`${sysctl}/ip_local_port_range`);
    const unreadable = await run(controller);
    assertEquals(unreadable.result.ephemeralOverlap, []);
    assertMatch(unreadable.summary, /^0 used ports in 2 ranges; ConfigMap ".*" unchanged$/);
  } finally {
    await Deno.remove(sysctl, { recursive: true });
    await close();
  }
});

Deno.test("the netlink scanner falls back to /proc when it cannot open or a dump fails, and logs the method in use", async () => {
  const lines: string[] = [];
  const record = (level: string) => (message: string, fields: Record<string, unknown> = {}) =>
    void lines.push(`${level} ${message.replace(/\{(\w+)\}/g, (_, key) => String(fields[key]))}`);
  // Only the two calls the scanner makes; everything else of a logger is never reached.
  const log = { info: record("info"), warn: record("warn") } as unknown as Logger;
  const dir = await Deno.makeTempDir({ prefix: "port_usage_fallback_" });
  const path = `${dir}/tcp`;
  try {
    await Deno.writeTextFile(path, table([5432]));
    const signal = AbortSignal.timeout(5000);
    const broken = createPortScanner("netlink", log, {
      openDiag: () => {
        throw new Error("Cannot open a NETLINK_SOCK_DIAG socket: Permission denied (errno 13)");
      },
      procPaths: [path],
    });
    assertEquals((await broken([[1, 65535]], signal) as Uint8Array)[5432], 1);
    assertEquals((await broken([[1, 65535]], signal) as Uint8Array)[5432], 1);
    assertEquals(lines, [
      "warn Cannot open a NETLINK_SOCK_DIAG socket: Permission denied (errno 13): finding used ports in /proc/net/tcp " +
      "and /proc/net/tcp6 from now on",
    ]);

    lines.length = 0;
    let dumps = 0;
    const failing = createPortScanner("netlink", log, {
      openDiag: () => ({
        markLocalPorts: (ports) => {
          if (++dumps > 1) throw new Error("Cannot receive the socket dump: No buffer space available (errno 105)");
          ports[22] = 1;
          return { sockets: 1, receives: 1 };
        },
        close: () => {},
      }),
      procPaths: [path],
    });
    assertEquals((await failing([[1, 65535]], signal) as Uint8Array)[22], 1, "the dump while it works");
    assertEquals((await failing([[1, 65535]], signal) as Uint8Array)[5432], 1, "then /proc");
    assertEquals((await failing([[1, 65535]], signal) as Uint8Array)[5432], 1);
    assertEquals(dumps, 2, "no dump is tried after one failed");
    assertEquals(lines, [
      "info Finding used ports with netlink (NETLINK_SOCK_DIAG, --port-scan-method=netlink)",
      "warn Cannot receive the socket dump: No buffer space available (errno 105): finding used ports in " +
      "/proc/net/tcp and /proc/net/tcp6 from now on",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
