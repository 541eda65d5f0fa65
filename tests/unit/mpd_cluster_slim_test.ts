/** What the MPDCluster watch cache keeps: every decision of the floating-IP job is the same as on the whole object. */
import { assert, assertEquals } from "../support/assert.ts";
import { desiredFloatingIp } from "../../controllers/floating_ip/desired.ts";
import { LEADER_IP_READY, slimMpdCluster } from "../../k8s/mpd_clusters.ts";
import { fieldMpdCluster, manualFip } from "../support/fip_cluster.ts";

const NIC = { clientNic: "bond1" };

// deno-lint-ignore no-explicit-any
type Editable = Record<string, any>;

function edit(object: Record<string, unknown>, change: (o: Editable) => void): Record<string, unknown> {
  const copy = structuredClone(object);
  change(copy);
  return copy;
}

const field = fieldMpdCluster("pg1", manualFip("192.0.2.50", "VirtualIF"), "h1");
const objects: Array<[string, unknown]> = [
  ["a running cluster", field],
  ["MultiIP on a named NIC", fieldMpdCluster("pg2", manualFip("192.0.2.51", "MultiIP", { basedNetIf: "eth1" }), "h2")],
  [
    "auto, assigned in status",
    edit(field, (o) => {
      o.spec.netCfg.leaderFloatingIP = { ipAddressCfgType: "auto" };
      o.status.floatingIP = { ipAddress: "192.0.2.60", mask: 25, ipMode: "MultiIP" };
    }),
  ],
  ["auto, not assigned yet", edit(field, (o) => o.spec.netCfg.leaderFloatingIP = { ipAddressCfgType: "auto" })],
  ["no floating IP", edit(field, (o) => delete o.spec.netCfg.leaderFloatingIP)],
  ["the leader moved, the rw entry not yet", edit(field, (o) => o.status.leaderInstanceHost = "h1-b")],
  ["two rw instances", edit(field, (o) => o.status.dbInstanceStatus[`pi-pg1-1`].insType = "rw")],
  ["instances as a list", edit(field, (o) => o.status.dbInstanceStatus = Object.values(o.status.dbInstanceStatus))],
  ["a nodeName that is no string", edit(field, (o) => o.status.dbInstanceStatus[`pi-pg1-0`].nodeName = 7)],
  ["instances that are no objects", edit(field, (o) => o.status.dbInstanceStatus = { a: null, b: "rw", c: [1] })],
  ["a mask that is a string", edit(field, (o) => o.spec.netCfg.leaderFloatingIP.mask = "24")],
  ["netCfg a list", edit(field, (o) => o.spec.netCfg = [])],
  ["spec and status null", edit(field, (o) => Object.assign(o, { spec: null, status: null }))],
  ["conditions no list", edit(field, (o) => o.status.conditions = "LeaderIPReady")],
  ["no name", edit(field, (o) => delete o.metadata.name)],
  ["null", null],
  ["a number", 42],
  ["a list", [field]],
  ["no prototype", Object.create(null)],
];

Deno.test("slimMpdCluster: the floating-IP job decides the same on what the cache keeps, for any object", () => {
  for (const [what, object] of objects) {
    const slim = slimMpdCluster(object);
    assertEquals(desiredFloatingIp(slim, NIC), desiredFloatingIp(object, NIC), what);
    assertEquals(JSON.parse(JSON.stringify(slim)).metadata?.name, (object as Editable | null)?.metadata?.name, what);
  }
});

Deno.test("slimMpdCluster: name, namespace and resourceVersion stay, the conditions stay, the rest goes", () => {
  const written = edit(field, (o) => {
    o.metadata.resourceVersion = "12345";
    o.metadata.uid = "u-1";
    o.status.conditions.push({ type: LEADER_IP_READY, status: "True", reason: "AddressHeld", message: "held" });
  });
  const slim = slimMpdCluster(written);
  assertEquals(slim.metadata, { name: "pg1", namespace: "db", resourceVersion: "12345", uid: "u-1" });
  // A LeaderIPReady patch replaces the whole list, so the operator's conditions must be there.
  assertEquals<unknown>(slim.status?.conditions, (written.status as { conditions: unknown[] }).conditions);
  assertEquals(slim.status?.conditions?.map((c) => c.type), ["FollowerReady", "ProxyReady", LEADER_IP_READY]);
  assertEquals(Object.values(slim.status?.dbInstanceStatus ?? {}).map((i) => [i.nodeName, i.insType]), [
    ["h1", "rw"],
    ["h1-b", "ro"],
    ["h1-c", "ro"],
  ]);
  const [whole, kept] = [written, slim].map((o) => JSON.stringify(o).length);
  assert(kept * 5 < whole, `the cache keeps ${kept} of ${whole} characters`);
});
