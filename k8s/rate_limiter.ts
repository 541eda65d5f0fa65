/** A client-side token bucket, so one host can never flood the API server. */

/** Options of the token bucket. */
export interface RateLimiterOptions {
  /** Tokens added per second. */
  readonly qps: number;
  /** The most tokens held at once. */
  readonly burst: number;
  /** Milliseconds since some fixed point; tests pass their own. */
  readonly now?: () => number;
}

/** A token bucket: `take()` resolves when a request may go. */
export class RateLimiter {
  #tokens: number;
  #last: number;
  readonly #qps: number;
  readonly #burst: number;
  readonly #now: () => number;

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

  /** Milliseconds to wait before one token is available, taking it (pure bookkeeping). */
  reserve(): number {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#qps);
    this.#last = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#qps) * 1000);
  }

  /** Waits for a token, first come first served. */
  take(signal?: AbortSignal): Promise<void> {
    const wait = this.reserve();
    if (wait === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, wait);
      signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(signal.reason);
      }, { once: true });
    });
  }
}
