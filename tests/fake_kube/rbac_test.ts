/**
 * RBAC of the fake API server: the authorizer against the real server's semantics, then the project's manifests
 * through the daemon's real client: every call the daemon makes is allowed, anything else is a 403.
 */
import { createKubeClient, type KubeClient } from "../../k8s/client.ts";
import { KubeError } from "../../k8s/errors.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../support/assert.ts";
import {
  ADMIN_USER,
  DEFAULT_USER,
  type FakeKubeApiServer,
  fakeKubeApiServerCommand,
  startFakeKubeApiServer,
} from "./server.ts";
import {
  BOOTSTRAP_RBAC,
  createRbacAuthorizer,
  forbiddenStatus,
  parseRbacYaml,
  type RbacAttributes,
  type RbacUser,
  requestAttributes,
} from "./rbac.ts";

const RBAC = "rbac.authorization.k8s.io/v1";
const SA = DEFAULT_USER.username;
const NODE = {
  apiVersion: "v1",
  kind: "Node",
  metadata: { name: "node-1" },
  status: { conditions: [{ type: "Ready", status: "True" }] },
};

function role(name: string, namespace: string | undefined, rules: object[]): object {
  return namespace === undefined
    ? { apiVersion: RBAC, kind: "ClusterRole", metadata: { name }, rules }
    : { apiVersion: RBAC, kind: "Role", metadata: { name, namespace }, rules };
}

function binding(
  name: string,
  namespace: string | undefined,
  roleRef: { kind: "Role" | "ClusterRole"; name: string },
  subjects: object[],
): object {
  const metadata = namespace === undefined ? { name } : { name, namespace };
  const kind = namespace === undefined ? "ClusterRoleBinding" : "RoleBinding";
  return { apiVersion: RBAC, kind, metadata, roleRef: { apiGroup: "rbac.authorization.k8s.io", ...roleRef }, subjects };
}

const user = (username: string, ...groups: string[]): RbacUser => ({ username, groups });
const attrs = (verb: string, resource: string, more: Partial<RbacAttributes> = {}): RbacAttributes => ({
  verb,
  apiGroup: "",
  resource,
  ...more,
});

