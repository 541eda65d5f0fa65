/**
 * Debugging a host inside the pod, as a process: `polarstack-daemon once <task>` reads the flags the DaemonSet gave the
 * daemon in `$POLARSTACK_DAEMON_ARGS`; flags typed on the command line win.
 */
import { assertEquals } from "../support/assert.ts";
import { ARGS_ENV } from "../../config/flags.ts";
import { runMain } from "../support/daemon_process.ts";

Deno.test("process: once port-usage --dry-run --json uses the ranges from $POLARSTACK_DAEMON_ARGS, typed ones win", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  try {
    const env = { [ARGS_ENV]: `--local\n--port-ranges=${port}-${port}\n` };
    const fromEnv = await runMain(["once", "port-usage", "--dry-run", "--json"], { env });
    assertEquals(fromEnv.code, 0, fromEnv.stderr);
    const result = JSON.parse(fromEnv.stdout);
    assertEquals([result.ranges, result.used], [[[port, port]], [port]]);
    const typed = await runMain(["once", "port-usage", "--dry-run", "--json", "--port-ranges=1-1"], { env });
    assertEquals(typed.code, 0, typed.stderr);
    assertEquals(JSON.parse(typed.stdout).ranges, [[1, 1]]);
  } finally {
    listener.close();
  }
});
