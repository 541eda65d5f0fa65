/** The floating-IP job's pure parts: the observation, the Lease written, the result and the conditions after applying. */
import { assertEquals } from "../support/assert.ts";
import { clusterObservations, hostTagged, leaseObserved, planTagged } from "../../controllers/floating_ip/observe.ts";
import { leaseForWrite } from "../../controllers/floating_ip/lease_write.ts";
import { conditionsAfter, floatingIpResult, floatingIpSummary } from "../../controllers/floating_ip/result.ts";
import type { ActionApplied } from "../../controllers/floating_ip/apply.ts";
import type { FloatingIpAction, FloatingIpPlan, LeaseObserved } from "../../controllers/floating_ip/types.ts";
import {
  FLOATING_IP_CLUSTER_ANNOTATION,
  FLOATING_IP_LEASE_LABEL,
  floatingIpLeaseName,
  type Lease,
} from "../../k8s/leases.ts";

const NOW = new Date("2026-12-01T10:00:00Z");

function cluster(namespace: string, name: string, ip = "10.0.0.10") {
  return {
    metadata: { namespace, name },
    spec: { netCfg: { leaderFloatingIP: { ipAddress: ip, mask: 24 } } },
    status: { leaderInstanceHost: "h1", dbInstanceStatus: { a: { insType: "rw", nodeName: "h1" } } },
  };
}

function lease(name: string, fields: { holder?: string; rv?: string; owner?: string } = {}): Lease {
  return {
    metadata: {
      name,
      resourceVersion: fields.rv ?? "1",
      annotations: fields.owner ? { [FLOATING_IP_CLUSTER_ANNOTATION]: fields.owner } : undefined,
    },
    spec: { holderIdentity: fields.holder, leaseDurationSeconds: 15, renewTime: "2026-12-01T09:59:58.000000Z" },
  };
}

Deno.test("leaseObserved: reads the spec, and keeps the first time it saw a resourceVersion", () => {
  const sightings = new Map();
  const first = leaseObserved(lease("l", { holder: "h2", rv: "5" }), { sightings, now: NOW });
  assertEquals(first, {
    holderIdentity: "h2",
    renewTime: new Date("2026-12-01T09:59:58Z"),
    leaseDurationSeconds: 15,
    resourceVersion: "5",
    observedAt: NOW,
  });
  const later = new Date(NOW.getTime() + 4000);
  assertEquals(leaseObserved(lease("l", { holder: "h2", rv: "5" }), { sightings, now: later }).observedAt, NOW);
  assertEquals(leaseObserved(lease("l", { holder: "h2", rv: "6" }), { sightings, now: later }).observedAt, later);
  const broken = leaseObserved({ metadata: { name: "b" }, spec: { renewTime: "yesterday" } }, { sightings, now: NOW });
  assertEquals([broken.holderIdentity, broken.renewTime, broken.leaseDurationSeconds], [null, null, null]);
});

Deno.test("clusterObservations: plain Lease names, hashed when two clusters meet or a Lease fences another cluster", () => {
  const observed = (l: Lease) => ({ lease: l, observed: leaseObserved(l, { sightings: new Map(), now: NOW }) });
  const meet = clusterObservations(
    [cluster("a-b", "c"), cluster("a", "b-c", "10.0.0.11"), cluster("db", "pg")],
    new Map(),
    {
      clientNic: "bond1",
    },
  );
  assertEquals(meet.map((c) => c.leaseName), [
    floatingIpLeaseName("a-b", "c", { hashed: true }),
    floatingIpLeaseName("a", "b-c", { hashed: true }),
    "polarstack-fip-db-pg",
  ]);
  assertEquals(meet[0].leaseName === meet[1].leaseName, false);
  const taken = new Map([["polarstack-fip-db-pg", observed(lease("polarstack-fip-db-pg", { owner: "db-pg/x" }))]]);
  const [fenced] = clusterObservations([cluster("db", "pg")], taken, { clientNic: "bond1" });
  assertEquals([fenced.leaseName, fenced.lease], [floatingIpLeaseName("db", "pg", { hashed: true }), null]);
  const ours = new Map([[
    "polarstack-fip-db-pg",
    observed(lease("polarstack-fip-db-pg", { owner: "db/pg", holder: "h1" })),
  ]]);
  const [held] = clusterObservations([cluster("db", "pg")], ours, { clientNic: "bond1" });
  assertEquals([held.leaseName, held.lease?.holderIdentity], ["polarstack-fip-db-pg", "h1"]);
  const [hostile] = clusterObservations([{ metadata: 7 }], new Map(), { clientNic: "bond1" });
  assertEquals([hostile.desired.kind, hostile.leaseName, hostile.lease], ["refuse", "", null]);
});

