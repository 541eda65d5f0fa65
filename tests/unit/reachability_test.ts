/** The API server's reachability as /readyz reports it, from the client's answers and retries. */
import { createReachabilityTracker } from "../../k8s/reachability.ts";
import { assertEquals } from "../support/assert.ts";

const SERVER = "https://10.0.0.1:6443";

Deno.test("nothing is known before the first answer; an answer below 500 is reachable", () => {
  const tracker = createReachabilityTracker(SERVER);
  assertEquals(tracker.state(), { reachable: false, reason: `no answer from the API server at ${SERVER} yet` });
  tracker.onResponse(200);
  assertEquals(tracker.state().reachable, true);
  tracker.onResponse(404);
  assertEquals(tracker.state().reachable, true, "a 404 is the server answering");
});

Deno.test("5xx and no answer are unreachable, each with its reason; a retry's cause replaces it while down", () => {
  const tracker = createReachabilityTracker(SERVER);
  tracker.onResponse(503);
  assertEquals(tracker.state(), { reachable: false, reason: `the API server at ${SERVER} answers 503` });
  tracker.onResponse(0);
  assertEquals(tracker.state(), { reachable: false, reason: `no answer from the API server at ${SERVER}` });
  tracker.onRetry("Connection refused (os error 111)");
  assertEquals(tracker.state(), { reachable: false, reason: `${SERVER}: Connection refused (os error 111)` });
});

Deno.test("a retry while reachable leaves the state alone; the next good answer makes it reachable again", () => {
  const tracker = createReachabilityTracker(SERVER);
  tracker.onResponse(200);
  tracker.onRetry("429 Too Many Requests");
  assertEquals(tracker.state().reachable, true);
  tracker.onResponse(500);
  tracker.onResponse(201);
  assertEquals(tracker.state().reachable, true);
});
