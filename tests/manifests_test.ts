import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { loadAll } from "js-yaml";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { parseCommandLine } from "../main.ts";
import { runMain } from "./support/daemon_process.ts";

const DIR = new URL("../manifests/", import.meta.url);
// deno-lint-ignore no-explicit-any
type Doc = any;

function loadManifests(): { file: string; doc: Doc }[] {
  const docs: { file: string; doc: Doc }[] = [];
  for (const entry of Deno.readDirSync(DIR)) {
    if (!entry.name.endsWith(".yaml") || entry.name === "kustomization.yaml") continue;
    for (const doc of loadAll(Deno.readTextFileSync(new URL(entry.name, DIR)))) {
      if (doc) docs.push({ file: entry.name, doc });
    }
  }
  return docs;
}

const MODELS: Record<string, new (data: Doc) => { validate(): void }> = {
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "apps/v1/DaemonSet": DaemonSet,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
};

const docs = loadManifests();
const daemonSet = docs.find((d) => d.doc.kind === "DaemonSet")!.doc;
const container = daemonSet.spec.template.spec.containers[0];
const args: string[] = container.args;

Deno.test("every manifest parses and validates against the Kubernetes schemas; kustomization lists them all", () => {
  assert(docs.length >= 8, `documents: ${docs.length}`);
  for (const { file, doc } of docs) {
    const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
    assert(Model, `${file}: no schema for ${doc.apiVersion} ${doc.kind}`);
    new Model(doc).validate();
  }
  const kustomization = loadAll(Deno.readTextFileSync(new URL("kustomization.yaml", DIR)))[0] as Doc;
  const files = [...Deno.readDirSync(DIR)].map((e) => e.name).filter((n) =>
    n.endsWith(".yaml") && n !== "kustomization.yaml"
  );
  assertEquals([...kustomization.resources].sort(), files.sort());
  assertEquals(kustomization.namespace, "kube-system");
});

Deno.test("the DaemonSet keeps the original's identity and adds what the issue asks", () => {
  assertEquals(daemonSet.metadata.name, "polarstack-daemon");
  assertEquals(daemonSet.metadata.labels.app, "polarstack-daemon");
  const pod = daemonSet.spec.template.spec;
  assertEquals(pod.hostNetwork, true);
  assertEquals(pod.dnsPolicy, "ClusterFirstWithHostNet");
  assertEquals(pod.serviceAccountName, "cloud-controller-manager");
  assertEquals(pod.priorityClassName, "system-node-critical");
  assert(pod.tolerations.some((t: Doc) => t.key === "CriticalAddonsOnly"));
  assert(pod.tolerations.some((t: Doc) => t.key === "node-role.kubernetes.io/master"));
  assertEquals(container.resources.requests, { cpu: "10m", memory: "96Mi" });
  assertEquals(container.resources.limits, { cpu: "500m", memory: "512Mi" });
  assertEquals(container.securityContext.readOnlyRootFilesystem, true);
  assertEquals(container.securityContext.capabilities.drop, ["ALL"]);
  const env = container.env.find((e: Doc) => e.name === "CURRENT_NODE_NAME");
  assertEquals(env.valueFrom.fieldRef.fieldPath, "spec.nodeName");
  assertEquals(container.envFrom[0].configMapRef.name, "ccm-config");
  const rolling = daemonSet.spec.updateStrategy.rollingUpdate.maxUnavailable;
  assert(typeof rolling === "string" && Number(rolling.replace("%", "")) <= 10, `maxUnavailable ${rolling}`);
});

Deno.test("every flag in the DaemonSet is one the daemon accepts, with a valid value", async () => {
  const invocation = parseCommandLine(args);
  assertEquals(invocation.kind, "daemon");
  const { stdout } = await runMain(["--help"]);
  for (const arg of args) {
    const name = /^--([a-z0-9-]+)/.exec(arg)?.[1];
    assert(name, `not a long flag: ${arg}`);
    assert(stdout.includes(`--${name} `), `--help does not list --${name}`);
  }
});

