/** The log-cleanup job's schedule and name. */
import { createLogCleanupController } from "../../controllers/log_cleanup/job.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { cleanupDeps } from "../support/log_cleanup_tree.ts";

Deno.test("the job's schedule and name", () => {
  const { deps, options } = cleanupDeps({ root: "/nowhere", kube: null });
  const controller = createLogCleanupController(deps, options);
  assertEquals(controller.name, "log-cleanup");
  assertEquals(controller.schedule, { cron: "0 */6 * * *" });
  assert(controller.runAtStart);
});
