import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { loadAll } from "js-yaml";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { parseCommandLine } from "../../config/command_line.ts";
import { ARGS_ENV, argsFromEnv } from "../../config/flags.ts";
import { defaultConfig } from "../../config/config.ts";
import { strategicMergePatch } from "../fake_kube/patch.ts";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const DIR = new URL("../../manifests/", import.meta.url);
// deno-lint-ignore no-explicit-any
type Doc = any;

function loadYamlDocs(url: URL): Doc[] {
  return loadAll(Deno.readTextFileSync(url)).filter(Boolean);
}

/** What `kubectl apply -k` of `dir` sends: the documents of the kustomization's resources. */
function kustomizationResources(dir: URL): { file: string; doc: Doc }[] {
  const kustomization = loadYamlDocs(new URL("kustomization.yaml", dir))[0];
  return (kustomization.resources as string[]).flatMap((file) =>
    loadYamlDocs(new URL(file, dir)).map((doc) => ({ file, doc }))
  );
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

const docs = kustomizationResources(DIR);
const daemonSet = docs.find((d) => d.doc.kind === "DaemonSet")!.doc;
const container = daemonSet.spec.template.spec.containers[0];
// The DaemonSet passes the flags in the environment (one a line), which `once` in the pod reads too.
const args: string[] = argsFromEnv(container.env.find((e: Doc) => e.name === ARGS_ENV)?.value);
const examples = loadYamlDocs(new URL("examples/config_maps.yaml", DIR));

Deno.test("every manifest parses and validates against the Kubernetes schemas; kustomization lists them all", () => {
  assert(docs.length >= 6, `documents: ${docs.length}`);
  for (const { file, doc } of [...docs, ...examples.map((doc) => ({ file: "examples/config_maps.yaml", doc }))]) {
    const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
    assert(Model, `${file}: no schema for ${doc.apiVersion} ${doc.kind}`);
    new Model(doc).validate();
  }
  const kustomization = loadAll(Deno.readTextFileSync(new URL("kustomization.yaml", DIR)))[0] as Doc;
  const files = [...Deno.readDirSync(DIR)].filter((e) => e.isFile).map((e) => e.name).filter((n) =>
    n.endsWith(".yaml") && n !== "kustomization.yaml"
  );
  assertEquals([...kustomization.resources].sort(), files.sort());
  assertEquals(kustomization.namespace, "kube-system");
});

Deno.test("kubectl apply -k manifests/ creates and changes no ConfigMap: ccm-config and controller-config are others'", () => {
  const configMaps = docs.filter((d) => d.doc.kind === "ConfigMap").map((d) => `${d.file}: ${d.doc.metadata.name}`);
  assertEquals(configMaps, []);
  // The examples stay outside: no resource of the kustomization points into examples/.
  const kustomization = loadYamlDocs(new URL("kustomization.yaml", DIR))[0];
  assertEquals((kustomization.resources as string[]).filter((r) => r.includes("examples")), []);
  assertEquals(examples.map((d) => d.metadata.name).sort(), ["ccm-config", "controller-config"]);
  // The pod still starts where the site has no ccm-config.
  assertEquals(container.envFrom, [{ configMapRef: { name: "ccm-config", optional: true } }]);
});

Deno.test("the DaemonSet keeps the original's identity and adds what the issue asks", () => {
  assertEquals(daemonSet.metadata.name, "polarstack-daemon");
  assertEquals(daemonSet.metadata.labels.app, "polarstack-daemon");
  const pod = daemonSet.spec.template.spec;
  assertEquals(pod.hostNetwork, true);
  assertEquals(pod.dnsPolicy, "ClusterFirstWithHostNet");
  assertEquals(pod.priorityClassName, "system-node-critical");
  // Every taint, whatever its key and effect: the original's CriticalAddonsOnly, masters and the cloud provider's
  // node.cloudprovider.kubernetes.io/uninitialized among them.
  assertEquals(pod.tolerations, [{ operator: "Exists" }]);
  assertEquals([container.livenessProbe.failureThreshold, container.livenessProbe.timeoutSeconds], [5, 3]);
  assertEquals(container.resources.requests, { cpu: "10m", memory: "96Mi" });
  assertEquals(container.resources.limits, { cpu: "500m", memory: "512Mi" });
  assertEquals(container.securityContext.readOnlyRootFilesystem, true);
  assertEquals(container.securityContext.capabilities.drop, ["ALL"]);
  const env = container.env.find((e: Doc) => e.name === "CURRENT_NODE_NAME");
  assertEquals(env.valueFrom.fieldRef.fieldPath, "spec.nodeName");
  const rolling = daemonSet.spec.updateStrategy.rollingUpdate.maxUnavailable;
  assert(typeof rolling === "string" && Number(rolling.replace("%", "")) <= 10, `maxUnavailable ${rolling}`);
});

Deno.test("probe ports equal --port; every host path the daemon uses by default is mounted", () => {
  const { config } = parseCommandLine(args, { env: {} });
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
  assertEquals(clusterResources, [
    "events",
    "mpdclusters",
    "mpdclusters/status",
    "nodes",
    "nodes/status",
    "pods",
    "tokenreviews",
  ]);
  const roleResources = rules.filter((r) => r.kind === "Role").flatMap((r) => r.resources);
  assertEquals(roleResources, ["configmaps", "leases"]);
});

Deno.test("the Dockerfile: multi-stage, pinned bases, distroless final stage with the binary only, no ADD of URLs", () => {
  const text = Deno.readTextFileSync(new URL("../../Dockerfile", import.meta.url));
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
  // `command: polarstack-daemon` (the original's DaemonSet) finds the binary on distroless's PATH.
  const distrolessPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".split(":");
  const copied = [...final.matchAll(/^COPY\s+--from=build\s+\S+\s+(\S+)$/gm)].map((m) => m[1]);
  assertEquals(copied, ["/usr/local/bin/polarstack-daemon"]);
  const [dir, name] = [copied[0].slice(0, copied[0].lastIndexOf("/")), copied[0].slice(copied[0].lastIndexOf("/") + 1)];
  assert(distrolessPath.includes(dir), `${dir} is not on the image's PATH`);
  assertEquals(name, "polarstack-daemon");
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(final)?.[1] ?? "null");
  assertEquals(entrypoint, [copied[0]]);
});

