/** The original's event upload against a real HTTP endpoint that stops and starts answering: one warning per change. */
import { assertEquals } from "../support/assert.ts";
import { createEventSink } from "../../k8s/events.ts";
import { setUpLogging, taskLogger } from "../../logging.ts";
import { systemClock } from "../../core/types.ts";
import { freePort } from "../support/daemon_process.ts";

Deno.test("an upload URL that does not answer is warned about once per change of state, not once per event", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-upload-" });
  const file = `${dir}/daemon.log`;
  setUpLogging({ v: 0, toStderr: false, stderrThreshold: 3, file });
  const port = freePort();
  const sink = createEventSink({
    kube: null,
    node: "node-a",
    log: taskLogger("daemon"),
    clock: systemClock,
    upload: { url: `http://127.0.0.1:${port}/`, timeoutMs: 2000, ip: "10.0.0.9" },
  });
  const send = async (n: number) => {
    for (let i = 0; i < n; i++) {
      sink.record({ job: "port-usage", type: "Warning", reason: "JobFailed", message: `failure ${i}` });
    }
    await sink.flush();
  };
  const lines = async () =>
    (await Deno.readTextFile(file)).trim().split("\n").map((l) => JSON.parse(l) as { level: string; message: string })
      .filter((l) => l.message.includes("upload"));

  await send(10); // nothing listens on the port: refused
  let received = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (request) => {
    await request.body?.cancel();
    received++;
    return new Response("{}");
  });
  await send(3);
  await server.shutdown();
  await send(10);

  assertEquals(received, 3);
  const seen = (await lines()).map((l) => `${l.level}: ${l.message.replace(/ to .*/, "")}`);
  assertEquals(seen, [
    "warning: Cannot upload event JobFailed",
    "info: Event upload",
    "warning: Cannot upload event JobFailed",
  ]);
  await Deno.remove(dir, { recursive: true });
});
