/** The command line as an operator meets it: in a pod, typos, bad ranges, failures as JSON, klog's stderr threshold. */
import { assert, assertEquals, assertStringIncludes } from "../support/assert.ts";
import { freePort, runMain } from "../support/daemon_process.ts";

const TMP = await Deno.makeTempDir({ prefix: "psd-cli-" });
const SA = "/var/run/secrets/kubernetes.io/serviceaccount";

Deno.test("in a pod without the service account token or CA: exit 1 naming the file, never local mode", async () => {
  let present = true;
  try {
    Deno.statSync(`${SA}/token`);
  } catch {
    present = false;
  }
  assert(!present, `${SA}/token exists on this machine: this test needs it absent`);
  const env = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };
  for (const args of [["--port", String(freePort())], ["once", "port-usage", "--json"]]) {
    const { code, stdout, stderr } = await runMain(args, { env });
    assertEquals(code, 1, `${args.join(" ")}: ${stderr}`);
    assertStringIncludes(stderr, `${SA}/token`);
    assertStringIncludes(stderr, "automountServiceAccountToken");
    assert(!stderr.includes("LOCAL MODE"), stderr);
    assertEquals(stdout, "");
  }
});

Deno.test("a typo of once names the command and the tasks; --port-ranges=abc exits 2", async () => {
  const typo = await runMain(["oncee", "port-usage"]);
  assertEquals(typo.code, 2);
  assertEquals(
    typo.stderr.trim(),
    'Unknown command "oncee": the command is once <task>, with a task of port-usage, core-version, log-cleanup, node-network, floating-ip, image-replication',
  );
  for (const args of [["--port-ranges=abc"], ["once", "port-usage", "--local", "--port-ranges=abc"]]) {
    const { code, stderr } = await runMain(args);
    assertEquals(code, 2, `${args.join(" ")}: ${stderr}`);
    assertEquals(
      stderr.trim(),
      'Invalid value for --port-ranges: Invalid port range "abc" in "abc": "abc" is not a port number',
    );
  }
});

Deno.test("once --json of a failing job prints the task and its error as JSON and exits 1", async () => {
  const { code, stdout, stderr } = await runMain([
    "once",
    "core-version",
    "--local",
    "--json",
    "--image-store=docker",
    `--docker-host=unix://${TMP}/no-docker.sock`,
    "--current-node-name=node-1",
  ]);
  assertEquals(code, 1, stderr);
  const answer = JSON.parse(stdout);
  assertEquals(answer.task, "core-version");
  assertEquals(answer.node, "node-1");
  assertEquals(answer.dryRun, false);
  assertStringIncludes(answer.error, `Cannot list images: Docker at unix://${TMP}/no-docker.sock: no such socket`);
  assertStringIncludes(stderr, "core-version failed: Cannot list images");
});

Deno.test("--logtostderr=false --stderrthreshold=1: warnings reach stderr, every line the file; --vmodule is warned about", async () => {
  const logFile = `${TMP}/polardb-net.log`;
  const { code, stderr } = await runMain([
    "once",
    "port-usage",
    "--local",
    "--port-ranges=1-10",
    "--v=5",
    "--vmodule=port_usage=4",
    "--logtostderr=false",
    `--log-file=${logFile}`,
    "--stderrthreshold=1",
  ]);
  assertEquals(code, 0, stderr);
  const onStderr = stderr.trim().split("\n").map((l) => JSON.parse(l));
  const inFile = (await Deno.readTextFile(logFile)).trim().split("\n").map((l) => JSON.parse(l));
  assert(onStderr.some((l) => l.message.includes("LOCAL MODE")), stderr);
  assert(onStderr.some((l) => l.message === "--vmodule=port_usage=4 is ignored: use --v"), stderr);
  assertEquals(onStderr.filter((l) => l.level !== "warning" && l.level !== "error"), [], "only warnings and above");
  assert(inFile.some((l) => l.level === "info"), "the file has every line");
  assert(inFile.some((l) => l.message.includes("LOCAL MODE")));

  // klog's default threshold is error: no warning on stderr then.
  const quiet = await runMain([
    "once",
    "port-usage",
    "--local",
    "--port-ranges=1-10",
    "--logtostderr=false",
    `--log-file=${logFile}`,
  ]);
  assertEquals(quiet.code, 0, quiet.stderr);
  assertEquals(quiet.stderr, "");
});
