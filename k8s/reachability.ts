/** Whether the API server answers, and why not: what `/readyz` and `/api/v1/status` show. */

/** The last known reachability of the API server. */
export interface Reachability {
  /** Whether the last answer came from a working API server (a status below 500). */
  readonly reachable: boolean;
  /** Why not, in words that name the server. */
  readonly reason: string;
}

/** Follows the client's answers and retries (its `onResponse` and `onRetry` hooks). */
export interface ReachabilityTracker {
  /** The state now. */
  state(): Reachability;
  /** An answer with this HTTP status (0: no answer). */
  onResponse(status: number): void;
  /** A retry, with the cause the client saw (connection refused, timeout...). */
  onRetry(cause: string): void;
}

/** Creates the tracker for the API server at `server`; nothing is known until the first answer. */
export function createReachabilityTracker(server: string): ReachabilityTracker {
  let reachable = false;
  let reason = `no answer from the API server at ${server} yet`;
  return {
    state: () => ({ reachable, reason }),
    onResponse(status) {
      reachable = status > 0 && status < 500;
      if (status >= 500) reason = `the API server at ${server} answers ${status}`;
      if (status === 0) reason = `no answer from the API server at ${server}`;
    },
    onRetry(cause) {
      // The retry knows the cause of a failure that a status cannot tell.
      if (!reachable) reason = `${server}: ${cause}`;
    },
  };
}
