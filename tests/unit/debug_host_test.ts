/**
 * Debugging a host inside the pod: `polarstack-daemon once <task>` started by `kubectl exec` inherits the
 * container's environment, so it runs with the flags the DaemonSet gave the daemon in `$POLARSTACK_DAEMON_ARGS`;
 * flags typed on the command line win.
 */
import { assertEquals } from "../support/assert.ts";
import { parseCommandLine } from "../../config/command_line.ts";
import { ARGS_ENV, argsFromEnv } from "../../config/flags.ts";

Deno.test("$POLARSTACK_DAEMON_ARGS: one flag a line, blank lines and # comments skipped, spaces kept in a value", () => {
  assertEquals(argsFromEnv("\n  --v=3\n# a comment\n--host-command-prefix=nsenter -t 1 -m --  \n\n"), [
    "--v=3",
    "--host-command-prefix=nsenter -t 1 -m --",
  ]);
  assertEquals(argsFromEnv(undefined), []);
});

Deno.test("command line: the environment's flags are the defaults of the daemon and of once; typed flags win", () => {
  const env = { [ARGS_ENV]: "--v=3\n--ins-folder-overdue-days=7\n--local" };
  const daemon = parseCommandLine([], { env });
  assertEquals([daemon.kind, daemon.config.v, daemon.config.insFolderOverdueDays, daemon.config.local], [
    "daemon",
    3,
    7,
    true,
  ]);
  const once = parseCommandLine(["once", "log-cleanup", "--dry-run", "--v=1"], { env });
  assertEquals(once.kind, "once");
  assertEquals([once.config.v, once.config.insFolderOverdueDays], [1, 7]);
  assertEquals(parseCommandLine(["--ins-folder-overdue-days=9"], { env }).config.insFolderOverdueDays, 9);
  assertEquals(parseCommandLine([], { env: {} }).config.insFolderOverdueDays, 3);
});