Deno.test("the manifests deploy the original's values; the flags keep the original's defaults", () => {
  const { config } = parseCommandLine(args, { env: {} });
  assertEquals([config.dbclusterLogDir, config.insFolderOverdueDays], ["/disk1/polardb/", 7]);
  assertEquals([defaultConfig().dbclusterLogDir, defaultConfig().insFolderOverdueDays], [
    "/flash/polardb_dbcluster/",
    3,
  ]);
  const mount = container.volumeMounts.find((m: Doc) => config.dbclusterLogDir.startsWith(`${m.mountPath}/`));
  const volume = daemonSet.spec.template.spec.volumes.find((v: Doc) => v.name === mount?.name);
  assertEquals(volume?.hostPath?.path, "/disk1/polardb", "the host's log root is what is mounted");
});

Deno.test("its own identity: ServiceAccount polarstack-daemon, bound by every binding, allowed by --api-allowed-users", () => {
  const accounts = docs.filter((d) => d.doc.kind === "ServiceAccount").map((d) => d.doc.metadata);
  assertEquals(accounts, [{ name: "polarstack-daemon", namespace: "kube-system" }]);
  assertEquals(daemonSet.spec.template.spec.serviceAccountName, "polarstack-daemon");
  for (const binding of docs.filter((d) => d.doc.kind.endsWith("Binding"))) {
    assertEquals(binding.doc.subjects, [{
      kind: "ServiceAccount",
      name: "polarstack-daemon",
      namespace: "kube-system",
    }]);
  }
  assertEquals(defaultConfig().apiAllowedUsers, "system:serviceaccount:kube-system:polarstack-daemon");
});

