/** The object store of the fake Kubernetes API server: resources, keys and the global resourceVersion. */

/** A Kubernetes object as JSON. */
// deno-lint-ignore no-explicit-any
export type KubeObject = any;

/** How the fake server treats one resource. */
export interface ResourceInfo {
  /** The kind of its objects, e.g. `ConfigMap`. */
  readonly kind: string;
  /** Whether its objects live in a namespace. */
  readonly namespaced: boolean;
  /** Whether it has a `/status` subresource (then the main resource's writes keep the status). */
  readonly hasStatus: boolean;
  /** The fields its field selectors may use, as on the real server. */
  readonly fields: readonly string[];
}

/** The resources the fake server serves (all core v1). */
export const RESOURCES = {
  configmaps: {
    kind: "ConfigMap",
    namespaced: true,
    hasStatus: false,
    fields: ["metadata.name", "metadata.namespace"],
  },
  nodes: { kind: "Node", namespaced: false, hasStatus: true, fields: ["metadata.name", "spec.unschedulable"] },
  pods: {
    kind: "Pod",
    namespaced: true,
    hasStatus: true,
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
    namespaced: true,
    hasStatus: false,
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

/** RFC 3339 time with seconds, as `creationTimestamp` has it. */
export function kubeTime(date = new Date()): string {
  return date.toISOString().replace(/\.\d+Z$/, "Z");
}

/** The objects, keyed by resource, namespace and name, and the resourceVersion counter every write bumps. */
export class FakeStore {
  #objects = new Map<string, KubeObject>();
  #version = 0;

  /** The current resourceVersion (of the last write), as lists report it. */
  get resourceVersion(): string {
    return String(this.#version);
  }

  #key(resource: FakeResource, namespace: string | undefined, name: string): string {
    return `${resource}/${RESOURCES[resource].namespaced ? namespace ?? "" : ""}/${name}`;
  }

  /** A copy of an object, or undefined. */
  get(resource: FakeResource, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.#objects.get(this.#key(resource, namespace, name));
    return found === undefined ? undefined : structuredClone(found);
  }

  /** Copies of a resource's objects (of one namespace, or all), sorted by namespace and name as etcd returns them. */
  list(resource: FakeResource, namespace?: string): KubeObject[] {
    const prefix = namespace === undefined || !RESOURCES[resource].namespaced
      ? `${resource}/`
      : `${resource}/${namespace}/`;
    return [...this.#objects.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, object]) => structuredClone(object));
  }

  /** Stores an object (its metadata has name and, if namespaced, namespace) with a new resourceVersion. */
  write(resource: FakeResource, object: KubeObject): KubeObject {
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = String(++this.#version);
    this.#objects.set(this.#key(resource, stored.metadata.namespace, stored.metadata.name), stored);
    return structuredClone(stored);
  }

  /** Removes an object (a delete bumps the resourceVersion too); returns it, or undefined when it was absent. */
  remove(resource: FakeResource, namespace: string | undefined, name: string): KubeObject | undefined {
    const key = this.#key(resource, namespace, name);
    const found = this.#objects.get(key);
    if (found === undefined) return undefined;
    this.#objects.delete(key);
    this.#version++;
    return found;
  }

  /**
   * Creates or updates an object directly, as a test's seed: fills apiVersion, namespace (`default`), uid and
   * creationTimestamp (kept from the stored object on update) and bumps the resourceVersion. No validation.
   */
  put(object: KubeObject): KubeObject {
    const resource = resourceOfKind(object?.kind);
    if (!resource) {
      throw new Error(`Cannot store object of kind "${object?.kind}": the fake API server has no such kind`);
    }
    const name = object.metadata?.name;
    if (!name) throw new Error(`Cannot store ${object.kind} without metadata.name`);
    const info = RESOURCES[resource];
    const metadata = { ...object.metadata };
    if (info.namespaced) metadata.namespace ??= "default";
    else delete metadata.namespace;
    const old = this.get(resource, metadata.namespace, name);
    metadata.uid ??= old?.metadata.uid ?? crypto.randomUUID();
    metadata.creationTimestamp ??= old?.metadata.creationTimestamp ?? kubeTime();
    return this.write(resource, { ...object, apiVersion: object.apiVersion ?? "v1", metadata });
  }
}
