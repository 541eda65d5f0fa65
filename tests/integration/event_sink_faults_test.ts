/** The event sink against a fake API server that answers late: a create that timed out but landed is not repeated. */
import { getLogger } from "@logtape/logtape";
import { assertEquals } from "../support/assert.ts";
import { duplicateEvents } from "../support/faults_cluster.ts";
import { createEventSink } from "../../k8s/events.ts";
import { systemClock } from "../../core/types.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";

Deno.test("an Event whose create timed out but landed is counted, not created again", async () => {
  const { server, kube, close } = await startFakeCluster({ client: { userAgent: "t", timeoutMs: 300 } });
  try {
    const sink = createEventSink({ kube, node: "node-e", log: getLogger(["test"]), clock: systemClock });
    const events = "/api/v1/namespaces/default/events";
    // The first POST lands after the client gave up; the retry meets a 500, the next one AlreadyExists.
    server.injectFault({ method: "POST", pathPrefix: events, count: 1, delayMs: 330 });
    server.injectFault({ method: "POST", pathPrefix: events, count: 1, status: 500 });
    const event = { job: "t", type: "Warning" as const, reason: "Flaky", message: "Something failed" };
    sink.record(event);
    await sink.flush();
    sink.record(event);
    await sink.flush();
    const stored = server.list("events", "default");
    assertEquals(duplicateEvents(stored), []);
    assertEquals(stored.length, 1);
    assertEquals(stored[0].count, 2);
  } finally {
    await close();
  }
});
