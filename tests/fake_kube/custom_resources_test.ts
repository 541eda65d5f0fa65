import { assert, assertEquals } from "../support/assert.ts";
import { type FakeKubeApiServer, startFakeKubeApiServer } from "./server.ts";
import { openWatch } from "./watch_stream.ts";

const NS = "kube-system";
const MPD = "/apis/mpd.polardb.aliyun.com/v1";
const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`;

/** A call with `token` (the admin token by default); returns status and JSON. */
async function call(
  server: FakeKubeApiServer,
  method: string,
  path: string,
  options: { body?: unknown; token?: string; contentType?: string } = {},
) {
  const client = Deno.createHttpClient({ caCerts: [server.caCert] });
  try {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${options.token ?? server.adminToken}`,
        "Content-Type": options.contentType ?? "application/json",
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      client,
    });
    const text = await response.text();
    // deno-lint-ignore no-explicit-any
    const json: any = text ? JSON.parse(text) : null;
    return { status: response.status, json };
  } finally {
    client.close();
  }
}

async function withServer(fn: (server: FakeKubeApiServer) => Promise<void>): Promise<void> {
  const server = await startFakeKubeApiServer();
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

function cluster(name: string, namespace: string, leaderIp: string) {
  return {
    apiVersion: "mpd.polardb.aliyun.com/v1",
    kind: "MPDCluster",
    metadata: { name, namespace },
    spec: { netCfg: { leaderFloatingIP: { ipAddress: leaderIp, mask: 24, basedNetIf: "eth0" } } },
    status: { leaderInstanceHost: "ignored-on-create" },
  };
}

Deno.test("MPDCluster: create drops status; /status PUT changes only status; a main PUT keeps it; 409 and 422", async () => {
  await withServer(async (server) => {
    const created = await call(server, "POST", `${MPD}/namespaces/db/mpdclusters`, {
      body: cluster("pg", "db", "10.0.0.10"),
    });
    assertEquals(created.status, 201);
    assertEquals(created.json.status, undefined);
    assertEquals([created.json.apiVersion, created.json.kind], ["mpd.polardb.aliyun.com/v1", "MPDCluster"]);
    assertEquals(created.json.metadata.generation, 1);
    const path = `${MPD}/namespaces/db/mpdclusters/pg`;

    // The status subresource: only .status changes, whatever else the body says; the generation stays.
    const statusPut = await call(server, "PUT", `${path}/status`, {
      body: {
        ...created.json,
        metadata: { ...created.json.metadata, labels: { sneaky: "yes" } },
        spec: { netCfg: {} },
        status: { leaderInstanceHost: "node-1", floatingIP: { ipAddress: "10.0.0.10" } },
      },
    });
    assertEquals(statusPut.status, 200);
    assertEquals(statusPut.json.status, { leaderInstanceHost: "node-1", floatingIP: { ipAddress: "10.0.0.10" } });
    assertEquals(statusPut.json.spec, created.json.spec);
    assertEquals(statusPut.json.metadata.labels, undefined);
    assertEquals(statusPut.json.metadata.generation, 1);
    assert(Number(statusPut.json.metadata.resourceVersion) > Number(created.json.metadata.resourceVersion));

    // A stale resourceVersion on /status is a conflict, named with the group.
    const stale = await call(server, "PUT", `${path}/status`, {
      body: { ...created.json, status: { leaderInstanceHost: "node-2" } },
    });
    assertEquals(stale.status, 409);
    assertEquals(
      stale.json.message,
      `Operation cannot be fulfilled on mpdclusters.mpd.polardb.aliyun.com "pg": the object has been modified; please apply your changes to the latest version and try again`,
    );
    assertEquals(stale.json.details, { name: "pg", group: "mpd.polardb.aliyun.com", kind: "mpdclusters" });
    assertEquals(server.get("mpdclusters", "db", "pg").status.leaderInstanceHost, "node-1");

    // A PUT of the main resource ignores .status and bumps the generation for a spec change.
    const mainPut = await call(server, "PUT", path, {
      body: { ...statusPut.json, spec: { netCfg: { leaderFloatingIP: { ipAddress: "10.0.0.11" } } }, status: {} },
    });
    assertEquals(mainPut.status, 200);
    assertEquals(mainPut.json.spec.netCfg.leaderFloatingIP.ipAddress, "10.0.0.11");
    assertEquals(mainPut.json.status, statusPut.json.status);
    assertEquals(mainPut.json.metadata.generation, 2);

    // Custom resources allow no unconditional PUT, on the object or its status.
    const { resourceVersion: _rv, ...unversioned } = mainPut.json.metadata;
    for (const target of [path, `${path}/status`]) {
      const blind = await call(server, "PUT", target, { body: { ...mainPut.json, metadata: unversioned } });
      assertEquals(blind.status, 422);
      assertEquals(
        blind.json.message,
        `MPDCluster.mpd.polardb.aliyun.com "pg" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`,
      );
    }

    // A merge patch of the status needs no resourceVersion.
    const patched = await call(server, "PATCH", `${path}/status`, {
      body: { status: { leaderInstanceHost: "node-3" } },
      contentType: "application/merge-patch+json",
    });
    assertEquals([patched.status, patched.json.status.leaderInstanceHost], [200, "node-3"]);
    assertEquals(patched.json.spec, mainPut.json.spec);
  });
});

Deno.test("MPDCluster: list and watch across all namespaces and in one; 404 names the group; wrong version 404", async () => {
  await withServer(async (server) => {
    server.put(cluster("a", "db1", "10.0.0.1"));
    server.put(cluster("b", "db2", "10.0.0.2"));
    const all = await call(server, "GET", `${MPD}/mpdclusters`);
    assertEquals([all.json.kind, all.json.apiVersion], ["MPDClusterList", "mpd.polardb.aliyun.com/v1"]);
    assertEquals(all.json.items.map((o: { metadata: { name: string } }) => o.metadata.name), ["a", "b"]);
    assertEquals(all.json.metadata.resourceVersion, server.get("mpdclusters", "db2", "b").metadata.resourceVersion);
    const one = await call(server, "GET", `${MPD}/namespaces/db2/mpdclusters`);
    assertEquals(one.json.items.map((o: { metadata: { name: string } }) => o.metadata.name), ["b"]);

    const missing = await call(server, "GET", `${MPD}/namespaces/db1/mpdclusters/none`);
    assertEquals([missing.status, missing.json.message], [404, `mpdclusters.mpd.polardb.aliyun.com "none" not found`]);
    assertEquals(missing.json.details, { name: "none", group: "mpd.polardb.aliyun.com", kind: "mpdclusters" });
    assertEquals((await call(server, "GET", "/apis/mpd.polardb.aliyun.com/v2/mpdclusters")).status, 404);
    assertEquals((await call(server, "GET", "/api/v1/mpdclusters")).status, 404);

    const watchAll = await openWatch(
      server,
      `${MPD}/mpdclusters?watch=true&resourceVersion=${all.json.metadata.resourceVersion}`,
    );
    const watchOne = await openWatch(server, `${MPD}/namespaces/db1/mpdclusters?watch=true`);
    try {
      assertEquals((await watchOne.next())?.object.metadata.name, "a");
      const b = server.get("mpdclusters", "db2", "b");
      const updated = await call(server, "PUT", `${MPD}/namespaces/db2/mpdclusters/b/status`, {
        body: { ...b, status: { leaderInstanceHost: "node-9" } },
      });
      const removed = await call(server, "DELETE", `${MPD}/namespaces/db1/mpdclusters/a`);
      assertEquals(removed.json.details, {
        name: "a",
        group: "mpd.polardb.aliyun.com",
        kind: "mpdclusters",
        uid: all.json.items[0].metadata.uid,
      });
      assertEquals(server.list("mpdclusters").map((o) => o.metadata.name), ["b"]);
      const events = [await watchAll.next(), await watchAll.next()];
      assertEquals(events.map((e) => [e?.type, e?.object.metadata.name]), [["MODIFIED", "b"], ["DELETED", "a"]]);
      assertEquals(events[0]?.object.metadata.resourceVersion, updated.json.metadata.resourceVersion);
      assertEquals([(await watchOne.next())?.type], ["DELETED"]);
    } finally {
      await watchAll.close();
      await watchOne.close();
    }
  });
});

Deno.test("Leases: create, get, update with resourceVersion, 409 on a stale one, MicroTime, validation, delete", async () => {
  await withServer(async (server) => {
    const lease = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: "fip-pg" },
      spec: {
        holderIdentity: "node-1",
        leaseDurationSeconds: 15,
        acquireTime: "2026-12-01T09:00:00+01:00",
        renewTime: "2026-12-01T08:00:01.5Z",
        leaseTransitions: 0,
      },
    };
    const created = await call(server, "POST", LEASES, { body: lease });
    assertEquals(created.status, 201);
    assertEquals(created.json.metadata.namespace, NS);
    assertEquals(created.json.metadata.generation, undefined);
    assertEquals(created.json.spec.acquireTime, "2026-12-01T08:00:00.000000Z");
    assertEquals(created.json.spec.renewTime, "2026-12-01T08:00:01.500000Z");
    assertEquals((await call(server, "GET", `${LEASES}/fip-pg`)).json, created.json);

    const twice = await call(server, "POST", LEASES, { body: lease });
    assertEquals([twice.status, twice.json.reason], [409, "AlreadyExists"]);
    assertEquals(twice.json.message, `leases.coordination.k8s.io "fip-pg" already exists`);

    const renewed = await call(server, "PUT", `${LEASES}/fip-pg`, {
      body: { ...created.json, spec: { ...created.json.spec, renewTime: "2026-12-01T08:00:11.123456789Z" } },
    });
    assertEquals(renewed.status, 200);
    assertEquals(renewed.json.spec.renewTime, "2026-12-01T08:00:11.123456Z");

    // Another node that read the lease before the renewal loses the race.
    const taken = await call(server, "PUT", `${LEASES}/fip-pg`, {
      body: { ...created.json, spec: { ...created.json.spec, holderIdentity: "node-2", leaseTransitions: 1 } },
    });
    assertEquals(taken.status, 409);
    assertEquals(
      taken.json.message,
      `Operation cannot be fulfilled on leases.coordination.k8s.io "fip-pg": the object has been modified; please apply your changes to the latest version and try again`,
    );
    assertEquals(server.get("leases", NS, "fip-pg").spec.holderIdentity, "node-1");

    const zero = await call(server, "PUT", `${LEASES}/fip-pg`, {
      body: { ...renewed.json, spec: { ...renewed.json.spec, leaseDurationSeconds: 0 } },
    });
    assertEquals(zero.status, 422);
    assertEquals(
      zero.json.message,
      `Lease.coordination.k8s.io "fip-pg" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0`,
    );
    assertEquals([zero.json.details.group, zero.json.details.kind], ["coordination.k8s.io", "Lease"]);
    for (const spec of [{ holderIdentity: 5 }, { renewTime: "yesterday" }, { leaseDurationSeconds: 1.5 }]) {
      const bad = await call(server, "POST", LEASES, { body: { ...lease, metadata: { name: "bad" }, spec } });
      assertEquals(bad.status, 400, JSON.stringify(spec));
      assert(bad.json.message.startsWith(`Lease in version "v1" cannot be handled as a Lease: `), bad.json.message);
    }

    // A lease (a built-in type) may be updated without resourceVersion.
    const { resourceVersion: _rv, ...unversioned } = renewed.json.metadata;
    const blind = await call(server, "PUT", `${LEASES}/fip-pg`, {
      body: { ...renewed.json, metadata: unversioned, spec: { ...renewed.json.spec, holderIdentity: "node-3" } },
    });
    assertEquals([blind.status, blind.json.spec.holderIdentity], [200, "node-3"]);

    const listed = await call(server, "GET", LEASES);
    assertEquals([listed.json.kind, listed.json.apiVersion, listed.json.items.length], [
      "LeaseList",
      "coordination.k8s.io/v1",
      1,
    ]);
    const deleted = await call(server, "DELETE", `${LEASES}/fip-pg`);
    assertEquals([deleted.status, deleted.json.status, deleted.json.details.group], [
      200,
      "Success",
      "coordination.k8s.io",
    ]);
    const gone = await call(server, "GET", `${LEASES}/fip-pg`);
    assertEquals([gone.status, gone.json.message], [404, `leases.coordination.k8s.io "fip-pg" not found`]);
  });
});