Deno.test("the fan-out's token: a projected token for the audience polarstack-daemon, where --peer-token-file reads", () => {
  const { config } = parseCommandLine(args, { env: {} });
  const file = config.peerTokenFile;
  const mount = container.volumeMounts.find((m: Doc) => file.startsWith(`${m.mountPath}/`));
  assert(mount, `${file} is not mounted`);
  assertEquals(mount.readOnly, true);
  const volume = daemonSet.spec.template.spec.volumes.find((v: Doc) => v.name === mount.name);
  assertEquals(volume.projected.sources, [{
    serviceAccountToken: {
      audience: "polarstack-daemon",
      expirationSeconds: 3600,
      path: file.slice(mount.mountPath.length + 1),
    },
  }]);
});

Deno.test("the DaemonSet's flags are in $POLARSTACK_DAEMON_ARGS, which `once` in the pod reads; typed flags win", () => {
  assertEquals(container.args, undefined, "the flags live in one place");
  const env = { [ARGS_ENV]: container.env.find((e: Doc) => e.name === ARGS_ENV).value };
  const once = parseCommandLine(["once", "port-usage", "--dry-run", "--json"], { env });
  assertEquals(once.kind, "once");
  assertEquals(once.config, parseCommandLine([], { env }).config, "the pod's daemon and `once` share one config");
  assertEquals(once.config.hostCommandPrefix, "nsenter -t 1 -m --");
  const typed = parseCommandLine(["once", "log-cleanup", "--ins-folder-overdue-days=30"], { env });
  assertEquals([typed.config.insFolderOverdueDays, typed.config.dbclusterLogDir], [30, "/disk1/polardb/"]);
  assertEquals(parseCommandLine(["--v=7"], { env }).config.v, 7);
  assertEquals(
    parseCommandLine(["once", "port-usage"], { env: {} }).config.dbclusterLogDir,
    "/flash/polardb_dbcluster/",
  );
});

Deno.test("components/ipmi: a kustomize Component whose patch makes the daemon's container privileged", () => {
  const componentDir = new URL("components/ipmi/", DIR);
  const component = loadYamlDocs(new URL("kustomization.yaml", componentDir))[0];
  assertEquals([component.apiVersion, component.kind], ["kustomize.config.k8s.io/v1alpha1", "Component"]);
  assert(component.patches.length > 0);
  let patched = structuredClone(daemonSet);
  for (const entry of component.patches) {
    // The target selects the base's DaemonSet, as kustomize would: by kind and name.
    const targets = docs.filter((d) => d.doc.kind === entry.target.kind && d.doc.metadata.name === entry.target.name);
    assertEquals(targets.map((d) => d.doc.kind), ["DaemonSet"]);
    const patch = loadYamlDocs(new URL(entry.path, componentDir))[0];
    const names = patch.spec.template.spec.containers.map((c: Doc) => c.name);
    const baseNames = daemonSet.spec.template.spec.containers.map((c: Doc) => c.name);
    for (const name of names) assert(baseNames.includes(name), `the patch names container "${name}", not in the base`);
    patched = strategicMergePatch(patched, patch, {
      mergeKeys: { "spec.template.spec.containers": "name", "spec.template.spec.volumes": "name" },
    });
  }
  new DaemonSet(patched).validate();
  const containers = patched.spec.template.spec.containers;
  assertEquals(containers.length, 1, "merged into the base container, not added beside it");
  assertEquals(containers[0].securityContext.privileged, true);
  assertEquals(containers[0].securityContext.allowPrivilegeEscalation, true, "privileged needs it");
  assertEquals(containers[0].image, container.image, "the rest of the container is the base's");
});

