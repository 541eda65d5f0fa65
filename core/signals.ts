/**
 * An abort signal that follows several others, kept alive by them. Deno 2.9's `AbortSignal.any` holds the signal it
 * returns only weakly: once garbage-collected, an abort of a source no longer reaches it, so a stopped watch or a
 * timed-out command went on (measured with a forced GC). Here each source holds a listener, which holds the result.
 */

/** A signal that aborts when any source does (or after `timeoutMs`), and `dispose()` to let the sources go. */
export interface LinkedSignal {
  /** Aborts with the first source's reason, or a TimeoutError after `timeoutMs`. */
  readonly signal: AbortSignal;
  /** Whether the abort came from the timeout. */
  readonly timedOut: boolean;
  /** Removes the listeners from the sources and clears the timer; the signal stays as it is. */
  dispose(): void;
}

/** Links `sources` (undefined ones are skipped) and an optional timeout into one signal. */
export function linkSignals(
  sources: readonly (AbortSignal | undefined)[],
  options: { timeoutMs?: number } = {},
): LinkedSignal {
  const controller = new AbortController();
  const live = sources.filter((s): s is AbortSignal => s !== undefined);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const onAbort = (event: Event) => {
    const reason = (event.target as AbortSignal).reason;
    dispose();
    controller.abort(reason);
  };
  function dispose() {
    for (const source of live) source.removeEventListener("abort", onAbort);
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  }
  const aborted = live.find((s) => s.aborted);
  if (aborted) {
    controller.abort(aborted.reason);
  } else {
    for (const source of live) source.addEventListener("abort", onAbort, { once: true });
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        dispose();
        controller.abort(new DOMException("The operation timed out", "TimeoutError"));
      }, options.timeoutMs);
    }
  }
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    dispose,
  };
}

/**
 * `promise`, or a rejection with the signal's reason as soon as it aborts. Deno's fetch follows its signal through a
 * signal of its own that a garbage collection can take, after which an abort no longer ends the call: racing the
 * call against our signal ends the wait either way.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  const { promise: aborted, reject } = Promise.withResolvers<never>();
  const onAbort = () => reject(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  promise.catch(() => {});
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener("abort", onAbort));
}