Deno.test("RBAC: the daemon's token may use Leases in its namespace and MPDClusters as the manifests grant, no more; admin may", async () => {
  await withServer(async (server) => {
    const token = server.token;
    const user = `User "system:serviceaccount:kube-system:polarstack-daemon"`;
    const granted: [string, string, number][] = [
      ["GET", `${LEASES}/x`, 404],
      ["GET", LEASES, 200],
      ["GET", `${MPD}/mpdclusters`, 200],
      ["GET", `${MPD}/namespaces/db/mpdclusters/pg`, 404],
    ];
    for (const [method, path, status] of granted) {
      assertEquals((await call(server, method, path, { token })).status, status, `${method} ${path}`);
    }
    const cases: [string, string, string][] = [
      [
        "DELETE",
        `${LEASES}/x`,
        `leases.coordination.k8s.io "x" is forbidden: ${user} cannot delete resource "leases" in API group "coordination.k8s.io" in the namespace "kube-system"`,
      ],
      [
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/db/leases",
        `leases.coordination.k8s.io is forbidden: ${user} cannot list resource "leases" in API group "coordination.k8s.io" in the namespace "db"`,
      ],
      [
        "PUT",
        `${MPD}/namespaces/db/mpdclusters/pg`,
        `mpdclusters.mpd.polardb.aliyun.com "pg" is forbidden: ${user} cannot update resource "mpdclusters" in API group "mpd.polardb.aliyun.com" in the namespace "db"`,
      ],
      [
        "POST",
        `${MPD}/namespaces/db/mpdclusters`,
        `mpdclusters.mpd.polardb.aliyun.com is forbidden: ${user} cannot create resource "mpdclusters" in API group "mpd.polardb.aliyun.com" in the namespace "db"`,
      ],
    ];
    for (const [method, path, message] of cases) {
      const answer = await call(server, method, path, { token, body: method === "GET" ? undefined : {} });
      assertEquals([answer.status, answer.json.message], [403, message], `${method} ${path}`);
    }
    assertEquals(server.list("leases"), []);
    const admin = await call(server, "POST", "/apis/coordination.k8s.io/v1/namespaces/db/leases", {
      body: { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: "x" }, spec: {} },
    });
    assertEquals(admin.status, 201);
  });
});