Deno.test("monitoring: a Component that builds with the base; the base alone needs no Prometheus Operator CRD", () => {
  const componentDir = new URL("monitoring/", DIR);
  const component = loadYamlDocs(new URL("kustomization.yaml", componentDir))[0];
  assertEquals([component.apiVersion, component.kind], ["kustomize.config.k8s.io/v1alpha1", "Component"]);
  // What kustomize adds to the base: the component's resources and the ConfigMap of its generator.
  const added: Doc[] = (component.resources as string[]).flatMap((file) => loadYamlDocs(new URL(file, componentDir)));
  for (const generator of component.configMapGenerator) {
    const data: Record<string, string> = {};
    for (const entry of generator.files as string[]) {
      const [key, file] = entry.includes("=") ? entry.split("=") : [entry.slice(entry.lastIndexOf("/") + 1), entry];
      data[key] = Deno.readTextFileSync(new URL(file, componentDir));
    }
    assertEquals(generator.options.disableNameSuffixHash, true, "the sidecar and the README name it");
    const configMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: generator.name, namespace: generator.namespace, labels: generator.options.labels },
      data,
    };
    new ConfigMap(configMap).validate();
    added.push(configMap);
  }
  const built = [...docs.map((d) => d.doc), ...added];
  const ids = built.map((d) => `${d.apiVersion}/${d.kind}/${d.metadata.namespace ?? ""}/${d.metadata.name}`);
  assertEquals(new Set(ids).size, ids.length, `no object twice: ${ids.join(", ")}`);
  for (const doc of added) assertEquals(doc.metadata.namespace, "kube-system", `${doc.kind} ${doc.metadata.name}`);
  const operatorKinds = (list: Doc[]) =>
    list.filter((d) => d.apiVersion.startsWith("monitoring.coreos.com/")).map((d) => d.kind).sort();
  assertEquals(operatorKinds(added), ["PodMonitor", "PrometheusRule"]);
  // The operator's own schemas (its CRDs' OpenAPI), as for the base's objects.
  const operatorModels: Record<string, new (data: Doc) => { validate(): void }> = { PodMonitor, PrometheusRule };
  for (const doc of added.filter((d) => d.kind in operatorModels)) new operatorModels[doc.kind](doc).validate();
  assertEquals(operatorKinds(docs.map((d) => d.doc)), [], "the base alone needs no Prometheus Operator CRD");
  const base = loadYamlDocs(new URL("kustomization.yaml", DIR))[0];
  assertEquals(base.components, undefined, "the base does not pull the component in");

  // The dashboard: a ConfigMap the Grafana sidecar picks up, holding one dashboard's JSON.
  const dashboard = added.find((d) => d.kind === "ConfigMap");
  assertEquals(dashboard.metadata.labels.grafana_dashboard, "1");
  const files = Object.keys(dashboard.data);
  assertEquals(files.length, 1);
  assertMatch(files[0], /\.json$/);
  assertEquals(JSON.parse(dashboard.data[files[0]]).uid, "polarstack-daemon");

  // The PodMonitor scrapes this DaemonSet's pods on the port the daemon serves, and labels series with the node.
  const podMonitor = added.find((d) => d.kind === "PodMonitor").spec;
  const podLabels = daemonSet.spec.template.metadata.labels;
  for (const [key, value] of Object.entries(podMonitor.selector.matchLabels)) assertEquals(podLabels[key], value);
  assertEquals(podMonitor.namespaceSelector.matchNames, [daemonSet.metadata.namespace]);
  assert(podLabels[podMonitor.jobLabel], `the pods have the job label "${podMonitor.jobLabel}"`);
  const [endpoint] = podMonitor.podMetricsEndpoints;
  const port = container.ports.find((p: Doc) => p.name === endpoint.port);
  const { config } = parseCommandLine(args, { env: {} });
  assertEquals([port?.containerPort, config.port], [8900, 8900]);
  assertEquals(endpoint.path, "/metrics");
  assertEquals(endpoint.honorLabels, true, "the daemon's job label stays");
  assertEquals(endpoint.relabelings, [{ sourceLabels: ["__meta_kubernetes_pod_node_name"], targetLabel: "node" }]);
});
