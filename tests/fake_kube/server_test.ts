import type { V1ConfigMap } from "@kubernetes/client-node";
import { createKubeClient, type KubeClientOptions } from "../../k8s/client.ts";
import { KubeError } from "../../k8s/errors.ts";
import { loadConnection } from "../../k8s/kube_config.ts";
import { assert, assertEquals, assertMatch, assertRejects, assertStringIncludes } from "../support/assert.ts";
import {
  API_AUDIENCE,
  DEFAULT_USER,
  type FakeKubeApiServer,
  fakeKubeApiServerCommand,
  seededServerFlags,
  startFakeKubeApiServer,
} from "./server.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";

const NS = "kube-system";

function client(server: FakeKubeApiServer, options: Partial<KubeClientOptions> = {}) {
  return createKubeClient(server.connection(), { userAgent: "fake-test/1", qps: 1000, burst: 1000, ...options });
}

function configMap(name: string, data: Record<string, string>, labels?: Record<string, string>): V1ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: NS, labels }, data };
}

/** Raw HTTPS call with the server's CA and (unless `token` is null) its token; returns status, headers and JSON. */
async function call(
  server: FakeKubeApiServer,
  method: string,
  path: string,
  options: { body?: unknown; contentType?: string; token?: string | null } = {},
) {
  const httpClient = Deno.createHttpClient({ caCerts: [server.caCert] });
  try {
    const headers: Record<string, string> = {};
    const token = options.token === undefined ? server.token : options.token;
    if (token !== null) headers.Authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers["Content-Type"] = options.contentType ?? "application/json";
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      client: httpClient,
    });
    const text = await response.text();
    // deno-lint-ignore no-explicit-any
    const json: any = text ? JSON.parse(text) : null;
    return { status: response.status, headers: response.headers, json };
  } finally {
    httpClient.close();
  }
}

/**
 * Runs `fn` with a fresh server and closes it afterwards. RBAC is off: these tests use the daemon's token for calls
 * outside its role to test the server's mechanics; rbac_test.ts tests RBAC.
 */