Deno.test("planTagged: a macvlan that lost its address is the address its name spells, with no prefix; and back", () => {
  const tagged = planTagged([
    { mode: "MultiIP", nic: "bond1", device: "bond1", ip: "10.0.0.10", prefix: 24 },
    { mode: "VirtualIF", nic: "bond1", device: "fip0a00000b", ip: null, prefix: null },
    { mode: "VirtualIF", nic: "bond1", device: "fipzz", ip: null, prefix: null },
  ]);
  assertEquals(tagged, [
    { address: "10.0.0.10", prefix: 24, mode: "MultiIP", nic: "bond1", device: "bond1" },
    { address: "10.0.0.11", prefix: -1, mode: "VirtualIF", nic: "bond1", device: "fip0a00000b" },
  ]);
  assertEquals(hostTagged(tagged[1]), {
    mode: "VirtualIF",
    nic: "bond1",
    device: "fip0a00000b",
    ip: null,
    prefix: null,
  });
  assertEquals(hostTagged(tagged[0]).ip, "10.0.0.10");
});

Deno.test("leaseForWrite: create labelled and annotated; take counts a transition; renew keeps it; clear empties the holder", () => {
  const at = new Date("2026-12-01T10:00:01.5Z");
  const base = { leaseDurationSeconds: 15, at };
  const created = leaseForWrite({ ...base, name: "l", op: "take", resourceVersion: null, holderIdentity: "h1" }, {
    current: null,
    cluster: { namespace: "db", name: "pg" },
  });
  assertEquals(created.metadata?.labels, { [FLOATING_IP_LEASE_LABEL]: "true" });
  assertEquals(created.metadata?.annotations, { [FLOATING_IP_CLUSTER_ANNOTATION]: "db/pg" });
  assertEquals(created.metadata?.resourceVersion, undefined);
  assertEquals(created.spec, {
    holderIdentity: "h1",
    leaseDurationSeconds: 15,
    acquireTime: "2026-12-01T10:00:01.500000Z",
    renewTime: "2026-12-01T10:00:01.500000Z",
    leaseTransitions: 0,
  });
  const current = { ...created, metadata: { ...created.metadata, resourceVersion: "7" } };
  const later = new Date("2026-12-01T10:00:06Z");
  const renewed = leaseForWrite(
    { leaseDurationSeconds: 15, at: later, name: "l", op: "renew", resourceVersion: "7", holderIdentity: "h1" },
    { current, cluster: { namespace: "db", name: "pg" } },
  );
  assertEquals(renewed.metadata?.resourceVersion, "7");
  assertEquals([renewed.spec?.acquireTime, renewed.spec?.leaseTransitions], [created.spec?.acquireTime, 0]);
  assertEquals(renewed.spec?.renewTime, "2026-12-01T10:00:06.000000Z");
  const taken = leaseForWrite(
    { leaseDurationSeconds: 15, at: later, name: "l", op: "take", resourceVersion: "7", holderIdentity: "h2" },
    { current, cluster: null },
  );
  assertEquals([taken.spec?.holderIdentity, taken.spec?.leaseTransitions], ["h2", 1]);
  assertEquals(taken.metadata?.annotations, { [FLOATING_IP_CLUSTER_ANNOTATION]: "db/pg" });
  const cleared = leaseForWrite(
    { leaseDurationSeconds: 15, at: later, name: "l", op: "clear", resourceVersion: "7", holderIdentity: null },
    { current, cluster: null },
  );
  assertEquals("holderIdentity" in (cleared.spec ?? {}), false);
});

function action(kind: FloatingIpAction["kind"], fields: Partial<FloatingIpAction> = {}): FloatingIpAction {
  return {
    kind,
    address: "10.0.0.10",
    cluster: { namespace: "db", name: "pg" },
    ip: {
      address: "10.0.0.10",
      mask: 24,
      nic: "bond1",
      mode: "VirtualIF",
      cfgType: "manual",
      gateway: null,
      source: "spec",
    },
    remove: [],
    leases: [],
    reason: "Probing",
    message: "Probing 10.0.0.10",
    ...fields,
  };
}

