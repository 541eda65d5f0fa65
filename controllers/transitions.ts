/** A job that starts failing, or works again: one Event per change, not one per run. */
import type { DaemonEvent } from "../core/types.ts";
import type { LastRun } from "./run_limit.ts";

/** The Event for a run, given the outcome of the run before it (none when nothing changed). */
export function transitionEvent(
  name: string,
  change: { run: LastRun; previous: LastRun["outcome"] | undefined },
): DaemonEvent | null {
  const { run, previous } = change;
  if (run.outcome === "failure" && previous !== "failure") {
    return { job: name, type: "Warning", reason: "JobFailed", message: `Job "${name}" failed: ${run.error}` };
  }
  if (run.outcome === "success" && previous === "failure") {
    return { job: name, type: "Normal", reason: "JobRecovered", message: `Job "${name}" works again` };
  }
  return null;
}
