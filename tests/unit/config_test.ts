import { assertEquals, assertThrows } from "../support/assert.ts";
import { buildConfig, defaultConfig } from "../../config/config.ts";
import { byteCount, parseGoBool, parseGoDuration } from "../../config/values.ts";
import { FlagError } from "../../core/flag_error.ts";
import { FLAGS } from "../../config/flags.ts";

Deno.test("parseGoDuration takes Go's syntax", () => {
  const cases: [string, number][] = [
    ["500ms", 500],
    ["3s", 3000],
    ["1m", 60_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["2m30s", 150_000],
    ["0", 0],
    ["1000us", 1],
    ["10s500ms", 10_500],
  ];
  for (const [text, ms] of cases) assertEquals(parseGoDuration(text), ms, text);
  for (const bad of ["", "3", "abc", "1x", "-1s", "1h 30m", "s"]) {
    assertThrows(() => parseGoDuration(bad), Error, "is not a duration");
  }
});

Deno.test("byteCount takes decimal and binary units; the image-replication flags' defaults", () => {
  const cases: [string, number][] = [["0", 0], ["1500", 1500], ["100M", 100e6], ["1g", 1e9], ["64Mi", 64 * 2 ** 20], [
    "2.5kB",
    2500,
  ]];
  for (const [text, bytes] of cases) assertEquals(byteCount(text), bytes, text);
  for (const bad of ["", "M", "-1", "1x", "1 0M", "1MiB2"]) {
    assertThrows(() => byteCount(bad), Error, "is not a byte count");
  }
  const config = defaultConfig();
  assertEquals(
    [config.imageReplication, config.imageExportConcurrency, config.imageReplicationBandwidth],
    ["off", 2, 0],
  );
  assertEquals(
    buildConfig({ imageReplicationBandwidth: "100M" }, { env: {}, hostname: "h" }).imageReplicationBandwidth,
    1e8,
  );
  assertThrows(
    () => buildConfig({ imageReplication: "on" }, { env: {}, hostname: "h" }),
    FlagError,
    "--image-replication",
  );
});

Deno.test("parseGoBool takes strconv.ParseBool's words", () => {
  for (const t of ["1", "t", "T", "true", "TRUE", "True", true]) assertEquals(parseGoBool(t), true);
  for (const f of ["0", "f", "F", "false", "FALSE", "False"]) assertEquals(parseGoBool(f), false);
  assertThrows(() => parseGoBool("yes"), Error, "is not a boolean");
});

Deno.test("defaults are the original daemon's", () => {
  const config = buildConfig({}, { env: {}, hostname: "Host-A" });
  assertEquals(config.dbclusterLogDir, "/flash/polardb_dbcluster/");
  assertEquals(config.insFolderOverdueDays, 3);
  assertEquals(config.developMode, false);
  assertEquals(config.port, 8900);
  assertEquals(config.eventsEnableUpload, false);
  assertEquals(config.eventsUploadUrl, "http://rds-redline-worker-log-api.rds:8080/");
  assertEquals(config.eventsUploadTimeout, 3);
  assertEquals(config.jobEnableDelFip, true);
  assertEquals(config.jobEnableAddFip, true);
  assertEquals(config.polarstackDaemonPodLabels, "app=polarstack-daemon");
  assertEquals(config.coreVersionCmLabels, "configtype=minor_version_info,dbClusterMode=WriteReadMore");
  assertEquals(config.mpdControllerCmName, "polardb4mpd-controller");
  assertEquals(config.serviceOwnerDbCluster, "mpdcluster");
  assertEquals(config.netProbeInterval, 3000);
  assertEquals(config.namespace, "kube-system");
  assertEquals(config.currentNodeName, "host-a", "falls back to the host name, lower case");
  assertEquals(config.dockerHost, "unix:///var/run/docker.sock");
  // Its own account and the fan-out's projected token, not the original's shared cloud-controller-manager.
  assertEquals(config.apiAllowedUsers, "system:serviceaccount:kube-system:polarstack-daemon");
  assertEquals(config.peerTokenFile, "/var/run/secrets/polarstack-daemon/token");
});

Deno.test("node name: flag, then $CURRENT_NODE_NAME, then host name; lower case", () => {
  const env = { CURRENT_NODE_NAME: "Node-From-Env" };
  assertEquals(buildConfig({}, { env, hostname: "h" }).currentNodeName, "node-from-env");
  assertEquals(buildConfig({ currentNodeName: "Flag-Node" }, { env, hostname: "h" }).currentNodeName, "flag-node");
});

Deno.test("$ProbeJobPeriod sets the probe interval in seconds; the flag wins", () => {
  assertEquals(buildConfig({}, { env: { ProbeJobPeriod: "7" }, hostname: "h" }).netProbeInterval, 7000);
  assertEquals(
    buildConfig({ netProbeInterval: "500ms" }, { env: { ProbeJobPeriod: "7" }, hostname: "h" }).netProbeInterval,
    500,
  );
  assertThrows(() => buildConfig({}, { env: { ProbeJobPeriod: "x" }, hostname: "h" }), FlagError, "$ProbeJobPeriod");
});

Deno.test("bad values name the flag and the reason", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ port: "abc" }, `Invalid value for --port: "abc" is not a whole number`],
    [{ port: "70000" }, "Invalid value for --port: 70000 is out of range 1..65535"],
    [{ insFolderOverdueDays: "-1" }, "Invalid value for --ins-folder-overdue-days: -1 is out of range"],
    [{ netProbeInterval: "3" }, "Invalid value for --net-probe-interval"],
    [{ developMode: "maybe" }, `Invalid value for --develop-mode: "maybe" is not a boolean`],
    [{ portScanMethod: "nmap" }, `Invalid value for --port-scan-method: "nmap" is not one of netlink, proc, bind`],
  ];
  for (const [raw, message] of cases) {
    assertThrows(() => buildConfig(raw, { env: {}, hostname: "h" }), FlagError, message);
  }
});

Deno.test("every flag has a unique name and Config key", () => {
  assertEquals(new Set(FLAGS.map((f) => f.name)).size, FLAGS.length);
  assertEquals(new Set(FLAGS.map((f) => f.key)).size, FLAGS.length);
  // Each default reaches the Config as its own parser reads it (a default that is not applied, or parsed by
  // another flag's parser, fails here).
  const config: Record<string, unknown> = defaultConfig();
  for (const flag of FLAGS) {
    const text: string | undefined = flag.defaultText;
    if (text !== undefined) assertEquals(config[flag.key], flag.parse(text), flag.name);
  }
});

Deno.test("the README's flag table is the flag definitions'", async () => {
  const { flagsTable } = await import("../../scripts/flags_table.ts");
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  // deno fmt aligns the columns: compare without the padding.
  const squash = (text: string) => text.replace(/ *\| */g, "|").replace(/-{3,}/g, "---");
  assertEquals(squash(readme).includes(squash(flagsTable())), true, "run: deno run -A scripts/flags_table.ts --write");
});

Deno.test("deno task start and the image run with the daemon's V8 flags and malloc environment", async () => {
  const { MALLOC_ENV, V8_FLAGS } = await import("../../config/config.ts");
  const deno = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  const env = Object.entries(MALLOC_ENV).map(([name, value]) => `${name}=${value}`).join(" ");
  assertEquals(deno.tasks.start, `${env} deno run -A --v8-flags=${V8_FLAGS.join(",")} main.ts`);
  const dockerfile = await Deno.readTextFile(new URL("../../Dockerfile", import.meta.url));
  assertEquals(dockerfile.match(/^ENV .*$/gm), [`ENV ${env}`]);
});
