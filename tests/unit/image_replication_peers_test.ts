/** Where the peers' daemons answer: the pod's IP and its declared `http` port, never this node's own pod. */
import type { V1Pod } from "@kubernetes/client-node";
import { assertEquals } from "../support/assert.ts";
import { peerEndpoints } from "../../controllers/image_replication/peers.ts";

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
