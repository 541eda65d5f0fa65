/** Authentication of the fake Kubernetes API server: bearer tokens bound to audiences, and TokenReview. */
import { failure, isObject, json, parseBody } from "./responses.ts";

/** Who a bearer token authenticates as. */
export interface FakeUser {
  /** e.g. `system:serviceaccount:kube-system:polarstack-daemon`. */
  readonly username: string;
  /** e.g. `system:authenticated`. */
  readonly groups: readonly string[];
  /** The user's uid (TokenReview reports it). */
  readonly uid?: string;
  /** The audiences the token is bound to; `[API_AUDIENCE]` when absent. */
  readonly audiences?: readonly string[];
}

/** The audience of the API server's own tokens: the real server's default, its service account issuer. */
export const API_AUDIENCE = "https://kubernetes.default.svc.cluster.local";

/** The user of the default token: the service account the daemon runs as. */
export const DEFAULT_USER: FakeUser = {
  username: "system:serviceaccount:kube-system:polarstack-daemon",
  groups: ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
  uid: "6a3c2d0e-0000-4000-8000-00000000cc11",
};

/** The user of the admin token: in the real server's superuser group `system:masters`. */
export const ADMIN_USER: FakeUser = {
  username: "system:admin",
  groups: ["system:masters", "system:authenticated"],
  uid: "6a3c2d0e-0000-4000-8000-0000000ad111",
};

/** The known tokens and what they authenticate as. */
export class FakeTokens {
  #tokens = new Map<string, FakeUser>();

  /** Makes `token` authenticate as `user`. */
  add(token: string, user: FakeUser): void {
    this.#tokens.set(token, user);
  }

  /** The user of the request's bearer token, whatever its audiences (the `/_fake/` requests). */
  holderOf(request: Request): FakeUser | undefined {
    const header = request.headers.get("authorization") ?? "";
    const match = header.match(/^Bearer\s+(.+)$/i);
    return match ? this.#tokens.get(match[1].trim()) : undefined;
  }

  /** The user of the request's token when it is bound to the API server, as the real authenticator decides. */
  userOf(request: Request): FakeUser | undefined {
    const user = this.holderOf(request);
    return user && (user.audiences ?? [API_AUDIENCE]).includes(API_AUDIENCE) ? user : undefined;
  }

  /** The answer to a TokenReview: the token's user for the intersection of the asked and the bound audiences. */
  review(text: string): Response {
    const parsed = parseBody(text);
    if ("error" in parsed) return parsed.error;
    const review = parsed.value;
    if (!isObject(review) || !isObject(review.spec) || typeof review.spec.token !== "string") {
      return failure(400, "a TokenReview needs spec.token");
    }
    const asked = review.spec.audiences;
    if (asked !== undefined && (!Array.isArray(asked) || asked.some((a) => typeof a !== "string"))) {
      return failure(400, "spec.audiences must be a list of strings");
    }
    const wanted: string[] = Array.isArray(asked) && asked.length > 0 ? asked : [API_AUDIENCE];
    const user = this.#tokens.get(review.spec.token);
    const bound = user?.audiences ?? [API_AUDIENCE];
    const common = wanted.filter((a) => bound.includes(a));
    let status;
    if (!user) {
      status = { authenticated: false, user: {}, error: "invalid bearer token" };
    } else if (common.length === 0) {
      status = {
        authenticated: false,
        user: {},
        error: `[invalid bearer token, token audiences ${JSON.stringify(bound)} is invalid for the target audiences ${
          JSON.stringify(wanted)
        }]`,
      };
    } else {
      status = {
        authenticated: true,
        user: { username: user.username, uid: user.uid ?? "", groups: [...user.groups] },
        audiences: common,
      };
    }
    return json({
      kind: "TokenReview",
      apiVersion: "authentication.k8s.io/v1",
      metadata: { creationTimestamp: null },
      spec: review.spec,
      status,
    }, 201);
  }
}
