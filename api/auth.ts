/**
 * Authentication of the POST endpoints: a bearer token bound to the audience `polarstack-daemon`, checked with a
 * Kubernetes TokenReview, cached for a minute. A token of the API server's audience is refused, so no caller needs
 * (or can leak) a token that opens the API server.
 */
import { FlagError } from "../core/flag_error.ts";
import type { Clock, Logger } from "../core/types.ts";
import type { KubeClient } from "../k8s/client.ts";

/** A refusal: HTTP status and message. */
export interface Refusal {
  /** 401 (no or bad token), 403 (user not allowed), 503 (cannot check now). */
  readonly status: 401 | 403 | 503;
  /** The reason, for the caller. */
  readonly message: string;
}

/** The audience the POST endpoints' tokens must be bound to (the DaemonSet's projected token). */
export const PEER_AUDIENCE = "polarstack-daemon";

/** What a TokenReview said of a token. */
export interface Review {
  /** Whether the token is valid. */
  readonly authenticated: boolean;
  /** The user name when it is. */
  readonly username: string;
  /** The audiences the API server found the token bound to, among those asked for. */
  readonly audiences: readonly string[];
}

/** Decides, without I/O, whether a reviewed user may call the POST endpoints. */
export function decide(review: Review, allowed: ReadonlySet<string>): Refusal | null {
  if (!review.authenticated) {
    return {
      status: 401,
      message: `Invalid bearer token: the API server did not accept it for the audience "${PEER_AUDIENCE}"`,
    };
  }
  if (!review.audiences.includes(PEER_AUDIENCE)) {
    return { status: 401, message: `Invalid bearer token: it is not bound to the audience "${PEER_AUDIENCE}"` };
  }
  if (!allowed.has(review.username)) {
    return { status: 403, message: `User "${review.username}" may not call this endpoint: see --api-allowed-users` };
  }
  return null;
}

/** The token in an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S{1,4096})\s*$/i.exec(header ?? "");
  return match ? match[1] : null;
}

/** Options of the authorizer. */
export interface AuthorizerOptions {
  /** The cluster that reviews tokens. */
  readonly kube: KubeClient;
  /** The users allowed (`--api-allowed-users`). */
  readonly allowedUsers: readonly string[];
  /** The time, for the cache. */
  readonly clock: Clock;
  /** How long a review is trusted. */
  readonly cacheMs?: number;
}

async function digest(token: string): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Makes the `authorize` function of the API from TokenReviews. */
export function createTokenReviewAuthorizer(
  options: AuthorizerOptions,
): (header: string | undefined) => Promise<Refusal | null> {
  const allowed = new Set(options.allowedUsers.map((u) => u.trim()).filter(Boolean));
  const cacheMs = options.cacheMs ?? 60_000;
  // Keyed by the token's hash, so the cache never holds a token.
  const cache = new Map<string, { review: Review; at: number }>();
  return async (header) => {
    const token = bearerToken(header);
    if (!token) {
      return {
        status: 401,
        message:
          `Missing bearer token: send Authorization: Bearer <a service account token for the audience "${PEER_AUDIENCE}">`,
      };
    }
    const key = await digest(token);
    const now = options.clock.now().getTime();
    const hit = cache.get(key);
    if (hit && now - hit.at < cacheMs) return decide(hit.review, allowed);
    let review: Review;
    try {
      const answer = await options.kube.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenReview",
          spec: { token, audiences: [PEER_AUDIENCE] },
        },
        what: "create TokenReview",
      }) as { status?: { authenticated?: boolean; user?: { username?: string }; audiences?: unknown } };
      const audiences = answer?.status?.audiences;
      review = {
        authenticated: answer?.status?.authenticated === true,
        username: answer?.status?.user?.username ?? "",
        audiences: Array.isArray(audiences) ? audiences.filter((a) => typeof a === "string") : [],
      };
    } catch (error) {
      return { status: 503, message: `Cannot check the bearer token: ${(error as Error).message}` };
    }
    if (cache.size >= 1000) cache.delete(cache.keys().next().value!);
    cache.set(key, { review, at: now });
    return decide(review, allowed);
  };
}

/** The POST endpoints' authorizer for `--api-auth` (empty: tokenreview with a cluster, none in local mode). */
export function chooseAuthorizer(
  mode: "tokenreview" | "none" | "",
  options: Omit<AuthorizerOptions, "kube"> & { readonly kube: KubeClient | null; readonly log: Logger },
): ((header: string | undefined) => Promise<Refusal | null>) | undefined {
  const chosen = mode || (options.kube ? "tokenreview" : "none");
  if (chosen === "none") {
    options.log.warn("The POST endpoints are not authenticated (--api-auth=none)");
    return undefined;
  }
  if (!options.kube) {
    throw new FlagError(
      "Invalid value for --api-auth: tokenreview needs a cluster, and this daemon runs in local mode",
    );
  }
  return createTokenReviewAuthorizer({ ...options, kube: options.kube });
}
