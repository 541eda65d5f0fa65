/** The object store of the fake Kubernetes API server: objects, the global resourceVersion and its event history. */
import { apiVersionOf, type FakeResource, type KubeObject, kubeTime, resourceOfKind, RESOURCES } from "./resources.ts";

/** One change of the store, as a watch reports it. */
export interface StoreEvent {
  /** What happened to the object. */
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  /** The object's resource. */
  readonly resource: FakeResource;
  /** The object after the change (for a deletion: its last state, with the deletion's resourceVersion). */
  readonly object: KubeObject;
  /** The object before a modification (a watch with a selector needs both sides). */
  readonly previous?: KubeObject;
  /** The resourceVersion of the change. */
  readonly resourceVersion: number;
}

/** Options of a `FakeStore`. */
export interface FakeStoreOptions {
  /** How many past events a watch may resume from; 1000 by default. */
  historyLimit?: number;
}

/**
 * The objects, keyed by resource, namespace and name, and the resourceVersion counter every write bumps. Every
 * change is kept in a window of past events (the last `historyLimit`) and passed to the listeners at once.
 */
export class FakeStore {
  #objects = new Map<string, KubeObject>();
  #version = 0;
  #history: StoreEvent[] = [];
  #floor = 0;
  #limit: number;
  #listeners = new Set<(event: StoreEvent) => void>();

  /** Builds an empty store. */
  constructor(options: FakeStoreOptions = {}) {
    this.#limit = options.historyLimit ?? 1000;
  }

  /** The current resourceVersion (of the last write), as lists report it. */
  get resourceVersion(): string {
    return String(this.#version);
  }

  /** The newest resourceVersion whose events are gone: a watch may resume from it or any later one. */
  get oldestResourceVersion(): number {
    return this.#floor;
  }

  /** Calls `listener` with every later change; returns the call that stops it. */
  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** The events after `resourceVersion`, in order, or undefined when some of them are gone. */
  eventsSince(resourceVersion: number): StoreEvent[] | undefined {
    if (resourceVersion < this.#floor) return undefined;
    return this.#history.filter((e) => e.resourceVersion > resourceVersion);
  }

  /** Forgets every past event, as an etcd compaction does: no watch may resume from an earlier version. */
  compact(): void {
    this.#history = [];
    this.#floor = this.#version;
  }

  #key(resource: FakeResource, namespace: string | undefined, name: string): string {
    return `${resource}/${RESOURCES[resource].namespaced ? namespace ?? "" : ""}/${name}`;
  }

  #record(event: StoreEvent): void {
    this.#history.push(event);
    while (this.#history.length > this.#limit) this.#floor = this.#history.shift()!.resourceVersion;
    for (const listener of [...this.#listeners]) listener(event);
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
    const key = this.#key(resource, stored.metadata.namespace, stored.metadata.name);
    const previous = this.#objects.get(key);
    this.#objects.set(key, stored);
    this.#record({
      type: previous === undefined ? "ADDED" : "MODIFIED",
      resource,
      object: structuredClone(stored),
      previous,
      resourceVersion: this.#version,
    });
    return structuredClone(stored);
  }

  /** Removes an object (a delete bumps the resourceVersion too); returns it, or undefined when it was absent. */
  remove(resource: FakeResource, namespace: string | undefined, name: string): KubeObject | undefined {
    const key = this.#key(resource, namespace, name);
    const found = this.#objects.get(key);
    if (found === undefined) return undefined;
    this.#objects.delete(key);
    this.#version++;
    // A watch sees the deleted object at the version of its deletion, as etcd reports it.
    const last = structuredClone(found);
    last.metadata.resourceVersion = String(this.#version);
    this.#record({ type: "DELETED", resource, object: last, resourceVersion: this.#version });
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
    if (info.custom) metadata.generation ??= old?.metadata.generation ?? 1;
    return this.write(resource, { ...object, apiVersion: object.apiVersion ?? apiVersionOf(resource), metadata });
  }
}
