/** The command line as Go's flag package reads it, and what it asks for. */
import { assertEquals, assertThrows } from "../support/assert.ts";
import { helpText, parseCommandLine, readCommandLine } from "../../config/command_line.ts";
import { FLAGS } from "../../config/flags.ts";
import { FlagError } from "../../core/flag_error.ts";

const env = {};

Deno.test("--name=value and --name value; a boolean never takes the next word; the last value wins", () => {
  const a = parseCommandLine(["--v", "5", "--port=9000", "--local", "once", "port-usage", "--port", "9001"], { env });
  assertEquals(a.kind, "once");
  assertEquals([a.config.v, a.config.port, a.config.local], [5, 9001, true]);
  const b = parseCommandLine(["--local=false", "--ins-folder-overdue-days", "30"], { env });
  assertEquals([b.kind, b.config.local, b.config.insFolderOverdueDays], ["daemon", false, 30]);
  assertThrows(() => parseCommandLine(["--local", "false"], { env }), FlagError, 'Unknown command "false"');
});

Deno.test("once: the task, --dry-run and --json (only after once), anywhere among the flags", () => {
  const once = parseCommandLine(["once", "--json", "log-cleanup", "--dry-run=true", "--v=2"], { env });
  assertEquals(once, { ...once, kind: "once", task: "log-cleanup", dryRun: true, json: true });
  const plain = parseCommandLine(["once", "floating-ip"], { env });
  assertEquals(plain.kind === "once" && [plain.dryRun, plain.json], [false, false]);
  assertThrows(() => parseCommandLine(["--json", "once", "port-usage"], { env }), FlagError, "Unknown flag --json");
});

Deno.test("once image-replication: --version names a version there, --from a peer; elsewhere they are not flags", () => {
  const once = parseCommandLine(["once", "image-replication", "--version", "v-1", "--from=Node-A", "--json"], { env });
  assertEquals(once.kind === "once" && [once.task, once.version, once.from, once.json], [
    "image-replication",
    "v-1",
    "Node-A",
    true,
  ]);
  const all = parseCommandLine(["once", "image-replication", "--dry-run"], { env });
  assertEquals(all.kind === "once" && [all.version, all.from, all.dryRun], [undefined, undefined, true]);
  assertThrows(() => parseCommandLine(["once", "image-replication", "--version"], { env }), FlagError, "needs a value");
  assertThrows(
    () => parseCommandLine(["once", "core-version", "--from", "a"], { env }),
    FlagError,
    "Unknown flag --from",
  );
  assertEquals(readCommandLine(["once", "core-version", "--version"], { env }).kind, "print");
});

Deno.test("$POLARSTACK_DAEMON_ARGS (one flag a line) comes first, so the command line wins", () => {
  const fromEnv = { POLARSTACK_DAEMON_ARGS: "--v=3\n# a comment\n--port=9100\n" };
  const { config } = parseCommandLine(["--port=9200"], { env: fromEnv });
  assertEquals([config.v, config.port], [3, 9200]);
});

Deno.test("help and version are texts to print; the help lists every flag", () => {
  const help = readCommandLine(["--port=1", "-h"], { env });
  assertEquals(help.kind, "print");
  for (const flag of FLAGS) assertEquals(helpText("daemon").includes(`--${flag.name} `), true, flag.name);
  assertEquals(readCommandLine(["once", "--help"], { env }), { kind: "print", text: helpText("once") });
  assertEquals(readCommandLine(["--version"], { env }).kind, "print");
  assertThrows(() => parseCommandLine(["--version"], { env }), FlagError);
});

Deno.test("single-dash and unknown flags, a flag without its value: one clear error each", () => {
  assertThrows(() => parseCommandLine(["-v=5"], { env }), FlagError, "Unknown flag -v: see --help");
  assertThrows(() => parseCommandLine(["--nope=1"], { env }), FlagError, "Unknown flag --nope: see --help");
  assertThrows(() => parseCommandLine(["--namespace"], { env }), FlagError, "Flag --namespace needs a value");
  assertThrows(() => parseCommandLine(["--port=x"], { env }), FlagError, 'Invalid value for --port: "x"');
});