Deno.test("probe ports equal --port; every host path the daemon uses by default is mounted", () => {
  const { config } = parseCommandLine(args);
  assertEquals(container.livenessProbe.httpGet.path, "/healthz");
  assertEquals(container.readinessProbe.httpGet.path, "/readyz");
  assertEquals(container.livenessProbe.httpGet.port, config.port);
  assertEquals(container.readinessProbe.httpGet.port, config.port);
  assertEquals(container.ports[0].containerPort, config.port);
  const mounts: string[] = container.volumeMounts.map((m: Doc) => m.mountPath);
  const mounted = (path: string) => mounts.some((m) => path === m || path.startsWith(m.endsWith("/") ? m : `${m}/`));
  const used = [
    config.dbclusterLogDir.replace(/\/+$/, ""),
    config.dockerHost.replace("unix://", ""),
    "/run/containerd/containerd.sock",
    config.logFile.slice(0, config.logFile.lastIndexOf("/")),
  ];
  for (const path of used) assert(mounted(path), `${path} is not mounted`);
  const volumes = new Map(daemonSet.spec.template.spec.volumes.map((v: Doc) => [v.name, v]));
  for (const mount of container.volumeMounts) assert(volumes.has(mount.name), `volume ${mount.name} missing`);
});

Deno.test("RBAC has no wildcards, no secrets, no delete on nodes, and only what must be cluster-wide", () => {
  const rules = docs.filter((d) => d.doc.kind === "Role" || d.doc.kind === "ClusterRole")
    .flatMap((d) => d.doc.rules.map((r: Doc) => ({ kind: d.doc.kind, ...r })));
  for (const rule of rules) {
    for (const field of ["apiGroups", "resources", "verbs"]) assert(!rule[field].includes("*"), `wildcard in ${field}`);
    assert(!rule.resources.includes("secrets"), "secrets");
    if (rule.resources.some((r: string) => r.startsWith("nodes"))) {
      assert(!rule.verbs.includes("delete"), "delete nodes");
    }
  }
  const clusterResources = rules.filter((r) => r.kind === "ClusterRole").flatMap((r) => r.resources).sort();
  assertEquals(clusterResources, ["events", "nodes", "nodes/status", "pods", "tokenreviews"]);
  const roleResources = rules.filter((r) => r.kind === "Role").flatMap((r) => r.resources);
  assertEquals(roleResources, ["configmaps"]);
});

Deno.test("the Dockerfile: multi-stage, pinned bases, distroless final stage with the binary only, no ADD of URLs", () => {
  const text = Deno.readTextFileSync(new URL("../Dockerfile", import.meta.url));
  const froms = [...text.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
  assert(froms.length >= 2, "multi-stage");
  for (const image of froms) {
    assert(
      !/:latest$/.test(image) && (/@sha256:[0-9a-f]{64}$/.test(image) || /:[\w.-]*\d[\w.-]*$/.test(image)),
      `not pinned: ${image}`,
    );
  }
  assertMatch(froms[0], /^denoland\/deno:.*2\.9\.6$/);
  assertMatch(froms[froms.length - 1], /^gcr\.io\/distroless\/cc-debian12@sha256:/);
  assert(!/^ADD\s+https?:/im.test(text), "ADD of a URL");
  assertMatch(text, /RUN deno task compile/);
  const final = text.slice(text.lastIndexOf("\nFROM "));
  assert(!/^RUN /m.test(final), "no RUN (no shell) in the final stage");
  assertMatch(final, /^ENTRYPOINT \["\/polarstack-daemon"\]$/m);
});

Deno.test("deno task compile: a binary that runs, or one clear line naming DENORT_BIN when offline", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "compile"],
    cwd: new URL("../", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr).trim();
  if (output.success) {
    const binary = new URL("../dist/polarstack-daemon", import.meta.url).pathname;
    const version = await new Deno.Command(binary, { args: ["--version"], stdout: "piped" }).output();
    assertMatch(new TextDecoder().decode(version.stdout).trim(), /^\d+\.\d+\.\d+$/);
    const once = await new Deno.Command(binary, {
      args: ["once", "port-usage", "--local", "--json", "--port-ranges", "1-65535"],
      stdout: "piped",
      stderr: "null",
    }).output();
    assertEquals(once.code, 0);
    assert(Array.isArray(JSON.parse(new TextDecoder().decode(once.stdout)).used));
  } else {
    console.error(`deno compile could not run here: ${stderr}`);
    assertEquals(stderr.split("\n").length, 1, stderr);
    assertMatch(stderr, /^Cannot compile: .*runtime base \(denort\).*DENORT_BIN=/);
  }
});
