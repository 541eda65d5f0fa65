/** Job-transition Events: one when a job starts failing, one when it works again, none in between. */
import type { LastRun } from "../../controllers/run_limit.ts";
import { transitionEvent } from "../../controllers/transitions.ts";
import { assertEquals } from "../support/assert.ts";

const run = (outcome: LastRun["outcome"]): LastRun => ({
  startedAt: "2026-12-01T00:00:00.000Z",
  durationMs: 1,
  outcome,
  summary: outcome === "failure" ? "boom" : "fine",
  error: outcome === "failure" ? "boom" : undefined,
  dryRun: false,
});

Deno.test("a first failure and a recovery are Events; a failure after a failure and a success after one are not", () => {
  assertEquals(transitionEvent("port-usage", { run: run("failure"), previous: undefined }), {
    job: "port-usage",
    type: "Warning",
    reason: "JobFailed",
    message: 'Job "port-usage" failed: boom',
  });
  assertEquals(transitionEvent("port-usage", { run: run("failure"), previous: "success" })?.reason, "JobFailed");
  assertEquals(transitionEvent("port-usage", { run: run("failure"), previous: "failure" }), null);
  assertEquals(transitionEvent("port-usage", { run: run("success"), previous: "failure" }), {
    job: "port-usage",
    type: "Normal",
    reason: "JobRecovered",
    message: 'Job "port-usage" works again',
  });
  assertEquals(transitionEvent("port-usage", { run: run("success"), previous: "success" }), null);
  assertEquals(transitionEvent("port-usage", { run: run("success"), previous: undefined }), null);
});
