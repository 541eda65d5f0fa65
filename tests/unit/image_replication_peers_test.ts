/** Where the peers' daemons answer: the pod's IP and its declared `http` port, never this node's own pod. */
import type { V1Pod } from "@kubernetes/client-node";
import { assertEquals } from "../support/assert.ts";
import { boundedText, peerEndpoints } from "../../controllers/image_replication/peers.ts";

function pod(
  name: string,
  node: string,
  ip: string,
  extra: { port?: number; phase?: string; deleting?: boolean } = {},
) {
  const ports = extra.port === undefined ? [] : [{ name: "http", containerPort: extra.port, hostPort: extra.port }];
  return {
    metadata: { name, ...(extra.deleting ? { deletionTimestamp: new Date() } : {}) },
    spec: { nodeName: node, containers: [{ name: "d", ports }] },
    status: { podIP: ip, phase: extra.phase ?? "Running" },
  } as V1Pod;
}

Deno.test("peer endpoints: declared http port, else --port; IPv6 bracketed; self, pending, deleting and IP-less pods left out", () => {
  const found = peerEndpoints(
    [
      pod("d-a", "Node-A", "10.0.0.1", { port: 8901 }),
      pod("d-b", "node-b", "fd00::2"),
      pod("d-self", "node-me", "10.0.0.9", { port: 8900 }),
      pod("d-c", "node-c", ""),
      pod("d-d", "node-d", "10.0.0.4", { phase: "Pending" }),
      pod("d-e", "node-e", "10.0.0.5", { deleting: true }),
    ],
    "Node-Me",
    8900,
  );
  assertEquals([...found.values()], [
    { node: "node-a", pod: "d-a", url: "http://10.0.0.1:8901" },
    { node: "node-b", pod: "d-b", url: "http://[fd00::2]:8900" },
  ]);
});

Deno.test("boundedText: a peer's answer is read whole up to the limit; beyond it or past the time, null and cancelled", async () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  const short = new ReadableStream({
    start(c) {
      c.enqueue(bytes('{"data":'));
      c.enqueue(bytes("1}"));
      c.close();
    },
  });
  assertEquals(await boundedText(short, 100, { timeoutMs: 1000 }), '{"data":1}');
  let cancelled = 0;
  const endless = () =>
    new ReadableStream<Uint8Array>({ pull: (c) => c.enqueue(new Uint8Array(1000)), cancel: () => void cancelled++ });
  assertEquals(await boundedText(endless(), 10_000, { timeoutMs: 1000 }), null);
  const silent = new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}), cancel: () => void cancelled++ });
  assertEquals(await boundedText(silent, 10_000, { timeoutMs: 50 }), null);
  assertEquals(cancelled, 2);
});