Deno.test("a Role grants in its namespace only; a ClusterRole through a RoleBinding too; a ClusterRoleBinding everywhere", () => {
  const rbac = createRbacAuthorizer([
    role("cm", "a", [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get"] }]),
    binding("cm", "a", { kind: "Role", name: "cm" }, [{ kind: "User", name: "ann" }]),
    role("pods", undefined, [{ apiGroups: [""], resources: ["pods", "nodes"], verbs: ["list"] }]),
    binding("pods-in-b", "b", { kind: "ClusterRole", name: "pods" }, [{ kind: "User", name: "ann" }]),
    binding("pods", undefined, { kind: "ClusterRole", name: "pods" }, [{ kind: "User", name: "cid" }]),
  ]);
  const ann = user("ann");
  const cid = user("cid");
  const allowed = (u: RbacUser, a: RbacAttributes) => rbac.authorize(u, a).allowed;
  assertEquals(allowed(ann, attrs("get", "configmaps", { namespace: "a", name: "x" })), true);
  assertEquals(allowed(ann, attrs("get", "configmaps", { namespace: "b", name: "x" })), false);
  assertEquals(allowed(ann, attrs("get", "configmaps", { name: "x" })), false, "a Role never grants cluster-wide");
  assertEquals(allowed(ann, attrs("list", "configmaps", { namespace: "a" })), false, "verb not in the rule");
  assertEquals(allowed(ann, attrs("list", "pods", { namespace: "b" })), true);
  assertEquals(allowed(ann, attrs("list", "pods", { namespace: "a" })), false);
  assertEquals(allowed(ann, attrs("list", "pods")), false, "a RoleBinding never grants at the cluster scope");
  assertEquals(allowed(ann, attrs("list", "nodes")), false);
  for (const namespace of ["a", "b", "zz", undefined]) {
    assertEquals(allowed(cid, attrs("list", "pods", { namespace })), true);
  }
  assertEquals(allowed(cid, attrs("list", "nodes")), true);
  assertEquals(allowed(cid, attrs("list", "pods", { apiGroup: "apps" })), false, "another API group");
  assertEquals(rbac.authorize(ann, attrs("list", "pods", { namespace: "b" })), {
    allowed: true,
    reason: `RBAC: allowed by RoleBinding "pods-in-b/b" of ClusterRole "pods" to User "ann"`,
  });
  assertEquals(rbac.authorize(ann, attrs("list", "pods", { namespace: "a" })), { allowed: false, reason: "" });
});

Deno.test("resourceNames limit get and update to the named objects; a list matches only by metadata.name", () => {
  const rbac = createRbacAuthorizer([
    role("own", "ns", [{
      apiGroups: [""],
      resources: ["configmaps"],
      resourceNames: ["mine"],
      verbs: ["get", "list"],
    }]),
    binding("own", "ns", { kind: "Role", name: "own" }, [{ kind: "User", name: "u" }]),
  ]);
  const ask = (method: string, path: string) =>
    rbac.authorize(user("u"), requestAttributes(method, new URL(`https://h${path}`))).allowed;
  assertEquals(ask("GET", "/api/v1/namespaces/ns/configmaps/mine"), true);
  assertEquals(ask("GET", "/api/v1/namespaces/ns/configmaps/other"), false);
  assertEquals(ask("GET", "/api/v1/namespaces/ns/configmaps"), false);
  assertEquals(ask("GET", "/api/v1/namespaces/ns/configmaps?fieldSelector=metadata.name%3Dmine"), true);
  assertEquals(ask("GET", "/api/v1/namespaces/ns/configmaps?fieldSelector=metadata.name%3D%3Dmine,a%3Db"), true);
  assertEquals(ask("GET", "/api/v1/namespaces/ns/configmaps?fieldSelector=metadata.name!%3Dmine"), false);
});

Deno.test("wildcards: * for verbs, API groups, resources, */status for any status, and non-resource URL prefixes", () => {
  const rbac = createRbacAuthorizer([
    role("all-verbs", undefined, [{ apiGroups: [""], resources: ["pods"], verbs: ["*"] }]),
    role("any-group", undefined, [{ apiGroups: ["*"], resources: ["deployments"], verbs: ["get"] }]),
    role("any-resource", undefined, [{ apiGroups: ["apps"], resources: ["*"], verbs: ["list"] }]),
    role("statuses", undefined, [{ apiGroups: [""], resources: ["*/status"], verbs: ["patch"] }]),
    role("metrics", undefined, [{ nonResourceURLs: ["/metrics", "/debug/*"], verbs: ["get"] }]),
    ...["all-verbs", "any-group", "any-resource", "statuses", "metrics"].map((name) =>
      binding(name, undefined, { kind: "ClusterRole", name }, [{ kind: "User", name: "w" }])
    ),
  ]);
  const w = user("w");
  const allowed = (a: RbacAttributes) => rbac.authorize(w, a).allowed;
  for (const verb of ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]) {
    assertEquals(allowed(attrs(verb, "pods", { namespace: "x" })), true, verb);
  }
  assertEquals(allowed(attrs("get", "pods", { subresource: "log", namespace: "x", name: "p" })), false);
  assertEquals(allowed(attrs("get", "deployments", { apiGroup: "apps", namespace: "x", name: "d" })), true);
  assertEquals(allowed(attrs("get", "deployments", { apiGroup: "extensions", namespace: "x", name: "d" })), true);
  assertEquals(allowed(attrs("list", "replicasets", { apiGroup: "apps" })), true);
  assertEquals(allowed(attrs("list", "replicasets", { apiGroup: "batch" })), false);
  assertEquals(allowed(attrs("patch", "nodes", { subresource: "status", name: "n" })), true);
  assertEquals(allowed(attrs("patch", "pods", { subresource: "status", namespace: "x", name: "p" })), true);
  assertEquals(allowed(attrs("patch", "nodes", { name: "n" })), false, "*/status is not the main resource");
  assertEquals(allowed({ verb: "get", apiGroup: "", resource: "", path: "/metrics" }), true);
  assertEquals(allowed({ verb: "get", apiGroup: "", resource: "", path: "/debug/pprof/heap" }), true);
  assertEquals(allowed({ verb: "get", apiGroup: "", resource: "", path: "/metricsx" }), false);
  assertEquals(allowed({ verb: "post", apiGroup: "", resource: "", path: "/metrics" }), false);
});

Deno.test("subjects: service accounts by namespace (the binding's when left out), users, groups; superusers", () => {
  const rbac = createRbacAuthorizer([
    role("read", undefined, [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get"] }]),
    binding("sa", "ns", { kind: "ClusterRole", name: "read" }, [
      { kind: "ServiceAccount", name: "own" },
      { kind: "ServiceAccount", name: "far", namespace: "elsewhere" },
    ]),
    binding("group", "ns", { kind: "ClusterRole", name: "read" }, [
      { kind: "Group", name: "readers", apiGroup: "rbac.authorization.k8s.io" },
    ]),
  ]);
  const get = attrs("get", "configmaps", { namespace: "ns", name: "c" });
  const allowed = (u: RbacUser) => rbac.authorize(u, get).allowed;
  assertEquals(allowed(user("system:serviceaccount:ns:own")), true);
  assertEquals(allowed(user("system:serviceaccount:other:own")), false);
  assertEquals(allowed(user("system:serviceaccount:elsewhere:far")), true);
  assertEquals(allowed(user("system:serviceaccount:ns:far")), false);
  assertEquals(allowed(user("own")), false, "a user named like the service account is not it");
  assertEquals(allowed(user("zoe", "readers")), true);
  assertEquals(allowed(user("readers")), false, "a user named like the group is not in it");
  assertEquals(
    rbac.authorize(user("system:serviceaccount:elsewhere:far"), get).reason,
    'RBAC: allowed by RoleBinding "sa/ns" of ClusterRole "read" to ServiceAccount "far/elsewhere"',
  );
  assertEquals(rbac.authorize(ADMIN_USER, attrs("delete", "nodes", { name: "n" })).allowed, true);
  assertEquals(createRbacAuthorizer([]).authorize(ADMIN_USER, attrs("escalate", "clusterroles")).allowed, true);
});

Deno.test("subresources: a rule on nodes/status does not grant nodes, nor nodes the status", () => {
  const rbac = createRbacAuthorizer([
    role("status", undefined, [{ apiGroups: [""], resources: ["nodes/status"], verbs: ["patch", "update"] }]),
    role("nodes", undefined, [{ apiGroups: [""], resources: ["nodes"], verbs: ["get"] }]),
    binding("status", undefined, { kind: "ClusterRole", name: "status" }, [{ kind: "User", name: "s" }]),
    binding("nodes", undefined, { kind: "ClusterRole", name: "nodes" }, [{ kind: "User", name: "n" }]),
  ]);
  const ask = (u: string, method: string, path: string) =>
    rbac.authorize(user(u), requestAttributes(method, new URL(`https://h${path}`))).allowed;
  assertEquals(ask("s", "PATCH", "/api/v1/nodes/a/status"), true);
  assertEquals(ask("s", "PUT", "/api/v1/nodes/a/status"), true);
  assertEquals(ask("s", "PATCH", "/api/v1/nodes/a"), false);
  assertEquals(ask("s", "GET", "/api/v1/nodes/a/status"), false);
  assertEquals(ask("n", "GET", "/api/v1/nodes/a"), true);
  assertEquals(ask("n", "GET", "/api/v1/nodes/a/status"), false);
});

Deno.test("a binding to a missing role grants nothing and says why; malformed RBAC objects are refused", () => {
  const rbac = createRbacAuthorizer([
    binding("ghost", undefined, { kind: "ClusterRole", name: "ghost" }, [{ kind: "User", name: "u" }]),
    binding("gone", "ns", { kind: "Role", name: "gone" }, [{ kind: "User", name: "u" }]),
  ]);
  assertEquals(rbac.authorize(user("u"), attrs("get", "pods", { namespace: "ns", name: "p" })), {
    allowed: false,
    reason:
      `RBAC: [clusterrole.rbac.authorization.k8s.io "ghost" not found, role.rbac.authorization.k8s.io "gone" not found]`,
  });
  assertEquals(rbac.authorize(user("u"), attrs("get", "nodes", { name: "n" })), {
    allowed: false,
    reason: `RBAC: clusterrole.rbac.authorization.k8s.io "ghost" not found`,
  });
  const bad: Array<[object, string]> = [
    [role("r", undefined, [{ apiGroups: [""], resources: ["pods"] }]), `ClusterRole "r" rules[0]: verbs`],
    [role("r", "ns", [{ resources: ["pods"], verbs: ["get"] }]), "need apiGroups and resources"],
    [role("r", undefined, [{ nonResourceURLs: ["/x"], apiGroups: [""], verbs: ["get"] }]), "cannot be mixed"],
    [role("r", undefined, [{ apiGroups: "", resources: ["pods"], verbs: ["get"] }]), "must be a list of strings"],
    [binding("b", undefined, { kind: "Role", name: "r" }, []), `roleRef.kind "Role" is not allowed`],
    [binding("b", "ns", { kind: "ClusterRole", name: "r" }, [{ kind: "Robot", name: "x" }]), `kind "Robot"`],
    [
      { apiVersion: "rbac.authorization.k8s.io/v1beta1", kind: "Role", metadata: { name: "r", namespace: "n" } },
      "apiVersion",
    ],
    [{ apiVersion: RBAC, kind: "Role", metadata: { name: "r" }, rules: [] }, "metadata.namespace"],
  ];
  for (const [object, message] of bad) assertThrows(() => createRbacAuthorizer([object]), Error, message);
  assertThrows(() => parseRbacYaml("a: [1\n", "broken.yaml"), Error, `Cannot parse "broken.yaml"`);
});

Deno.test("requests map to verbs, groups, resources, subresources, namespaces and names as on the real server", () => {
  const cm = { resource: "configmaps", namespace: "kube-system" };
  const cases: Array<[string, string, Partial<RbacAttributes>]> = [
    ["GET", "/api/v1/namespaces/kube-system/configmaps/x", { ...cm, verb: "get", name: "x" }],
    ["GET", "/api/v1/namespaces/kube-system/configmaps?labelSelector=a", { ...cm, verb: "list" }],
    ["GET", "/api/v1/namespaces/kube-system/configmaps?watch=true", { ...cm, verb: "watch" }],
    ["GET", "/api/v1/namespaces/kube-system/configmaps?watch=1", { ...cm, verb: "watch" }],
    ["GET", "/api/v1/namespaces/kube-system/configmaps?watch=false", { ...cm, verb: "list" }],
    ["PUT", "/api/v1/namespaces/kube-system/configmaps/x", { ...cm, verb: "update", name: "x" }],
    ["GET", "/api/v1/watch/nodes/node-1", { resource: "nodes", verb: "watch", name: "node-1" }],
    ["GET", "/api/v1/nodes?fieldSelector=metadata.name%3Dnode-1&watch=true", {
      resource: "nodes",
      verb: "watch",
      name: "node-1",
    }],
    ["GET", "/api/v1/pods", { resource: "pods", verb: "list" }],
    ["POST", "/api/v1/namespaces/default/events", { resource: "events", verb: "create", namespace: "default" }],
    ["PATCH", "/api/v1/nodes/node-1/status", {
      resource: "nodes",
      verb: "patch",
      name: "node-1",
      subresource: "status",
    }],
    ["DELETE", "/api/v1/namespaces/default/events/e", {
      resource: "events",
      verb: "delete",
      namespace: "default",
      name: "e",
    }],
    ["DELETE", "/api/v1/namespaces/default/events", {
      resource: "events",
      verb: "deletecollection",
      namespace: "default",
    }],
    ["GET", "/api/v1/namespaces/ns1", { resource: "namespaces", verb: "get", namespace: "ns1", name: "ns1" }],
    ["PUT", "/api/v1/namespaces/ns1/status", {
      resource: "namespaces",
      verb: "update",
      namespace: "ns1",
      name: "ns1",
      subresource: "status",
    }],
    ["GET", "/api/v1/namespaces/a%20b/configmaps/c%2Fd", { ...cm, verb: "get", namespace: "a b", name: "c/d" }],
    ["OPTIONS", "/api/v1/nodes/n", { resource: "nodes", verb: "", name: "n" }],
  ];
  for (const [method, path, expected] of cases) {
    assertEquals(
      requestAttributes(method, new URL(`https://h${path}`)),
      { apiGroup: "", subresource: "", namespace: "", name: "", ...expected } as RbacAttributes,
      `${method} ${path}`,
    );
  }
  assertEquals(requestAttributes("POST", new URL("https://h/apis/authentication.k8s.io/v1/tokenreviews")), {
    verb: "create",
    apiGroup: "authentication.k8s.io",
    resource: "tokenreviews",
    subresource: "",
    namespace: "",
    name: "",
  });
  for (const path of ["/version", "/healthz", "/api", "/api/v1", "/apis/apps", "/metrics"]) {
    assertEquals(requestAttributes("GET", new URL(`https://h${path}`)), {
      verb: "get",
      apiGroup: "",
      resource: "",
      path,
    });
  }
});

Deno.test("the 403 message is the real server's, for a name, a collection, the cluster scope, a group and a path", () => {
  const u = user(SA);
  const cases: Array<[RbacAttributes, string, string]> = [
    [
      attrs("delete", "configmaps", { namespace: "kube-system", name: "x" }),
      "",
      `configmaps "x" is forbidden: User "${SA}" cannot delete resource "configmaps" in API group "" in the namespace "kube-system"`,
    ],
    [
      attrs("list", "nodes"),
      "",
      `nodes is forbidden: User "${SA}" cannot list resource "nodes" in API group "" at the cluster scope`,
    ],
    [
      attrs("update", "nodes", { name: "n", subresource: "status" }),
      "RBAC: why",
      `nodes "n" is forbidden: User "${SA}" cannot update resource "nodes/status" in API group "" at the cluster scope: RBAC: why`,
    ],
    [
      attrs("create", "subjectaccessreviews", { apiGroup: "authorization.k8s.io" }),
      "",
      `subjectaccessreviews.authorization.k8s.io is forbidden: User "${SA}" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope`,
    ],
    [
      { verb: "get", apiGroup: "", resource: "", path: "/metrics" },
      "",
      `forbidden: User "${SA}" cannot get path "/metrics"`,
    ],
  ];
  for (const [attributes, reason, message] of cases) {
    assertEquals(forbiddenStatus(u, attributes, reason).message, message);
  }
  assertEquals(forbiddenStatus(u, attrs("get", "secrets", { namespace: "n", name: "s" })).details, {
    name: "s",
    kind: "secrets",
  });
});

/** The manifests' RBAC objects, parsed here independently of the server. */
async function manifestRbac(): Promise<Array<Record<string, unknown> & { kind: string }>> {
  const dir = new URL("../../manifests/", import.meta.url);
  const objects = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!/\.ya?ml$/.test(entry.name)) continue;
    objects.push(...parseRbacYaml(await Deno.readTextFile(new URL(entry.name, dir)), entry.name));
  }
  // deno-lint-ignore no-explicit-any
  return (objects as any[]).filter((o) => /^(Cluster)?Role(Binding)?$/.test(o.kind));
}

Deno.test("the manifests: no wildcard, no secrets, no delete, no node writes but status; bound to the daemon's account", async () => {
  const objects = await manifestRbac();
  assertEquals(objects.map((o) => o.kind).sort(), ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]);
  // deno-lint-ignore no-explicit-any
  const rules = objects.flatMap((o: any) => (o.rules ?? []).map((rule: any) => ({ ...rule, in: o.kind })));
  assert(rules.length > 0);
  for (const rule of rules) {
    const words = [rule.apiGroups, rule.resources, rule.verbs, rule.resourceNames, rule.nonResourceURLs].flat();
    assertEquals(words.filter((w: string | undefined) => w?.includes("*")), [], JSON.stringify(rule));
    assertEquals(rule.resources.filter((r: string) => r.split("/")[0] === "secrets"), [], JSON.stringify(rule));
    assertEquals(
      rule.verbs.filter((v: string) => ["delete", "deletecollection", "escalate", "bind", "impersonate"].includes(v)),
      [],
    );
    if (rule.resources.includes("nodes")) {
      assertEquals(rule.verbs.filter((v: string) => v !== "get" && v !== "watch"), []);
    }
  }
  assertEquals(rules.filter((r) => r.in === "Role").flatMap((r) => r.resources), ["configmaps", "leases"]);
  const account = parseRbacYaml(
    await Deno.readTextFile(new URL("../../manifests/service_account.yaml", import.meta.url)),
    "sa",
  )[0] as { metadata: { name: string; namespace: string } };
  assertEquals(`system:serviceaccount:${account.metadata.namespace}:${account.metadata.name}`, SA);
  for (const bound of objects.filter((o) => o.kind.endsWith("Binding"))) {
    assertEquals(bound.subjects, [{
      kind: "ServiceAccount",
      name: account.metadata.name,
      namespace: account.metadata.namespace,
    }]);
  }
});

