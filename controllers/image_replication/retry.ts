/**
 * Pure retry decisions of one version's copy: after a failed attempt, which peer next and when. A peer whose image
 * did not match what it advertised is not asked again; a cut or stalled stream, garbage or a refusal moves on to the
 * next peer at once; once every peer has failed as often, the next round waits a capped, doubling backoff.
 */
import { rankPeers } from "./plan.ts";

/**
 * Every way an attempt fails (the metric's outcomes are these and `success`):
 * - `ImageMismatch`: the loaded image's ID differs from the peer's header or its details; the peer is dropped for
 *   this version.
 * - `StreamCut`: the stream ended before the image was whole (peer killed, connection reset).
 * - `Stalled`: no byte arrived, or the store took none, for the stall timeout.
 * - `Garbage`: the peer sent something the store could not load.
 * - `PeerFailed`: the peer refused (4xx/5xx other than busy) or could not be reached.
 * - `PeerBusy`: the peer was at its export limit (429 or 503 with Retry-After).
 * - `DiskPressure`: the store's file system would be too full; no peer can help, so the copy stops.
 */
export const ATTEMPT_FAILURES = [
  "ImageMismatch",
  "StreamCut",
  "Stalled",
  "Garbage",
  "PeerFailed",
  "PeerBusy",
  "DiskPressure",
] as const;

/** How an attempt failed (see `ATTEMPT_FAILURES`). */
export type AttemptFailure = typeof ATTEMPT_FAILURES[number];

/** One failed attempt. */
export interface FailedAttempt {
  /** The peer asked. */
  readonly peer: string;
  /** How it failed. */
  readonly failure: AttemptFailure;
  /** When it ended (ms since the epoch). */
  readonly at: number;
  /** For `PeerBusy`: the peer's Retry-After in ms. */
  readonly retryAfterMs?: number;
}

/** The retry settings. */
export interface RetryPolicy {
  /** The first backoff between rounds (ms). */
  readonly baseMs: number;
  /** The longest backoff (ms). */
  readonly capMs: number;
  /** Give up after this many attempts in all. */
  readonly maxAttempts: number;
}

/** The default policy: 2 s doubling to 2 min, 8 attempts. */
export const DEFAULT_RETRY: RetryPolicy = { baseMs: 2_000, capMs: 120_000, maxAttempts: 8 };

/** What to do next. */
export type NextAttempt =
  | { readonly action: "try"; readonly peer: string; readonly notBefore: number }
  | { readonly action: "give-up"; readonly reason: string };

/** Options of `nextAttempt`. */
export interface NextAttemptOptions {
  /** This node (the receiver), for the tie-break between equal peers. */
  readonly receiver: string;
  /** Transfers in progress per peer, as last shown by each. */
  readonly load: ReadonlyMap<string, number>;
  /** The retry settings (default `DEFAULT_RETRY`). */
  readonly policy?: RetryPolicy;
}

/** The backoff before round `round` (1 = the first retry round): base doubled each round, capped. */
export function backoffMs(round: number, policy: RetryPolicy): number {
  if (round <= 0) return 0;
  return Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(round - 1, 30));
}

/**
 * Decides the next attempt from the version's sources and the attempts that failed so far (oldest first). The peer
 * asked is the one that failed least often (ties: fewest transfers, then the stable hash); a peer that has failed
 * `n` times waits `backoffMs(n)` after its last failure, a busy one at least its Retry-After.
 */
export function nextAttempt(
  sources: readonly string[],
  attempts: readonly FailedAttempt[],
  options: NextAttemptOptions,
): NextAttempt {
  const policy = options.policy ?? DEFAULT_RETRY;
  const pressure = attempts.find((a) => a.failure === "DiskPressure");
  if (pressure) return { action: "give-up", reason: "DiskPressure: the image store has no room for the copy" };
  if (attempts.length >= policy.maxAttempts) {
    return { action: "give-up", reason: `${attempts.length} attempts failed (last: ${describe(attempts.at(-1)!)})` };
  }
  const mismatched = new Set(attempts.filter((a) => a.failure === "ImageMismatch").map((a) => a.peer));
  const eligible = sources.filter((peer) => !mismatched.has(peer));
  if (eligible.length === 0) {
    const why = sources.length === 0 ? "no peer holds the version" : "every peer's image differed from its details";
    return { action: "give-up", reason: why };
  }
  const failures = new Map<string, FailedAttempt[]>();
  for (const attempt of attempts) failures.set(attempt.peer, [...failures.get(attempt.peer) ?? [], attempt]);
  const ranked = rankPeers(eligible, options.receiver, { load: options.load });
  const order = new Map(ranked.map((peer, i) => [peer, i]));
  const least = [...ranked].sort((a, b) =>
    (failures.get(a)?.length ?? 0) - (failures.get(b)?.length ?? 0) || order.get(a)! - order.get(b)!
  );
  const count = (peer: string) => failures.get(peer)?.length ?? 0;
  const fewest = count(least[0]);
  if (fewest === 0) return { action: "try", peer: least[0], notBefore: 0 };
  // Among the peers that failed least often, the one free soonest (the rank breaks ties).
  let best = { peer: least[0], notBefore: Number.POSITIVE_INFINITY };
  for (const peer of least.filter((p) => count(p) === fewest)) {
    const last = failures.get(peer)!.at(-1)!;
    const notBefore = last.at + Math.max(backoffMs(fewest, policy), last.retryAfterMs ?? 0);
    if (notBefore < best.notBefore) best = { peer, notBefore };
  }
  return { action: "try", ...best };
}

function describe(attempt: FailedAttempt): string {
  return `${attempt.failure} from ${attempt.peer}`;
}
