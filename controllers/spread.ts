/**
 * When a node runs its cron jobs: each node waits its own offset after the tick, so that a thousand nodes do not
 * call the API server in the same second.
 */
import type { Controller } from "../core/types.ts";

/** Describes a schedule for humans. */
export function describeSchedule(controller: Controller): string {
  return "cron" in controller.schedule ? `cron ${controller.schedule.cron}` : `every ${controller.schedule.everyMs} ms`;
}

/**
 * The period of the daemon's cron schedules: `* * * * *`, `*\/N * * * *` (minutes), `M * * * *` (hourly) and
 * `M *\/N * * *` (hours). Throws for any other form, so that a new schedule gets a period on purpose.
 */
export function cronPeriodMs(expression: string): number {
  const [minute, hour, ...rest] = expression.trim().split(/\s+/);
  const every = (field: string) => /^\*\/([1-9]\d*)$/.exec(field)?.[1];
  if (rest.length === 3 && rest.every((f) => f === "*")) {
    if (hour === "*" && minute === "*") return 60_000;
    if (hour === "*" && every(minute)) return Number(every(minute)) * 60_000;
    if (hour === "*" && /^\d+$/.test(minute)) return 3_600_000;
    if (every(hour) && /^\d+$/.test(minute)) return Number(every(hour)) * 3_600_000;
  }
  throw new Error(`Cannot tell the period of cron schedule "${expression}"`);
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// murmur3's finaliser: FNV-1a alone leaves similar names close together.
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

// Odd 32-bit weights, the first 2^32/golden ratio: consecutive numbers land evenly spaced (Fibonacci hashing).
const NUMBER_WEIGHTS = [0x9e3779b9, 0x7f4a7c15, 0x3c6ef372, 0xdaa66d2b];

/**
 * This node's delay of a cron job's runs, in `[0, periodMs)`: a pure function of the node and job names, so it is
 * the same after a restart. Names are read as a pattern plus numbers (`node-17`, `10-0-3-21`): the pattern is hashed,
 * and each number adds a multiple of a golden-ratio weight, so numbered nodes spread evenly over the period rather
 * than as random draws would (1,000 `node-N` names: at most 18 in any second of a minute, where a hash puts up to
 * about 27); other names spread as a hash does.
 */
export function spreadOffsetMs(node: string, options: { job: string; periodMs: number }): number {
  const numbers: number[] = [];
  const pattern = node.replace(/\d+/g, (digits) => {
    let n = 0;
    for (const d of digits) n = (Math.imul(n, 10) + d.charCodeAt(0) - 48) >>> 0;
    numbers.push(n);
    return "#";
  });
  let h = mix(fnv1a(`${options.job}\u0000${pattern}`));
  numbers.reverse().forEach((n, i) => (h = (h + Math.imul(n, NUMBER_WEIGHTS[i % NUMBER_WEIGHTS.length])) >>> 0));
  return Math.floor((h / 2 ** 32) * options.periodMs);
}
