/**
 * Runs the log-cleanup job once in local mode and prints its result (or `{"error"}`) as JSON, with the
 * directory-fd options given: for tests that run it inside a mount namespace or without FFI permission.
 * Usage: deno run -A tests/support/log_cleanup_cli.ts '{"root": "...", "openat2": true, "mountIds": true}'
 */
import { getLogger } from "@logtape/logtape";
import { defaultConfig } from "../../config/config.ts";
import { createLogCleanupController } from "../../controllers/log_cleanup/job.ts";
import { nullEventSink, systemClock } from "../../core/types.ts";
import { logCleanupOptions } from "../../job_options.ts";
import { jobDeps } from "./job_deps.ts";

const args = JSON.parse(Deno.args[0]) as { root: string; openat2?: boolean; mountIds?: boolean };
const config = defaultConfig({ dbclusterLogDir: args.root });
const deps = jobDeps({
  clock: systemClock,
  events: nullEventSink,
  log: getLogger(["polarstack-daemon", "log-cleanup"]),
});
const controller = createLogCleanupController(deps, logCleanupOptions(config), {
  resolve: { dirFs: { openat2: args.openat2, mountIds: args.mountIds } },
});
try {
  const { result } = await controller.run({ signal: new AbortController().signal, dryRun: false });
  console.log(JSON.stringify(result));
} catch (error) {
  console.log(JSON.stringify({ error: (error as Error).message }));
}