async function withServer(fn: (server: FakeKubeApiServer) => Promise<void>, seed: object[] = []): Promise<void> {
  const server = await startFakeKubeApiServer({ seed, rbac: false });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

Deno.test("requests without a known bearer token get 401 Unauthorized as a Status", async () => {
  await withServer(async (server) => {
    for (const token of [null, "wrong"]) {
      const answer = await call(server, "GET", `/api/v1/namespaces/${NS}/configmaps/x`, { token });
      assertEquals(answer.status, 401);
      assertEquals(answer.json, {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: "Unauthorized",
        reason: "Unauthorized",
        code: 401,
      });
    }
    assertEquals((await call(server, "GET", "/api/v1/nodes")).status, 200);
    assertEquals((await call(server, "GET", "/_fake/requests", { token: null })).status, 401);
  });
});

Deno.test(
  "ConfigMaps: create, get, replace, stale replace, create twice, get and replace missing",
  async () => {
    await withServer(async (server) => {
      const kube = client(server);
      assertEquals(await kube.getConfigMap("ccm"), null);
      const created = await kube.createConfigMap(configMap("ccm", { a: "1" }));
      assertEquals(created.metadata?.namespace, NS);
      assertMatch(created.metadata?.uid ?? "", /^[0-9a-f-]{36}$/);
      assertMatch(
        String(created.metadata?.creationTimestamp?.toISOString?.() ?? created.metadata?.creationTimestamp),
        /^\d{4}-/,
      );
      const rv1 = created.metadata!.resourceVersion!;
      const read = await kube.getConfigMap("ccm");
      assertEquals(read?.data, { a: "1" });
      assertEquals(read?.metadata?.resourceVersion, rv1);

      const replaced = await kube.replaceConfigMap({ ...read!, data: { a: "2" } });
      const rv2 = replaced.metadata!.resourceVersion!;
      assert(Number(rv2) > Number(rv1), `resourceVersion ${rv2} should be above ${rv1}`);
      assertEquals(replaced.metadata?.uid, created.metadata?.uid);
      assertEquals(server.get("configmaps", NS, "ccm").data, { a: "2" });

      const stale = await assertRejects(
        () => kube.replaceConfigMap({ ...read!, data: { a: "3" } }),
        KubeError,
        `Operation cannot be fulfilled on configmaps "ccm": the object has been modified; please apply your changes to the latest version and try again`,
      );
      assertEquals([(stale as KubeError).status, (stale as KubeError).reason], [409, "Conflict"]);
      assertEquals(server.get("configmaps", NS, "ccm").data, { a: "2" });

      const twice = await assertRejects(
        () => kube.createConfigMap(configMap("ccm", { a: "9" })),
        KubeError,
        `configmaps "ccm" already exists`,
      );
      assertEquals([(twice as KubeError).status, (twice as KubeError).reason], [409, "AlreadyExists"]);

      const missing = await assertRejects(
        () => kube.replaceConfigMap(configMap("nope", {})),
        KubeError,
        `configmaps "nope" not found`,
      );
      assertEquals([(missing as KubeError).status, (missing as KubeError).reason], [404, "NotFound"]);
      const raw = await call(server, "GET", `/api/v1/namespaces/${NS}/configmaps/nope`);
      assertEquals(raw.json.details, { name: "nope", kind: "configmaps" });
    });
  },
);

Deno.test("a replace without resourceVersion is unconditional; one that changes nothing keeps the version", async () => {
  await withServer(async (server) => {
    const path = `/api/v1/namespaces/${NS}/configmaps/x`;
    const first = await call(server, "PUT", path, { body: configMap("x", { a: "2" }) });
    assertEquals(first.status, 200);
    assertEquals(first.json.data, { a: "2" });
    const rv = first.json.metadata.resourceVersion;
    const same = await call(server, "PUT", path, { body: first.json });
    assertEquals(same.json.metadata.resourceVersion, rv);
    const wrongName = await call(server, "PUT", path, { body: configMap("y", {}) });
    assertEquals([wrongName.status, wrongName.json.reason], [400, "BadRequest"]);
    const created = await call(server, "POST", `/api/v1/namespaces/${NS}/configmaps`, {
      body: { ...configMap("z", {}), metadata: { name: "z", resourceVersion: "5" } },
    });
    assertEquals(created.status, 500);
    assertStringIncludes(created.json.message, "resourceVersion should not be set on objects to be created");
  }, [configMap("x", { a: "1" })]);
});

Deno.test(
  "ConfigMap validation: bad keys, bad names and more than 1048576 bytes are 422 Invalid",
  async () => {
    await withServer(async (server) => {
      const kube = client(server);
      const badKey = await assertRejects(
        () => kube.createConfigMap(configMap("x", { "bad key": "1" })),
        KubeError,
        `ConfigMap "x" is invalid: data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters`,
      );
      assertEquals([(badKey as KubeError).status, (badKey as KubeError).reason], [422, "Invalid"]);
      await assertRejects(
        () => kube.createConfigMap(configMap("Bad_Name", {})),
        KubeError,
        `ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain`,
      );
      const limit = 1048576;
      const big = await assertRejects(
        () => kube.createConfigMap(configMap("big", { k: "x".repeat(limit) })),
        KubeError,
        `ConfigMap "big" is invalid: []: Too long: must have at most 1048576 bytes`,
      );
      assertEquals((big as KubeError).status, 422);
      const raw = await call(server, "POST", `/api/v1/namespaces/${NS}/configmaps`, {
        body: configMap("x", { "bad key": "1" }),
      });
      assertEquals(raw.json.details.kind, "ConfigMap");
      assertEquals(raw.json.details.causes[0].field, "data[bad key]");
      assertEquals(server.list("configmaps"), []);
      // Exactly at the limit (key included) is accepted; a replace is validated too.
      const fits = await kube.createConfigMap(configMap("fits", { k: "x".repeat(limit - 1) }));
      await assertRejects(
        () => kube.replaceConfigMap({ ...fits, data: { k: "x".repeat(limit) } }),
        KubeError,
        "Too long",
      );
    });
  },
);

Deno.test(
  "list ConfigMaps by every label selector form, with a List kind and resourceVersion",
  async () => {
    const seed = [
      configMap("web", {}, { app: "web", tier: "front" }),
      configMap("api", {}, { app: "api", tier: "back" }),
      configMap("db", {}, { app: "db", tier: "back", "polarstack.io/disk": "ssd" }),
      configMap("bare", {}),
      {
        ...configMap("elsewhere", {}, { app: "web" }),
        metadata: { name: "elsewhere", namespace: "other", labels: { app: "web" } },
      },
    ];
    await withServer(async (server) => {
      const kube = client(server);
      const names = async (selector: string) => (await kube.listConfigMaps(selector)).map((c) => c.metadata?.name);
      assertEquals(await names(""), ["api", "bare", "db", "web"]);
      assertEquals(await names("app=web"), ["web"]);
      assertEquals(await names("app==web"), ["web"]);
      assertEquals(await names("app!=web"), ["api", "bare", "db"]);
      assertEquals(await names("app in (web,db)"), ["db", "web"]);
      assertEquals(await names("app notin (web,db)"), ["api", "bare"]);
      assertEquals(await names("polarstack.io/disk"), ["db"]);
      assertEquals(await names("!polarstack.io/disk"), ["api", "bare", "web"]);
      assertEquals(await names("tier=back,app!=db"), ["api"]);
      const bad = await assertRejects(() => names("app in (web"), KubeError, "unable to parse requirement");
      assertEquals([(bad as KubeError).status, (bad as KubeError).reason], [400, "BadRequest"]);

      const list = await call(server, "GET", `/api/v1/namespaces/${NS}/configmaps?fieldSelector=metadata.name%3Ddb`);
      assertEquals(list.json.kind, "ConfigMapList");
      assertEquals(list.json.metadata.resourceVersion, "5");
      assertEquals(list.json.items.map((c: V1ConfigMap) => c.metadata?.name), ["db"]);
      const all = await call(server, "GET", "/api/v1/configmaps?labelSelector=app%3Dweb");
      assertEquals(all.json.items.map((c: V1ConfigMap) => c.metadata?.namespace), [NS, "other"]);
    }, seed);
  },
);

function pod(name: string, namespace: string, nodeName?: string, labels?: Record<string, string>) {
  return { apiVersion: "v1", kind: "Pod", metadata: { name, namespace, labels }, spec: { nodeName, containers: [] } };
}

Deno.test("list Pods in one namespace or all, by field selectors on name, namespace and node", async () => {
  const seed = [
    pod("a", "ns1", "n1", { app: "pg" }),
    pod("b", "ns2", "n1", { app: "pg" }),
    pod("c", "ns1", "n2"),
    pod("d", "ns2"),
  ];
  await withServer(async (server) => {
    const kube = client(server);
    const names = async (options: Parameters<typeof kube.listPods>[0]) =>
      (await kube.listPods(options)).map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`);
    assertEquals(await names({}), ["ns1/a", "ns1/c", "ns2/b", "ns2/d"]);
    assertEquals(await names({ namespace: "ns1" }), ["ns1/a", "ns1/c"]);
    assertEquals(await names({ fieldSelector: "spec.nodeName=n1" }), ["ns1/a", "ns2/b"]);
    assertEquals(await names({ fieldSelector: "spec.nodeName==n2" }), ["ns1/c"]);
    assertEquals(await names({ fieldSelector: "spec.nodeName=" }), ["ns2/d"]);
    assertEquals(await names({ fieldSelector: "spec.nodeName!=n1", namespace: "ns2" }), ["ns2/d"]);
    assertEquals(await names({ fieldSelector: "metadata.namespace=ns2,metadata.name!=b" }), ["ns2/d"]);
    assertEquals(await names({ fieldSelector: "metadata.name=a" }), ["ns1/a"]);
    assertEquals(await names({ labelSelector: "app=pg", fieldSelector: "metadata.namespace!=ns1" }), ["ns2/b"]);
    await assertRejects(
      () => names({ fieldSelector: "spec.hostname=x" }),
      KubeError,
      "400 Bad Request: field label not supported: spec.hostname",
    );
    const list = await call(server, "GET", "/api/v1/pods");
    assertEquals(list.json.kind, "PodList");
    assertEquals((await call(server, "POST", "/api/v1/pods", { body: pod("e", "ns1") })).status, 405);
  }, seed);
});

const NODE = {
  apiVersion: "v1",
  kind: "Node",
  metadata: { name: "node-1", labels: { "kubernetes.io/hostname": "node-1" } },
  spec: { podCIDR: "10.244.1.0/24" },
  status: {
    conditions: [
      { type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is ready" },
      { type: "MemoryPressure", status: "False", reason: "KubeletHasSufficientMemory" },
    ],
    addresses: [{ type: "InternalIP", address: "10.0.0.1" }, { type: "Hostname", address: "node-1" }],
  },
};

Deno.test(
  "node status: strategic merge patch merges conditions by type and touches nothing else",
  async () => {
    await withServer(async (server) => {
      const kube = client(server);
      const before = server.get("nodes", undefined, "node-1");
      const patched = await kube.patchNodeStatus("node-1", {
        metadata: { labels: { sneaky: "yes" } },
        spec: { unschedulable: true },
        status: {
          conditions: [
            { type: "PolarStackNetwork", status: "False", reason: "NetworkOk", message: "ok" },
            { type: "Ready", message: "still ready" },
          ],
        },
      });
      const stored = server.get("nodes", undefined, "node-1");
      assertEquals(stored.status.conditions, [
        { type: "Ready", status: "True", reason: "KubeletReady", message: "still ready" },
        { type: "MemoryPressure", status: "False", reason: "KubeletHasSufficientMemory" },
        { type: "PolarStackNetwork", status: "False", reason: "NetworkOk", message: "ok" },
      ]);
      assertEquals(stored.status.addresses, NODE.status.addresses);
      assertEquals(stored.spec, NODE.spec);
      assertEquals(stored.metadata.labels, NODE.metadata.labels);
      assertEquals(patched.status?.conditions?.length, 3);
      assert(Number(stored.metadata.resourceVersion) > Number(before.metadata.resourceVersion));

      await kube.patchNodeStatus("node-1", {
        status: {
          conditions: [{ type: "MemoryPressure", $patch: "delete" }],
          addresses: [{ type: "Hostname", address: "h" }],
        },
      });
      const after = server.get("nodes", undefined, "node-1");
      assertEquals(after.status.conditions.map((c: { type: string }) => c.type), ["Ready", "PolarStackNetwork"]);
      assertEquals(after.status.addresses, [{ type: "InternalIP", address: "10.0.0.1" }, {
        type: "Hostname",
        address: "h",
      }]);
      assertEquals((await kube.getNode("node-1"))?.status?.conditions?.length, 2);
      assertEquals(await kube.getNode("node-2"), null);
      await assertRejects(
        () => kube.patchNodeStatus("node-2", { status: {} }),
        KubeError,
        `404 Not Found: nodes "node-2" not found`,
      );
    }, [NODE]);
  },
);

Deno.test("node writes: PUT on the node keeps its status, PUT and PATCH on /status change only the status", async () => {
  await withServer(async (server) => {
    const node = server.get("nodes", undefined, "node-1");
    const put = await call(server, "PUT", "/api/v1/nodes/node-1", {
      body: { ...node, spec: { podCIDR: "10.9.9.0/24" }, status: { conditions: [] } },
    });
    assertEquals(put.json.spec, { podCIDR: "10.9.9.0/24" });
    assertEquals(put.json.status, NODE.status);
    const status = await call(server, "PUT", "/api/v1/nodes/node-1/status", {
      body: {
        ...put.json,
        spec: { podCIDR: "1.1.1.0/24" },
        status: { conditions: [{ type: "Ready", status: "False" }] },
      },
    });
    assertEquals(status.json.spec, { podCIDR: "10.9.9.0/24" });
    assertEquals(status.json.status, { conditions: [{ type: "Ready", status: "False" }] });
    const stale = await call(server, "PUT", "/api/v1/nodes/node-1/status", { body: put.json });
    assertEquals([stale.status, stale.json.reason], [409, "Conflict"]);
    const merge = await call(server, "PATCH", "/api/v1/nodes/node-1/status", {
      body: { spec: { podCIDR: "2.2.2.0/24" }, status: { phase: "Running" } },
      contentType: "application/merge-patch+json",
    });
    assertEquals(merge.json.spec, { podCIDR: "10.9.9.0/24" });
    assertEquals(merge.json.status.phase, "Running");
    const mainPatch = await call(server, "PATCH", "/api/v1/nodes/node-1", {
      body: { spec: { unschedulable: true }, status: { phase: "Gone" } },
      contentType: "application/strategic-merge-patch+json",
    });
    assertEquals(mainPatch.json.spec.unschedulable, true);
    assertEquals(mainPatch.json.status.phase, "Running");
  }, [NODE]);
});

Deno.test("merge patch and json patch of a ConfigMap; 415 for another type; a stale version in a patch is 409", async () => {
  await withServer(async (server) => {
    const path = `/api/v1/namespaces/${NS}/configmaps/x`;
    const merged = await call(server, "PATCH", path, {
      body: { data: { a: null, c: "3" }, metadata: { labels: { l: "1" } } },
      contentType: "application/merge-patch+json",
    });
    assertEquals(merged.json.data, { b: "2", c: "3" });
    assertEquals(merged.json.metadata.labels, { l: "1" });
    const patched = await call(server, "PATCH", path, {
      body: [
        { op: "test", path: "/data/b", value: "2" },
        { op: "replace", path: "/data/b", value: "20" },
        { op: "add", path: "/data/d", value: "4" },
        { op: "remove", path: "/data/c" },
      ],
      contentType: "application/json-patch+json",
    });
    assertEquals(patched.status, 200);
    assertEquals(patched.json.data, { b: "20", d: "4" });
    const failedTest = await call(server, "PATCH", path, {
      body: [{ op: "test", path: "/data/b", value: "2" }],
      contentType: "application/json-patch+json",
    });
    assertEquals([failedTest.status, failedTest.json.reason], [422, "Invalid"]);
    const wrongType = await call(server, "PATCH", path, { body: { data: {} }, contentType: "application/json" });
    assertEquals([wrongType.status, wrongType.json.reason], [415, "UnsupportedMediaType"]);
    const stale = await call(server, "PATCH", path, {
      body: { metadata: { resourceVersion: "1" }, data: { e: "5" } },
      contentType: "application/merge-patch+json",
    });
    assertEquals([stale.status, stale.json.reason], [409, "Conflict"]);
    const invalid = await call(server, "PATCH", path, {
      body: { data: { "no spaces": "x" } },
      contentType: "application/strategic-merge-patch+json",
    });
    assertEquals(invalid.status, 422);
    const missing = await call(server, "PATCH", `${path}-missing`, {
      body: {},
      contentType: "application/merge-patch+json",
    });
    assertEquals([missing.status, missing.json.message], [404, `configmaps "x-missing" not found`]);
    assertEquals(server.get("configmaps", NS, "x").data, { b: "20", d: "4" });
  }, [configMap("x", { a: "1", b: "2" })]);
});

Deno.test("events: create one on a Node, then merge-patch its count; wrong namespace is 422", async () => {
  await withServer(async (server) => {
    const kube = client(server);
    const event = {
      metadata: { name: "node-1.polarstack.1", namespace: "default" },
      involvedObject: { kind: "Node", name: "node-1", uid: "node-1" },
      reason: "PortUsageReported",
      message: "Wrote ConfigMap",
      type: "Normal",
      count: 1,
      source: { component: "polarstack-daemon", host: "node-1" },
    };
    const created = await kube.createEvent(event);
    assertEquals(created.count, 1);
    const patched = await kube.patchEvent("node-1.polarstack.1", "default", {
      count: 2,
      lastTimestamp: "2026-01-01T00:00:00Z",
    });
    assertEquals(patched.count, 2);
    assertEquals(server.get("events", "default", "node-1.polarstack.1").count, 2);
    assertEquals(server.get("events", "default", "node-1.polarstack.1").reason, "PortUsageReported");
    await assertRejects(
      () => kube.createEvent({ ...event, metadata: { name: "e2", namespace: "kube-system" } }),
      KubeError,
      `Event "e2" is invalid: involvedObject.namespace: Invalid value: "": does not match event.namespace`,
    );
    const generated = await kube.createEvent({ ...event, metadata: { generateName: "node-1.", namespace: "default" } });
    assertMatch(generated.metadata?.name ?? "", /^node-1\.[0-9a-f]{5}$/);
    const byReason = await call(
      server,
      "GET",
      "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dnode-1",
    );
    assertEquals(byReason.json.items.length, 2);
  });
});

Deno.test("tokenreviews authenticate known tokens as their users, and not unknown ones", async () => {
  await withServer(async (server) => {
    server.addToken("alice-token", { username: "alice", groups: ["system:authenticated", "admins"] });
    const kube = client(server);
    const review = (token: string) =>
      kube.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
        body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
        what: "review a token",
      }) as Promise<
        { kind: string; status: { authenticated: boolean; user: { username?: string; groups?: string[] } } }
      >;
    const own = await review(server.token);
    assertEquals(own.kind, "TokenReview");
    assertEquals(own.status.authenticated, true);
    assertEquals(own.status.user.username, DEFAULT_USER.username);
    assertEquals(own.status.user.groups, [...DEFAULT_USER.groups]);
    const alice = await review("alice-token");
    assertEquals([alice.status.authenticated, alice.status.user.username], [true, "alice"]);
    const nobody = await review("nope");
    assertEquals(nobody.status.authenticated, false);
    // A token added later also opens the API itself.
    assertEquals((await call(server, "GET", "/api/v1/nodes", { token: "alice-token" })).status, 200);
  });
});

Deno.test("tokens carry audiences: reviews answer the intersection, and the API refuses a token not bound to it", async () => {
  await withServer(async (server) => {
    server.addToken("both-token", { ...DEFAULT_USER, audiences: ["polarstack-daemon", API_AUDIENCE] });
    const review = async (token: string, audiences?: string[]) => {
      const answer = await call(server, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
        body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token, audiences } },
      });
      assertEquals(answer.status, 201);
      return answer.json.status as { authenticated: boolean; audiences?: string[]; error?: string; user: object };
    };
    // No audiences asked: the API server's own.
    assertEquals((await review(server.token)).audiences, [API_AUDIENCE]);
    const peerForApi = await review(server.peerToken);
    assertEquals([peerForApi.authenticated, peerForApi.user], [false, {}]);
    assertStringIncludes(peerForApi.error ?? "", "is invalid for the target audiences");
    // Asked for the daemons' audience: only a token bound to it.
    const peer = await review(server.peerToken, ["polarstack-daemon"]);
    assertEquals([peer.authenticated, peer.audiences], [true, ["polarstack-daemon"]]);
    assertEquals((await review(server.token, ["polarstack-daemon"])).authenticated, false);
    const both = await review("both-token", ["other", "polarstack-daemon"]);
    assertEquals([both.authenticated, both.audiences], [true, ["polarstack-daemon"]]);
    assertEquals((await review("nope", ["polarstack-daemon"])).authenticated, false);
    // The API itself takes only tokens bound to the API server.
    assertEquals((await call(server, "GET", "/api/v1/nodes", { token: server.peerToken })).status, 401);
    assertEquals((await call(server, "GET", "/api/v1/nodes", { token: "both-token" })).status, 200);
    assertEquals((await call(server, "GET", "/api/v1/nodes")).status, 200);
  });
});

Deno.test(
  "fault injection: statuses are retried by the client, count runs out, method filters",
  async () => {
    await withServer(async (server) => {
      const retries: number[] = [];
      const kube = client(server, { retries: 3, backoffCapMs: 5, onRetry: (info) => retries.push(info.attempt) });
      server.injectFault({ method: "GET", pathPrefix: `/api/v1/namespaces/${NS}/configmaps/`, count: 2, status: 503 });
      server.injectFault({ method: "PUT", pathPrefix: "/api/v1/", count: 1, status: 500 });
      assertEquals((await kube.getConfigMap("x"))?.data, { a: "1" });
      assertEquals(retries, [1, 2]);
      assertEquals(server.requests.map((r) => r.status), [503, 503, 200]);
      assertEquals(server.requests[0].method, "GET");

      const once = client(server, { retries: 0 });
      const failed = await assertRejects(
        () => once.replaceConfigMap(configMap("x", { a: "2" })),
        KubeError,
        `Cannot replace ConfigMap "x": 500 Internal Server Error: injected fault: 500`,
      );
      assertEquals([(failed as KubeError).status, (failed as KubeError).reason], [500, "InternalError"]);
      assertEquals((await once.replaceConfigMap(configMap("x", { a: "2" }))).data, { a: "2" });
    }, [configMap("x", { a: "1" })]);
  },
);

Deno.test("fault injection: Retry-After is sent and honoured by the client", async () => {
  await withServer(async (server) => {
    server.injectFault({ pathPrefix: "/api/v1/nodes/", count: 1, status: 429, retryAfter: 1 });
    const raw = await call(server, "GET", "/api/v1/nodes/node-1");
    assertEquals([raw.status, raw.json.reason, raw.headers.get("retry-after")], [429, "TooManyRequests", "1"]);
    assertEquals(raw.json.details, { retryAfterSeconds: 1 });

    server.injectFault({ pathPrefix: "/api/v1/nodes/", count: 1, status: 429, retryAfter: 1 });
    const delays: number[] = [];
    const kube = client(server, { retries: 1, backoffCapMs: 1000, onRetry: (info) => delays.push(info.delayMs) });
    assertEquals((await kube.getNode("node-1"))?.metadata?.name, "node-1");
    // Without the header the first backoff would be 100-200 ms.
    assertEquals(delays, [1000]);
  }, [NODE]);
});

Deno.test(
  "fault injection: a delay past the client's timeout, and a delay before a normal answer",
  async () => {
    await withServer(async (server) => {
      server.injectFault({ pathPrefix: "/api/v1/nodes/node-1", count: 1, delayMs: 400 });
      const impatient = client(server, { retries: 0, timeoutMs: 100 });
      const late = await assertRejects(() => impatient.getNode("node-1"), KubeError, "no answer within 100 ms");
      assertEquals((late as KubeError).status, 0);

      server.injectFault({ pathPrefix: "/api/v1/nodes/node-1", count: 1, delayMs: 150 });
      const started = performance.now();
      assertEquals((await client(server).getNode("node-1"))?.metadata?.name, "node-1");
      assert(performance.now() - started >= 140, "the answer should come after the delay");
    }, [NODE]);
  },
);

Deno.test(
  "fault injection: a dropped connection is a network error to the client, retried like one",
  async () => {
    await withServer(async (server) => {
      server.injectFault({ method: "GET", pathPrefix: "/api/v1/nodes/", count: 1, drop: true });
      const once = client(server, { retries: 0 });
      const dropped = await assertRejects(() => once.getNode("node-1"), KubeError, `Cannot get Node "node-1"`);
      assertEquals((dropped as KubeError).status, 0);

      server.injectFault({ method: "GET", pathPrefix: "/api/v1/nodes/", count: 1, drop: true });
      const retrying = client(server, { retries: 2, backoffCapMs: 5 });
      assertEquals((await retrying.getNode("node-1"))?.metadata?.name, "node-1");
      assertEquals(server.requests.map((r) => r.status), [0, 0, 200]);
    }, [NODE]);
  },
);

Deno.test(
  "the request log records method, path, raw query, user agent, status, content type and body",
  async () => {
    await withServer(async (server) => {
      const kube = client(server);
      const before = Date.now();
      await kube.createConfigMap(configMap("logged", { a: "1" }));
      await kube.listConfigMaps("app in (a,b)");
      await kube.patchNodeStatus("node-1", { status: { conditions: [{ type: "Ready", status: "True" }] } });
      assertEquals(server.requests.length, 3);
      const [create, list, patch] = server.requests;
      assertEquals([create.method, create.path, create.status], ["POST", `/api/v1/namespaces/${NS}/configmaps`, 201]);
      assertEquals(JSON.parse(create.body).data, { a: "1" });
      assertEquals(create.contentType, "application/json");
      assertEquals(create.userAgent, "fake-test/1");
      assert(create.time >= before && create.time <= Date.now());
      assertEquals([list.method, new URLSearchParams(list.query).get("labelSelector")], ["GET", "app in (a,b)"]);
      assertEquals([patch.method, patch.path, patch.contentType], [
        "PATCH",
        "/api/v1/nodes/node-1/status",
        "application/strategic-merge-patch+json",
      ]);
      server.clearRequests();
      assertEquals(server.requests, []);
      await call(server, "GET", "/_fake/requests");
      assertEquals(server.requests, [], "control requests are not logged");
    }, [NODE]);
  },
);

Deno.test("direct store access: put, get, list, remove, each bumping the resourceVersion", async () => {
  await withServer(async (server) => {
    const first = server.put(configMap("a", { k: "1" }));
    assertMatch(first.metadata.uid, /^[0-9a-f-]{36}$/);
    const second = server.put({ ...configMap("a", { k: "2" }) });
    assertEquals(second.metadata.uid, first.metadata.uid);
    assert(Number(second.metadata.resourceVersion) > Number(first.metadata.resourceVersion));
    server.put({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "b" } });
    assertEquals(server.list("configmaps").map((c) => `${c.metadata.namespace}/${c.metadata.name}`), [
      "default/b",
      `${NS}/a`,
    ]);
    assertEquals(server.list("configmaps", NS).length, 1);
    server.remove("configmaps", NS, "a");
    assertEquals(server.get("configmaps", NS, "a"), undefined);
    const list = await call(server, "GET", "/api/v1/namespaces/default/configmaps");
    assertEquals(list.json.metadata.resourceVersion, "4");
  });
});

Deno.test(
  "as its own process: --seed, --kubeconfig-out, the /_fake/ control endpoints, SIGTERM",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "fake-kube-test-" });
    const [exe, ...args] = fakeKubeApiServerCommand(seededServerFlags(dir));
    const child = new Deno.Command(exe, {
      args,
      stdout: "piped",
      stderr: "inherit",
    });
    await Deno.writeTextFile(`${dir}/seed.json`, JSON.stringify([configMap("seeded", { a: "1" }), NODE]));
    const process = child.spawn();
    const lines = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      const { value } = await lines.read();
      const url = value?.match(/^listening on (https:\/\/127\.0\.0\.1:\d+)$/m)?.[1];
      assert(url, `expected "listening on https://127.0.0.1:PORT", got ${JSON.stringify(value)}`);
      const connection = loadConnection({ kind: "kubeconfig", path: `${dir}/kubeconfig` }, {})!;
      assertEquals(connection.server, url);
      const kube = createKubeClient(connection, { userAgent: "separate/1", retries: 0 });
      assertEquals((await kube.getConfigMap("seeded"))?.data, { a: "1" });
      assertEquals((await kube.getNode("node-1"))?.status?.conditions?.length, 2);

      const httpClient = Deno.createHttpClient({ caCerts: [connection.caCert!] });
      const control = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(`${url}/_fake/${path}`, {
          method,
          headers: { Authorization: `Bearer ${connection.token}` },
          body: body === undefined ? undefined : JSON.stringify(body),
          client: httpClient,
        });
        const text = await response.text();
        return { status: response.status, json: text ? JSON.parse(text) : null };
      };
      try {
        const log = await control("GET", "requests");
        assertEquals(log.json.map((r: { path: string; userAgent: string }) => [r.path, r.userAgent]), [
          [`/api/v1/namespaces/${NS}/configmaps/seeded`, "separate/1"],
          ["/api/v1/nodes/node-1", "separate/1"],
        ]);
        assertEquals(
          (await control("POST", "faults", { method: "GET", pathPrefix: "/api/v1/nodes", count: 1, status: 503 }))
            .status,
          204,
        );
        await assertRejects(() => kube.getNode("node-1"), KubeError, "503");
        assertEquals((await kube.getNode("node-1"))?.metadata?.name, "node-1");
        assertEquals((await control("DELETE", "requests")).status, 204);
        assertEquals((await control("GET", "requests")).json, []);

        const put = await control("PUT", "objects", [configMap("from-control", { b: "2" })]);
        assertEquals(put.json[0].metadata.name, "from-control");
        assertEquals((await kube.getConfigMap("from-control"))?.data, { b: "2" });
        await kube.replaceConfigMap({ ...(await kube.getConfigMap("from-control"))!, data: { b: "3" } });
        assertEquals((await control("GET", `objects/configmaps/${NS}/from-control`)).json.data, { b: "3" });
        assertEquals((await control("GET", "objects/nodes/node-1")).json.metadata.name, "node-1");
        assertEquals((await control("GET", `objects/configmaps/${NS}`)).json.length, 2);
        assertEquals((await control("GET", "objects/nodes/none")).status, 404);
        assertEquals((await control("DELETE", `objects/configmaps/${NS}/from-control`)).status, 204);
        assertEquals(await kube.getConfigMap("from-control"), null);
        assertEquals((await control("POST", "tokens", { token: "t2", username: "bob", groups: [] })).status, 204);
        assertEquals((await control("POST", "faults", [{ pathPrefix: "/api", count: 5, status: 500 }])).status, 204);
        assertEquals((await control("DELETE", "faults")).status, 204);
        // RBAC from manifests/ by default: bob has no binding; a token in system:masters may do anything.
        await assertRejects(
          () => createKubeClient({ ...connection, token: "t2" }, { userAgent: "bob", retries: 0 }).getNode("node-1"),
          KubeError,
          `403 Forbidden: nodes "node-1" is forbidden: User "bob" cannot get resource "nodes" in API group "" at the cluster scope`,
        );
        const root = { token: "t3", username: "root", groups: ["system:masters"] };
        assertEquals((await control("POST", "tokens", root)).status, 204);
        assertEquals(
          (await createKubeClient({ ...connection, token: "t3" }, { userAgent: "root" }).getNode("node-1"))?.metadata
            ?.name,
          "node-1",
        );
      } finally {
        httpClient.close();
      }
      process.kill("SIGTERM");
      assertEquals((await process.status).code, 0);
    } finally {
      lines.releaseLock();
      await process.stdout.cancel().catch(() => {});
      try {
        process.kill("SIGKILL");
      } catch {
        // already exited
      }
      await process.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("the full @kubernetes/client-node KubeConfig and CoreV1Api accept the kubeconfig and the TLS", async () => {
  await withServer(async (server) => {
    // The package's index loads every API group; only this test needs it.
    const { KubeConfig, CoreV1Api } = await import("@kubernetes/client-node");
    const config = new KubeConfig();
    config.loadFromFile(server.kubeconfigPath);
    const api = config.makeApiClient(CoreV1Api);
    const read = await api.readNamespacedConfigMap({ name: "ccm", namespace: NS });
    assertEquals(read.data, { a: "1" });
    const pods = await api.listPodForAllNamespaces({ fieldSelector: "spec.nodeName=n1" });
    assertEquals(pods.items.map((p) => p.metadata?.name), ["a"]);
    assertStringIncludes(server.requests[0].path, "/configmaps/ccm");
  }, [configMap("ccm", { a: "1" }), pod("a", "ns1", "n1"), pod("b", "ns1", "n2")]);
});

Deno.test("another listen address gets a certificate from the same CA", {
  ignore: skipUnless(hasCommand("openssl"), "openssl is needed to sign a certificate for 127.0.0.2"),
}, async () => {
  const server = await startFakeKubeApiServer({ hostname: "127.0.0.2", seed: [NODE] });
  try {
    assertMatch(server.url, /^https:\/\/127\.0\.0\.2:\d+$/);
    assertEquals((await client(server).getNode("node-1"))?.metadata?.name, "node-1");
  } finally {
    await server.close();
  }
});

Deno.test("a list with limit comes in pages of one snapshot; a used or unknown continue token gets 410 Expired", async () => {
  await withServer(async (server) => {
    const path = `/api/v1/namespaces/${NS}/configmaps`;
    const first = await call(server, "GET", `${path}?limit=2`);
    assertEquals(first.status, 200);
    assertEquals(first.json.items.length, 2);
    assertEquals(first.json.metadata.remainingItemCount, 3);
    const snapshot = first.json.metadata.resourceVersion;
    // A write between pages is not in this list: its pages stay at the first page's resourceVersion.
    server.put(configMap("f", { v: "f" }));
    const token = first.json.metadata.continue;
    const second = await call(server, "GET", `${path}?limit=2&continue=${encodeURIComponent(token)}`);
    const third = await call(
      server,
      "GET",
      `${path}?limit=2&continue=${encodeURIComponent(second.json.metadata.continue)}`,
    );
    assertEquals([second.json.metadata.resourceVersion, third.json.metadata.resourceVersion], [snapshot, snapshot]);
    assertEquals(third.json.metadata.continue, undefined);
    const names = [first, second, third].flatMap((p) => p.json.items.map((i: V1ConfigMap) => i.metadata?.name));
    assertEquals(names.sort(), ["a", "b", "c", "d", "e"]);
    for (const stale of [token, "bm90LWEtdG9rZW4="]) {
      const expired = await call(server, "GET", `${path}?limit=2&continue=${encodeURIComponent(stale)}`);
      assertEquals([expired.status, expired.json.reason], [410, "Expired"]);
    }
    assertEquals((await call(server, "GET", `${path}?limit=-1`)).status, 400);
    assertEquals((await call(server, "GET", path)).json.items.length, 6, "without limit, one page");
  }, ["a", "b", "c", "d", "e"].map((name) => configMap(name, { v: name })));
});