/** The JSON answer of a plain HTTPS request with the daemon's token. */
async function rawJson(server: FakeKubeApiServer, method: string, path: string): Promise<unknown> {
  const client = Deno.createHttpClient({ caCerts: [server.caCert] });
  try {
    const answer = await fetch(`${server.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${server.token}` },
      client,
    });
    return await answer.json();
  } finally {
    client.close();
  }
}

async function withServer(fn: (server: FakeKubeApiServer, kube: KubeClient) => Promise<void>): Promise<void> {
  const server = await startFakeKubeApiServer({ seed: [NODE] });
  try {
    await fn(
      server,
      createKubeClient(server.connection(), { userAgent: "rbac-test", retries: 0, qps: 1000, burst: 1000 }),
    );
  } finally {
    await server.close();
  }
}

Deno.test("under the manifests (the default), the daemon's token may make every call the daemon makes", async () => {
  await withServer(async (server, kube) => {
    const created = await kube.createConfigMap({ metadata: { name: "ccm-config" }, data: { a: "1" } });
    assertEquals((await kube.getConfigMap("ccm-config"))?.data, { a: "1" });
    assertEquals(await kube.getConfigMap("absent"), null);
    await kube.replaceConfigMap({ ...created, data: { a: "2" } });
    assertEquals((await kube.listConfigMaps("")).map((c) => c.data), [{ a: "2" }]);
    assertEquals((await kube.getNode("node-1"))?.metadata?.name, "node-1");
    assertEquals(await kube.getNode("node-9"), null, "a missing node is a 404, not a 403");
    const patched = await kube.patchNodeStatus("node-1", {
      status: { conditions: [{ type: "NetworkUnavailable", status: "False" }] },
    });
    assertEquals(patched.status?.conditions?.length, 2);
    server.put({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p", namespace: "kube-system" },
      spec: { nodeName: "node-1" },
    });
    assertEquals((await kube.listPods({ fieldSelector: "spec.nodeName=node-1" })).length, 1);
    assertEquals((await kube.listPods({ namespace: "kube-system", labelSelector: "app" })).length, 0);
    const event = await kube.createEvent({
      metadata: { name: "node-1.1", namespace: "default" },
      involvedObject: { kind: "Node", name: "node-1" },
      reason: "Test",
      message: "m",
      type: "Normal",
      count: 1,
    });
    assertEquals((await kube.patchEvent(event.metadata!.name!, "default", { count: 2 })).count, 2);
    const review = await kube.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: server.token } },
      what: "review a token",
    }) as { status: { user: { username: string } } };
    assertEquals(review.status.user.username, SA);
    // The cluster cache's watches: ConfigMaps of the namespace, by name and by label.
    for (const query of [{ fieldSelector: "metadata.name=ccm-config" }, { labelSelector: "configtype=x" }]) {
      const open = new AbortController();
      await kube.openStream("/api/v1/namespaces/kube-system/configmaps", {
        what: "watch ConfigMaps",
        query: { ...query, watch: "true", allowWatchBookmarks: "true", timeoutSeconds: "5" },
        signal: open.signal,
      });
      open.abort();
    }
    assertEquals(server.requests.filter((r) => r.status === 403), []);
  });
});

