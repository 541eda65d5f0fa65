/**
 * A client-side token bucket, so one host can never flood the API server. Waiting calls queue in two lanes: a job's
 * call (bound by its run's time limit) gets each new token before a background call, one no decision waits for (a
 * cache's list or watch, which resumes on its own, an Event, a report). At start the caches open about fifteen lists
 * and watches at once; in one lane they held the node-network run's first PATCH past its 2 s limit.
 */

/** Options of the token bucket. */
export interface RateLimiterOptions {
  /** Tokens added per second. */
  readonly qps: number;
  /** The most tokens held at once. */
  readonly burst: number;
  /** Milliseconds since some fixed point; tests pass their own. */
  readonly now?: () => number;
}

/** Options of one wait for a token. */
export interface TakeOptions {
  /** Stops the wait; the waiter leaves the queue and takes no token. */
  readonly signal?: AbortSignal;
  /** A background call: it waits while any job's call waits. */
  readonly background?: boolean;
}

/** A token bucket: `take()` resolves when a request may go, jobs' calls first. */
export class RateLimiter {
  #tokens: number;
  #last: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #qps: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #jobs: Array<() => void> = [];
  readonly #background: Array<() => void> = [];

  /** Starts full. */
  constructor(options: RateLimiterOptions) {
    if (!(options.qps > 0)) throw new Error(`Invalid QPS ${options.qps}: must be above 0`);
    if (!(options.burst >= 1)) throw new Error(`Invalid burst ${options.burst}: must be at least 1`);
    this.#qps = options.qps;
    this.#burst = options.burst;
    this.#now = options.now ?? (() => performance.now());
    this.#tokens = options.burst;
    this.#last = this.#now();
  }

  /** How many calls wait for a token, by lane. */
  get waiting(): { readonly jobs: number; readonly background: number } {
    return { jobs: this.#jobs.length, background: this.#background.length };
  }

  /** Waits for a token: a job's call before any background call, each lane first come first served. */
  take(options: TakeOptions = {}): Promise<void> {
    const background = options.background ?? false;
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const ahead = this.#jobs.length + (background ? this.#background.length : 0);
    this.#refill();
    if (ahead === 0 && this.#tokens >= 1) {
      this.#tokens -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const lane = background ? this.#background : this.#jobs;
      const onAbort = () => {
        const at = lane.indexOf(waiter);
        if (at >= 0) lane.splice(at, 1);
        if (this.#jobs.length + this.#background.length === 0) this.#stopTimer();
        reject(signal?.reason);
      };
      const waiter = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      lane.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#schedule();
    });
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#qps);
    this.#last = now;
  }

  /** Hands out the tokens there are, then waits for the next one while anyone waits. */
  #grant(): void {
    this.#timer = undefined;
    this.#refill();
    while (this.#tokens >= 1) {
      const waiter = this.#jobs.shift() ?? this.#background.shift();
      if (!waiter) return;
      this.#tokens -= 1;
      waiter();
    }
    this.#schedule();
  }

  #stopTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#jobs.length + this.#background.length === 0) return;
    const waitMs = Math.max(0, Math.ceil(((1 - this.#tokens) / this.#qps) * 1000));
    this.#timer = setTimeout(() => this.#grant(), waitMs);
  }
}
