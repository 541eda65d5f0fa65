/** One run of a job within its time limit, and what the API and metrics keep of it. */
import type { Clock, Controller, RunOutcome } from "../core/types.ts";

/** The last run of a job, as the API and metrics show it. */
export interface LastRun {
  /** When it started (ISO 8601). */
  readonly startedAt: string;
  /** How long it took. */
  readonly durationMs: number;
  /** `success` or `failure`. */
  readonly outcome: "success" | "failure";
  /** The readable summary (success) or the error message (failure). */
  readonly summary: string;
  /** The error message when it failed. */
  readonly error?: string;
  /** Whether it was a dry run. */
  readonly dryRun: boolean;
}

/** How long a run whose time limit passed may take to stop by itself before it is abandoned. */
const ABANDON_AFTER_MS = 250;

/** Runs one controller once with its time limit; never throws. */
export async function runWithLimit<T>(
  controller: Controller<T>,
  options: { signal?: AbortSignal; dryRun?: boolean; clock: Clock },
): Promise<{ run: LastRun; outcome?: RunOutcome<T> }> {
  const started = options.clock.now();
  const t0 = performance.now();
  const limit = AbortSignal.timeout(controller.timeoutMs);
  const signal = options.signal ? AbortSignal.any([limit, options.signal]) : limit;
  const dryRun = options.dryRun ?? false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = `Job "${controller.name}" took longer than ${controller.timeoutMs} ms`;
  try {
    const outcome = await Promise.race([
      controller.run({ signal, dryRun }),
      // The limit aborts the run's signal; a run that heeds it fails at once with its own cause (named below).
      // One that does not is abandoned a moment later.
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${late} and was abandoned`)),
          controller.timeoutMs + ABANDON_AFTER_MS,
        );
      }),
    ]);
    // Done, but after the limit: the run's work may be stale, and the limit is what operators rely on.
    if (limit.aborted) throw new Error(`${late} (it finished ${Math.round(performance.now() - t0)} ms after start)`);
    return {
      outcome,
      run: {
        startedAt: started.toISOString(),
        durationMs: Math.round(performance.now() - t0),
        outcome: "success",
        summary: outcome.summary,
        dryRun,
      },
    };
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    const message = limit.aborted && !text.startsWith(late) ? `${late}: ${text}` : text;
    return {
      run: {
        startedAt: started.toISOString(),
        durationMs: Math.round(performance.now() - t0),
        outcome: "failure",
        summary: message,
        error: message,
        dryRun,
      },
    };
  } finally {
    clearTimeout(timer);
  }
}
