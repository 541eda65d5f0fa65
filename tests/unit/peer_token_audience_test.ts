/** The receiving daemon takes only tokens bound to the audience `polarstack-daemon`. */
import { assertEquals } from "../support/assert.ts";
import { decide } from "../../api/auth.ts";
import { DEFAULT_USER } from "../fake_kube/server.ts";

Deno.test("a review that does not bind the token to polarstack-daemon is refused, whoever the user", () => {
  const allowed = new Set([DEFAULT_USER.username]);
  const review = { authenticated: true, username: DEFAULT_USER.username };
  assertEquals(decide({ ...review, audiences: ["polarstack-daemon"] }, allowed), null);
  // An authenticator that ignores spec.audiences answers with the API server's audience: not ours.
  assertEquals(
    decide({ ...review, audiences: ["https://kubernetes.default.svc.cluster.local"] }, allowed)?.status,
    401,
  );
  assertEquals(decide({ ...review, audiences: [] }, allowed)?.status, 401);
});