Deno.test("under the manifests, anything else is a 403 Forbidden Status, logged, and changes nothing", async () => {
  await withServer(async (server, kube) => {
    server.put({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "kube-system" }, data: {} });
    server.put({
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: "e", namespace: "default" },
      involvedObject: { kind: "Node", name: "node-1" },
    });
    let refusals = 0;
    const refused = async (call: () => Promise<unknown>, message: string) => {
      const error = await assertRejects(call, KubeError, `403 Forbidden: ${message}`);
      assertEquals((error as KubeError).status, 403);
      refusals++;
    };
    const raw = (method: string, path: string, body?: unknown) => () =>
      kube.request(method, path, { body, what: `${method} ${path}` });
    const cannot = (what: string) => `User "${SA}" cannot ${what}`;
    await refused(
      raw("GET", "/api/v1/nodes"),
      `nodes is forbidden: ${cannot('list resource "nodes" in API group "" at the cluster scope')}`,
    );
    await refused(
      raw("PUT", "/api/v1/nodes/node-1", NODE),
      `nodes "node-1" is forbidden: ${cannot('update resource "nodes" in API group "" at the cluster scope')}`,
    );
    await refused(
      raw("PATCH", "/api/v1/nodes/node-1", {}),
      `nodes "node-1" is forbidden: ${cannot('patch resource "nodes" in API group "" at the cluster scope')}`,
    );
    await refused(
      raw("DELETE", "/api/v1/nodes/node-1"),
      `nodes "node-1" is forbidden: ${cannot('delete resource "nodes" in API group "" at the cluster scope')}`,
    );
    await refused(
      raw("DELETE", "/api/v1/namespaces/kube-system/configmaps/x"),
      `configmaps "x" is forbidden: ${
        cannot('delete resource "configmaps" in API group "" in the namespace "kube-system"')
      }`,
    );
    await refused(
      raw("PATCH", "/api/v1/namespaces/kube-system/configmaps/x", {}),
      `configmaps "x" is forbidden: ${
        cannot('patch resource "configmaps" in API group "" in the namespace "kube-system"')
      }`,
    );
    const inDefault = createKubeClient(server.connection(), {
      userAgent: "rbac-test",
      namespace: "default",
      retries: 0,
    });
    await refused(
      () => inDefault.createConfigMap({ metadata: { name: "y" }, data: {} }),
      `configmaps is forbidden: ${cannot('create resource "configmaps" in API group "" in the namespace "default"')}`,
    );
    await refused(
      () => inDefault.getConfigMap("y"),
      `configmaps "y" is forbidden: ${cannot('get resource "configmaps" in API group "" in the namespace "default"')}`,
    );
    await refused(
      raw("GET", "/api/v1/configmaps"),
      `configmaps is forbidden: ${cannot('list resource "configmaps" in API group "" at the cluster scope')}`,
    );
    await refused(
      raw("GET", "/api/v1/namespaces/kube-system/secrets"),
      `secrets is forbidden: ${cannot('list resource "secrets" in API group "" in the namespace "kube-system"')}`,
    );
    await refused(
      raw("GET", "/api/v1/namespaces/kube-system/secrets/token"),
      `secrets "token" is forbidden: ${
        cannot('get resource "secrets" in API group "" in the namespace "kube-system"')
      }`,
    );
    await refused(
      raw("DELETE", "/api/v1/namespaces/default/events/e"),
      `events "e" is forbidden: ${cannot('delete resource "events" in API group "" in the namespace "default"')}`,
    );
    await refused(
      raw("GET", "/api/v1/namespaces/default/events"),
      `events is forbidden: ${cannot('list resource "events" in API group "" in the namespace "default"')}`,
    );
    await refused(
      raw("POST", "/api/v1/namespaces/default/pods", {}),
      `pods is forbidden: ${cannot('create resource "pods" in API group "" in the namespace "default"')}`,
    );
    await refused(raw("GET", "/metrics"), `forbidden: ${cannot('get path "/metrics"')}`);
    // Only ConfigMaps of the namespace are watched: no pods, nodes, or ConfigMaps elsewhere.
    const watch = (path: string) => () => kube.openStream(path, { what: `watch ${path}`, query: { watch: "true" } });
    await refused(
      watch("/api/v1/pods"),
      `pods is forbidden: ${cannot('watch resource "pods" in API group "" at the cluster scope')}`,
    );
    await refused(
      watch("/api/v1/nodes"),
      `nodes is forbidden: ${cannot('watch resource "nodes" in API group "" at the cluster scope')}`,
    );
    await refused(
      watch("/api/v1/namespaces/default/configmaps"),
      `configmaps is forbidden: ${cannot('watch resource "configmaps" in API group "" in the namespace "default"')}`,
    );

    // Nothing changed, every refusal is in the log, and the Status is the real one.
    assertEquals(server.get("configmaps", "kube-system", "x")?.metadata.name, "x");
    assertEquals(server.get("events", "default", "e")?.metadata.name, "e");
    assertEquals(server.get("configmaps", "default", "y"), undefined);
    assertEquals(server.requests.map((r) => r.status), Array(refusals).fill(403));
    assertEquals(await rawJson(server, "DELETE", "/api/v1/namespaces/kube-system/configmaps/x"), {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `configmaps "x" is forbidden: ${
        cannot('delete resource "configmaps" in API group "" in the namespace "kube-system"')
      }`,
      reason: "Forbidden",
      details: { name: "x", kind: "configmaps" },
      code: 403,
    });
    // Discovery and version stay open to every authenticated user, as the bootstrap policy says.
    assertEquals(((await raw("GET", "/version")()) as { major: string }).major, "1");
  });
});

