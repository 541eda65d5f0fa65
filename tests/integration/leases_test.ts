import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { createKubeClient, type KubeClient } from "../../k8s/client.ts";
import { KubeError } from "../../k8s/errors.ts";
import { createLease, floatingIpLeaseName, getLease, type Lease, updateLease } from "../../k8s/leases.ts";
import { microTime } from "../../k8s/values.ts";
import { type FakeKubeApiServer, startFakeKubeApiServer } from "../fake_kube/server.ts";

async function withCluster(fn: (server: FakeKubeApiServer, kube: KubeClient) => Promise<void>): Promise<void> {
  const server = await startFakeKubeApiServer();
  // The daemon's RBAC grants no Leases yet: the admin token writes them.
  const kube = createKubeClient({ ...server.connection(), token: server.adminToken }, { userAgent: "test" });
  try {
    await fn(server, kube);
  } finally {
    await server.close();
  }
}

function lease(name: string, holder: string, at: Date): Lease {
  return {
    metadata: { name },
    spec: {
      holderIdentity: holder,
      leaseDurationSeconds: 15,
      acquireTime: microTime(at),
      renewTime: microTime(at),
      leaseTransitions: 0,
    },
  };
}

Deno.test("Leases: get of a missing one is null; create, get and renew with MicroTime; create twice is 409 AlreadyExists", async () => {
  await withCluster(async (server, kube) => {
    const name = floatingIpLeaseName("db", "pg");
    assertEquals(name, "polarstack-fip-db-pg");
    assertEquals(await getLease(kube, name), null);
    const at = new Date("2026-12-01T09:00:00.123Z");
    const created = await createLease(kube, lease(name, "node-1", at));
    assertEquals(created.metadata?.namespace, "kube-system");
    assertEquals([created.spec?.acquireTime, created.spec?.renewTime], [
      "2026-12-01T09:00:00.123000Z",
      "2026-12-01T09:00:00.123000Z",
    ]);
    const stored = server.get("leases", "kube-system", name);
    assertEquals([stored?.kind, stored?.apiVersion, stored?.spec.holderIdentity], [
      "Lease",
      "coordination.k8s.io/v1",
      "node-1",
    ]);
    assertEquals(await getLease(kube, name), created);

    const renewed = await updateLease(kube, {
      ...created,
      spec: { ...created.spec, renewTime: microTime(new Date("2026-12-01T09:00:05Z")) },
    });
    assertEquals(renewed.spec?.renewTime, "2026-12-01T09:00:05.000000Z");
    assert(Number(renewed.metadata?.resourceVersion) > Number(created.metadata?.resourceVersion));

    const twice = await assertRejects(() => createLease(kube, lease(name, "node-2", at)), KubeError);
    assertEquals([(twice as KubeError).status, (twice as KubeError).reason], [409, "AlreadyExists"]);
    assertEquals(
      (twice as KubeError).message,
      `Cannot create Lease "${name}": 409 Conflict: leases.coordination.k8s.io "${name}" already exists`,
    );
  });
});

Deno.test("Leases: two holders racing on one resourceVersion: one wins, the other gets a 409 Conflict and holds nothing", async () => {
  await withCluster(async (server, kube) => {
    const name = floatingIpLeaseName("db", "pg");
    const start = new Date("2026-12-01T09:00:00Z");
    await createLease(kube, lease(name, "node-1", start));
    // Both read the expired Lease, both try to take it.
    const [seenBy2, seenBy3] = await Promise.all([getLease(kube, name), getLease(kube, name)]);
    const later = new Date("2026-12-01T09:01:00Z");
    const take = (seen: Lease, holder: string) =>
      updateLease(kube, {
        ...seen,
        spec: {
          ...seen.spec,
          holderIdentity: holder,
          acquireTime: microTime(later),
          renewTime: microTime(later),
          leaseTransitions: (seen.spec?.leaseTransitions ?? 0) + 1,
        },
      });
    const results = await Promise.allSettled([take(seenBy2!, "node-2"), take(seenBy3!, "node-3")]);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    assertEquals([won.length, lost.length], [1, 1]);
    const error = lost[0].reason as KubeError;
    assert(error instanceof KubeError);
    assertEquals([error.status, error.reason], [409, "Conflict"]);
    assert(error.message.startsWith(`Cannot update Lease "${name}": 409 Conflict`), error.message);
    const winner = (won[0] as PromiseFulfilledResult<Lease>).value.spec?.holderIdentity;
    assertEquals(server.get("leases", "kube-system", name)?.spec.holderIdentity, winner);
    assertEquals(server.get("leases", "kube-system", name)?.spec.leaseTransitions, 1);

    // The loser reads again and sees the winner: no blind write is possible.
    await assertRejects(
      () => updateLease(kube, { metadata: { name }, spec: { holderIdentity: "node-4" } }),
      KubeError,
      `Cannot update Lease "${name}": it carries no resourceVersion`,
    );
    assertEquals((await getLease(kube, name))?.spec?.holderIdentity, winner);
  });
});
