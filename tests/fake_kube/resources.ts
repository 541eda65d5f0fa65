/** The resources the fake Kubernetes API server serves, and how each one behaves. */

/** A Kubernetes object as JSON. */
// deno-lint-ignore no-explicit-any
export type KubeObject = any;

/** How the fake server treats one resource. */
export interface ResourceInfo {
  /** The kind of its objects, e.g. `ConfigMap`. */
  readonly kind: string;
  /** The API group, `""` for the core group. */
  readonly group: string;
  /** The API version within the group, e.g. `v1`. */
  readonly version: string;
  /** Whether its objects live in a namespace. */
  readonly namespaced: boolean;
  /** Whether it has a `/status` subresource (then the main resource's writes keep the status). */
  readonly hasStatus: boolean;
  /** Whether it is a custom resource (an update needs a resourceVersion; spec changes bump the generation). */
  readonly custom: boolean;
  /** The fields its field selectors may use, as on the real server. */
  readonly fields: readonly string[];
}

const NAME_FIELDS = ["metadata.name", "metadata.namespace"] as const;

/** The resources the fake server serves. */
export const RESOURCES = {
  configmaps: {
    kind: "ConfigMap",
    group: "",
    version: "v1",
    namespaced: true,
    hasStatus: false,
    custom: false,
    fields: NAME_FIELDS,
  },
  nodes: {
    kind: "Node",
    group: "",
    version: "v1",
    namespaced: false,
    hasStatus: true,
    custom: false,
    fields: ["metadata.name", "spec.unschedulable"],
  },
  pods: {
    kind: "Pod",
    group: "",
    version: "v1",
    namespaced: true,
    hasStatus: true,
    custom: false,
    fields: [
      "metadata.name",
      "metadata.namespace",
      "spec.nodeName",
      "spec.restartPolicy",
      "spec.schedulerName",
      "spec.serviceAccountName",
      "spec.hostNetwork",
      "status.phase",
      "status.podIP",
      "status.nominatedNodeName",
    ],
  },
  events: {
    kind: "Event",
    group: "",
    version: "v1",
    namespaced: true,
    hasStatus: false,
    custom: false,
    fields: [
      "metadata.name",
      "metadata.namespace",
      "involvedObject.apiVersion",
      "involvedObject.fieldPath",
      "involvedObject.kind",
      "involvedObject.name",
      "involvedObject.namespace",
      "involvedObject.resourceVersion",
      "involvedObject.uid",
      "reason",
      "type",
    ],
  },
  leases: {
    kind: "Lease",
    group: "coordination.k8s.io",
    version: "v1",
    namespaced: true,
    hasStatus: false,
    custom: false,
    fields: NAME_FIELDS,
  },
  mpdclusters: {
    kind: "MPDCluster",
    group: "mpd.polardb.aliyun.com",
    version: "v1",
    namespaced: true,
    hasStatus: true,
    custom: true,
    fields: NAME_FIELDS,
  },
} as const satisfies Record<string, ResourceInfo>;

/** A resource name of the fake server. */
export type FakeResource = keyof typeof RESOURCES;

/** The resource of a kind (`ConfigMap` -> `configmaps`), or undefined when the fake server does not serve it. */
export function resourceOfKind(kind: string): FakeResource | undefined {
  return (Object.keys(RESOURCES) as FakeResource[]).find((r) => RESOURCES[r].kind === kind);
}

/** Whether a string names a resource of the fake server. */
export function isFakeResource(name: string): name is FakeResource {
  return Object.hasOwn(RESOURCES, name);
}

/** The `apiVersion` of a resource's objects, e.g. `v1` or `coordination.k8s.io/v1`. */
export function apiVersionOf(resource: FakeResource): string {
  const { group, version } = RESOURCES[resource];
  return group ? `${group}/${version}` : version;
}

/** The resource as the real server names it in messages: `configmaps`, `leases.coordination.k8s.io`. */
export function qualifiedResource(resource: FakeResource): string {
  const group = RESOURCES[resource].group;
  return group ? `${resource}.${group}` : resource;
}

/** The kind as the real server names it in messages: `ConfigMap`, `Lease.coordination.k8s.io`. */
export function qualifiedKind(resource: FakeResource): string {
  const { kind, group } = RESOURCES[resource];
  return group ? `${kind}.${group}` : kind;
}

/** RFC 3339 time with seconds, as `creationTimestamp` has it. */
export function kubeTime(date = new Date()): string {
  return date.toISOString().replace(/\.\d+Z$/, "Z");
}