Deno.test("the admin token may do anything; the control endpoints ignore RBAC; rbac: false and { objects }", async () => {
  await withServer(async (server) => {
    const admin = createKubeClient({ ...server.connection(), token: server.adminToken }, {
      userAgent: "admin",
      namespace: "default",
    });
    await admin.createConfigMap({ metadata: { name: "y" }, data: {} });
    assertEquals(
      (await admin.request("GET", "/api/v1/nodes", { what: "list nodes" }) as { items: unknown[] }).items.length,
      1,
    );
    await admin.request("DELETE", "/api/v1/namespaces/default/configmaps/y", { what: "delete" });
    assertEquals(server.get("configmaps", "default", "y"), undefined);
    const review = await admin.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
      body: { spec: { token: server.adminToken } },
      what: "review",
    }) as { status: { user: { username: string; uid: string; groups: string[] } } };
    assertEquals(review.status.user, {
      username: ADMIN_USER.username,
      uid: ADMIN_USER.uid,
      groups: [...ADMIN_USER.groups],
    });
    assertEquals(((await rawJson(server, "GET", "/_fake/objects/nodes")) as unknown[]).length, 1);
  });
  const open = await startFakeKubeApiServer({ seed: [NODE], rbac: false });
  try {
    const kube = createKubeClient(open.connection(), { userAgent: "t" });
    assertEquals(
      (await kube.request("GET", "/api/v1/nodes", { what: "list" }) as { items: unknown[] }).items.length,
      1,
    );
  } finally {
    await open.close();
  }
  const custom = await startFakeKubeApiServer({
    seed: [NODE],
    rbac: {
      objects: [
        role("lister", undefined, [{ apiGroups: [""], resources: ["nodes"], verbs: ["list"] }]),
        binding("lister", undefined, { kind: "ClusterRole", name: "lister" }, [{
          kind: "Group",
          name: "system:serviceaccounts",
        }]),
      ],
    },
  });
  try {
    const kube = createKubeClient(custom.connection(), { userAgent: "t", retries: 0 });
    assertEquals(
      (await kube.request("GET", "/api/v1/nodes", { what: "list" }) as { items: unknown[] }).items.length,
      1,
    );
    await assertRejects(() => kube.getNode("node-1"), KubeError, "403");
  } finally {
    await custom.close();
  }
});

