/** Pure decisions about retries: which failures to retry and how long to wait. */

/** Options of the backoff schedule. */
export interface BackoffOptions {
  /** First delay in milliseconds. */
  readonly baseMs?: number;
  /** The longest delay in milliseconds. */
  readonly capMs?: number;
  /** A number in [0, 1) that spreads the delays (full jitter); tests pass a constant. */
  readonly random?: number;
}

/** Delay before retry number `attempt` (0 = first retry): exponential with full jitter, capped. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const base = options.baseMs ?? 200;
  const cap = options.capMs ?? 30_000;
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  const random = options.random ?? Math.random();
  // Half fixed, half random: never zero, never above the cap.
  return Math.min(cap, Math.round(ceiling / 2 + (ceiling / 2) * random));
}

/** Whether an HTTP status (0 = network error or timeout) is worth retrying. */
export function isRetryableStatus(status: number): boolean {
  return status === 0 || status === 429 || status >= 500;
}

/** Milliseconds asked for by a `Retry-After` header (seconds or an HTTP date), or null. */
export function parseRetryAfter(value: string | null | undefined, now: Date): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - now.getTime());
}