function applied(fields: Partial<ActionApplied>): ActionApplied {
  return { removed: [], leasesWritten: 1, added: false, conflict: false, error: null, apiFailed: false, ...fields };
}

Deno.test("conditionsAfter: an answered probe says IPConflict and an add says AddressHeld at once; others stay", () => {
  const probing = {
    cluster: { namespace: "db", name: "pg" },
    status: "False" as const,
    reason: "Probing" as const,
    message: "10.0.0.10: probing before adding",
  };
  const other = { ...probing, cluster: { namespace: "db", name: "other" } };
  const plan: FloatingIpPlan = { actions: [action("probe-then-add")], conditions: [probing, other] };
  const conflict = conditionsAfter(plan, new Map([["10.0.0.10", applied({ conflict: true })]]));
  assertEquals(conflict.map((c) => [c.status, c.reason]), [["False", "IPConflict"], ["False", "Probing"]]);
  const added = conditionsAfter(plan, new Map([["10.0.0.10", applied({ added: true })]]));
  assertEquals(added[0], {
    ...probing,
    status: "True",
    reason: "AddressHeld",
    message: "10.0.0.10 is on bond1 (VirtualIF)",
  });
  assertEquals(conditionsAfter(plan, new Map()), plan.conditions);
});

Deno.test("floatingIpResult: held after the run, the device, the lease and the failure; the summary says so", () => {
  const tagged = { address: "10.0.0.10", prefix: 24, mode: "VirtualIF" as const, nic: "bond1", device: "fip0a00000a" };
  const plan: FloatingIpPlan = {
    actions: [
      action("release", { remove: [tagged], reason: "NotLeader", message: "Removing 10.0.0.10: the leader is on h2" }),
      action("probe-then-add", { address: "10.0.0.20", ip: { ...action("none").ip!, address: "10.0.0.20" } }),
      action("hold", { address: "10.0.0.30", reason: "Held", message: "Holding 10.0.0.30" }),
    ],
    conditions: [],
  };
  const result = floatingIpResult({
    node: "h1",
    plan,
    applied: new Map([
      ["10.0.0.10", applied({ removed: ["fip0a00000a"] })],
      ["10.0.0.20", applied({ error: 'Cannot probe 10.0.0.20 on "bond1": arping gave no answer within 3000 ms' })],
    ]),
    tagged: new Map([["10.0.0.10", [tagged]], ["10.0.0.30", [{
      ...tagged,
      address: "10.0.0.30",
      device: "fip0a00001e",
    }]]]),
    leases: new Map([["10.0.0.30", { holder: "h1", expiresAt: new Date("2026-12-01T10:00:15Z") }]]),
    lastChange: new Map([["10.0.0.10", NOW]]),
    announcedAt: new Map(),
    apiReachable: true,
    enableVip: true,
    clusters: 3,
    dryRun: false,
  });
  assertEquals(result.addresses.map((a) => [a.address, a.held, a.device, a.error !== null]), [
    ["10.0.0.10", false, null, false],
    ["10.0.0.20", false, null, true],
    ["10.0.0.30", true, "fip0a00001e", false],
  ]);
  assertEquals(result.addresses[0].lastChange, NOW.toISOString());
  assertEquals(result.addresses[2].lease, { holder: "h1", expiresAt: "2026-12-01T10:00:15.000Z" });
  assertEquals(result.addresses[1].message, result.addresses[1].error);
  assertEquals(floatingIpSummary(result), "1 floating IP(s) held (10.0.0.30); 3 MPDCluster(s) watched; 1 failed");
  const partitioned = floatingIpSummary({ ...result, apiReachable: false, addresses: [] });
  assertEquals(
    partitioned,
    "0 floating IP(s) held; 3 MPDCluster(s) watched; the API server cannot be relied on: everything kept as it is",
  );
});

Deno.test("leaseObserved of a real-shaped Lease without spec: nothing held", () => {
  const observed: LeaseObserved = leaseObserved({ metadata: { name: "x", resourceVersion: "3" } }, {
    sightings: new Map(),
    now: NOW,
  });
  assertEquals([observed.holderIdentity, observed.resourceVersion], [null, "3"]);
});
