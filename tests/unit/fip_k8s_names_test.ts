import { assert, assertEquals, assertNotEquals } from "../support/assert.ts";
import { floatingIpLeaseName, isDnsSubdomain } from "../../k8s/leases.ts";
import { type ClusterCondition, LEADER_IP_READY, withCondition } from "../../k8s/mpd_clusters.ts";
import { microTime } from "../../k8s/values.ts";

Deno.test("floatingIpLeaseName: polarstack-fip-<ns>-<name> up to 63 characters", () => {
  assertEquals(floatingIpLeaseName("db", "pg"), "polarstack-fip-db-pg");
  assertEquals(floatingIpLeaseName("kube-system", "my.cluster-1"), "polarstack-fip-kube-system-my.cluster-1");
  const exactly = "x".repeat(63 - "polarstack-fip-db-".length);
  assertEquals(floatingIpLeaseName("db", exactly), `polarstack-fip-db-${exactly}`);
});

Deno.test("floatingIpLeaseName: longer names keep a readable prefix and a hash, stay distinct and valid", () => {
  const namespace = "n".repeat(63);
  const long = floatingIpLeaseName(namespace, "cluster-a");
  assertEquals(long.length, 63);
  assert(long.startsWith(`polarstack-fip-${"n".repeat(20)}`), long);
  assert(/-[0-9a-f]{10}$/.test(long), long);
  assertEquals(floatingIpLeaseName(namespace, "cluster-a"), long);
  assertNotEquals(floatingIpLeaseName(namespace, "cluster-b"), long);
  // One more character than fits is hashed; the prefix never ends in "-" before the hash.
  const over = floatingIpLeaseName("db", "x".repeat(64 - "polarstack-fip-db-".length));
  assert(over.length <= 63 && !over.includes("--"), over);
  const dotted = floatingIpLeaseName("db", `${"a".repeat(30)}.${"b".repeat(30)}.c`);
  assert(dotted.length <= 63 && isDnsSubdomain(dotted) && !dotted.includes("."), dotted);
});

Deno.test("floatingIpLeaseName: every namespace and name length gives a valid name of at most 63 characters", () => {
  const names = new Set<string>();
  for (let ns = 1; ns <= 63; ns += 7) {
    for (let length = 1; length <= 253; length += 3) {
      // Names with dots and dashes at every place a valid name may have them.
      const name = Array.from(
        { length },
        (_, i) => (i === 0 || i === length - 1 ? "a" : i % 9 === 0 ? "." : i % 4 === 0 ? "-" : "b"),
      )
        .join("").replace(/\.-|-\./g, "bb");
      const lease = floatingIpLeaseName("k".repeat(ns), name);
      assert(lease.length <= 63 && isDnsSubdomain(lease), `${ns}/${length}: ${lease}`);
      names.add(lease);
    }
  }
  assertEquals(names.size, 9 * 85);
  // Names a cluster can never have are still turned into a valid Lease name.
  const odd = floatingIpLeaseName("DB", "Pg_1");
  assert(isDnsSubdomain(odd) && odd.startsWith("polarstack-fip-db-pg-1-"), odd);
});

Deno.test("microTime: RFC 3339 in UTC with exactly 6 fraction digits", () => {
  assertEquals(microTime(new Date("2026-12-01T09:00:01.5+01:00")), "2026-12-01T08:00:01.500000Z");
  assertEquals(microTime(new Date("2026-12-01T08:00:00Z")), "2026-12-01T08:00:00.000000Z");
  assertEquals(microTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 7))), "2026-01-02T03:04:05.007000Z");
});

Deno.test("withCondition: adds, replaces in place, keeps lastTransitionTime while the status stays, or says unchanged", () => {
  const others: ClusterCondition[] = [
    { type: "Ready", status: "True", reason: "Up", message: "up", lastTransitionTime: "2026-01-01T00:00:00Z" },
    { type: "Other", status: "False" },
  ];
  const t1 = new Date("2026-12-01T09:00:00.900Z");
  const wanted = { status: "False" as const, reason: "AutoNotAssigned", message: "no address in status.floatingIP" };
  const added = withCondition(others, LEADER_IP_READY, { wanted, now: t1 })!;
  assertEquals(added, [...others, {
    type: LEADER_IP_READY,
    status: "False",
    lastProbeTime: "2026-12-01T09:00:00Z",
    lastTransitionTime: "2026-12-01T09:00:00Z",
    reason: "AutoNotAssigned",
    message: "no address in status.floatingIP",
  }]);
  assertEquals(withCondition(added, LEADER_IP_READY, { wanted, now: new Date("2026-12-01T10:00:00Z") }), null);
  const reworded = withCondition(added, LEADER_IP_READY, {
    wanted: { ...wanted, reason: "Disabled", message: "enableVip is false" },
    now: new Date("2026-12-01T09:01:00Z"),
  })!;
  assertEquals([reworded[2].reason, reworded[2].lastTransitionTime, reworded[2].lastProbeTime], [
    "Disabled",
    "2026-12-01T09:00:00Z",
    "2026-12-01T09:01:00Z",
  ]);
  const flipped = withCondition([reworded[2], ...others], LEADER_IP_READY, {
    wanted: { status: "True", reason: "Announced", message: "10.0.0.10 answers" },
    now: new Date("2026-12-01T09:02:00Z"),
  })!;
  assertEquals([flipped[0].status, flipped[0].lastTransitionTime], ["True", "2026-12-01T09:02:00Z"]);
  assertEquals(flipped.slice(1), others);
  // The input is never changed.
  assertEquals(others.length, 2);
});
