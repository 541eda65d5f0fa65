/** A job's runs, one after another: a run that outlived its time limit finishes before the next one reads the state. */
import type { RunContext } from "../core/types.ts";

/** Wraps `run` so that each call starts only when the previous one has ended (whether it worked or not). */
export function oneAtATime<T>(run: (ctx: RunContext) => Promise<T>): (ctx: RunContext) => Promise<T> {
  let busy: Promise<unknown> = Promise.resolve();
  return (ctx) => {
    const next = busy.then(() => run(ctx));
    busy = next.catch(() => {});
    return next;
  };
}
