/** The manifests against the daemon as a process: its --help, and the binary `deno task compile` makes. */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { loadAll } from "js-yaml";
import { parseCommandLine } from "../../config/command_line.ts";
import { ARGS_ENV, argsFromEnv } from "../../config/flags.ts";
import { runMain } from "../support/daemon_process.ts";

// deno-lint-ignore no-explicit-any
const daemonSet = (loadAll(Deno.readTextFileSync(new URL("../../manifests/daemon_set.yaml", import.meta.url))) as any[])
  .find((d) => d?.kind === "DaemonSet");
const container = daemonSet.spec.template.spec.containers[0];
const args: string[] = argsFromEnv(
  container.env.find((e: { name: string; value?: string }) => e.name === ARGS_ENV)?.value,
);

Deno.test("every flag in the DaemonSet is one the daemon accepts, with a valid value", async () => {
  const invocation = parseCommandLine(args, { env: {} });
  assertEquals(invocation.kind, "daemon");
  const { stdout } = await runMain(["--help"]);
  for (const arg of args) {
    const name = /^--([a-z0-9-]+)/.exec(arg)?.[1];
    assert(name, `not a long flag: ${arg}`);
    assert(stdout.includes(`--${name} `), `--help does not list --${name}`);
  }
});

Deno.test("deno task compile: a binary that runs, or one clear line naming DENORT_BIN when offline", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "compile"],
    cwd: new URL("../../", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr).trim();
  if (output.success) {
    const binary = new URL("../../dist/polarstack-daemon", import.meta.url).pathname;
    const version = await new Deno.Command(binary, { args: ["--version"], stdout: "piped" }).output();
    assertMatch(new TextDecoder().decode(version.stdout).trim(), /^\d+\.\d+\.\d+$/);
    const once = await new Deno.Command(binary, {
      args: ["once", "port-usage", "--local", "--json", "--port-ranges", "1-65535"],
      stdout: "piped",
      stderr: "null",
    }).output();
    assertEquals(once.code, 0);
    assert(Array.isArray(JSON.parse(new TextDecoder().decode(once.stdout)).used));
  } else {
    console.error(`deno compile could not run here: ${stderr}`);
    assertEquals(stderr.split("\n").length, 1, stderr);
    assertMatch(stderr, /^Cannot compile: .*runtime base \(denort\).*DENORT_BIN=/);
  }
});