Deno.test("as its own process: --rbac off allows everything, a bad --rbac value fails", async () => {
  const [exe, ...badArgs] = fakeKubeApiServerCommand(["--rbac", "maybe"]);
  const bad = await new Deno.Command(exe, {
    args: badArgs,
    stdout: "null",
    stderr: "piped",
  }).output();
  assertEquals(bad.success, false);
  assert(new TextDecoder().decode(bad.stderr).includes(`Invalid --rbac "maybe": must be manifests or off`));
  const dir = await Deno.makeTempDir({ prefix: "fake-kube-rbac-" });
  const child = new Deno.Command(exe, {
    args: fakeKubeApiServerCommand(["--rbac", "off", "--kubeconfig-out", `${dir}/kubeconfig`]).slice(1),
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const { value } = await lines.read();
    assert(value?.startsWith("listening on https://"), value);
    const { loadConnection } = await import("../../k8s/kube_config.ts");
    const kube = createKubeClient(loadConnection({ kind: "kubeconfig", path: `${dir}/kubeconfig` }, {})!, {
      userAgent: "t",
      retries: 0,
    });
    assertEquals((await kube.request("GET", "/api/v1/nodes", { what: "list" }) as { items: unknown[] }).items, []);
  } finally {
    lines.releaseLock();
    await child.stdout.cancel().catch(() => {});
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bootstrap policy opens discovery and version to authenticated users only", () => {
  const rbac = createRbacAuthorizer(BOOTSTRAP_RBAC);
  const get = (path: string) => ({ verb: "get", apiGroup: "", resource: "", path });
  assertEquals(rbac.authorize(user("x", "system:authenticated"), get("/apis/apps/v1")).allowed, true);
  assertEquals(rbac.authorize(user("x", "system:unauthenticated"), get("/apis/apps/v1")).allowed, false);
  assertEquals(rbac.authorize(user("x", "system:unauthenticated"), get("/version")).allowed, true);
  assertEquals(rbac.authorize(user("x", "system:authenticated"), attrs("list", "nodes")).allowed, false);
});
