/** The dependencies of a job in a test: a clock moved by hand, a recording event sink, a logger, a refusing runner. */
import { getLogger } from "@logtape/logtape";
import type { JobDeps } from "../../controllers/deps.ts";
import type { Clock, DaemonEvent, EventSink } from "../../core/types.ts";
import type { CommandRunner } from "../../host/command.ts";

/** A clock the test moves by hand. */
export interface ManualClock extends Clock {
  /** Moves the time forward. */
  advance(ms: number): void;
}

/** Makes a clock that starts at `start` and moves only when told. */
export function testClock(start: Date | string = "2026-01-01T00:00:00.250Z"): ManualClock {
  let t = new Date(start).getTime();
  return { now: () => new Date(t), advance: (ms) => void (t += ms) };
}

/** An event sink that keeps the events. */
export function recordingSink(): EventSink & { events: DaemonEvent[] } {
  const events: DaemonEvent[] = [];
  return { events, record: (event) => void events.push(event) };
}

/** A command runner that refuses every command: for jobs that must run none. */
export const refusingRunner: CommandRunner = (argv) =>
  Promise.reject(new Error(`Cannot run "${argv[0]}": this test runs no command`));

/**
 * JobDeps for a test: no cluster, a test clock, a recording event sink (its events in `recorded`), a logger and a
 * runner that refuses; `overrides` win.
 */
export function jobDeps(overrides: Partial<JobDeps> = {}): JobDeps & { recorded: DaemonEvent[] } {
  const sink = recordingSink();
  return {
    kube: null,
    clock: testClock(),
    events: sink,
    log: getLogger(["polarstack-daemon", "test"]),
    runCommand: refusingRunner,
    ...overrides,
    recorded: sink.events,
  };
}
