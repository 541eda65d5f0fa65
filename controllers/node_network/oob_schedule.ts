/**
 * When the node-network job runs `ipmitool` again, pure: a success holds for an hour; a failure (a BMC that is
 * still booting) is retried after a minute, then twice as long after every failure in a row, up to the hour.
 */
import type { OobAnswer } from "../../host/ipmi.ts";
import { knownAddress } from "./conditions.ts";

/** The timing of the checks. */
export interface OobTiming {
  /** The first retry after a failure (1 min). */
  readonly firstRetryMs: number;
  /** How long a success holds (1 h); also the longest wait between retries. */
  readonly holdMs: number;
}

/** What the job remembers of the OOB checks between runs. */
export interface OobSchedule {
  /** The last answer, or null before the first one (and while the check is off). */
  readonly answer: OobAnswer | null;
  /** The last address a check returned, kept in the message when a later check fails. */
  readonly lastIp: string | null;
  /** When the next check is due (ms since the epoch), or null: at the next probe. */
  readonly nextAt: number | null;
  /** Failed checks in a row. */
  readonly failures: number;
}

/** No check made yet. */
export const OOB_UNCHECKED: OobSchedule = { answer: null, lastIp: null, nextAt: null, failures: 0 };

/** When to run `ipmitool` again: `holdMs` after a success, else `firstRetryMs` doubled per failure in a row, capped. */
export function nextOobCheckDelayMs(failuresInRow: number, options: OobTiming): number {
  if (failuresInRow === 0) return options.holdMs;
  return Math.min(options.firstRetryMs * 2 ** Math.min(failuresInRow - 1, 30), options.holdMs);
}

/** Whether a check is due at `now`. */
export function oobCheckDue(schedule: OobSchedule, now: number): boolean {
  return schedule.nextAt === null || now >= schedule.nextAt;
}

/** The schedule after an answer to the check started at `startedAt`. */
export function afterOobAnswer(
  schedule: OobSchedule,
  answer: OobAnswer,
  options: { startedAt: number; timing: OobTiming },
): OobSchedule {
  const failures = answer.ok ? 0 : schedule.failures + 1;
  return {
    answer,
    lastIp: answer.ok ? knownAddress(answer.ip) ?? schedule.lastIp : schedule.lastIp,
    nextAt: options.startedAt + nextOobCheckDelayMs(failures, options.timing),
    failures,
  };
}

/** The schedule when the check is switched off: no answer, a check at once when it is on again; the address kept. */
export function oobSwitchedOff(schedule: OobSchedule): OobSchedule {
  return { ...OOB_UNCHECKED, lastIp: schedule.lastIp };
}

/** Whether an answer starts a run of failures (worth one warning, not one per retry). */
export function startsFailing(previous: OobAnswer | null, answer: OobAnswer): boolean {
  return !answer.ok && (previous === null || previous.ok);
}
