/**
 * Conflict-safe writes of ConfigMaps (read, decide, write; on 409 read again and decide again), and reads of the
 * settings in ConfigMaps that others own.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import type { Logger } from "../core/types.ts";
import type { KubeClient } from "./client.ts";
import { KubeError } from "./errors.ts";

/** What `applyConfigMap` did, with the plan it applied. */
export interface ApplyResult<P> {
  /** Whether a create or replace was sent and accepted. */
  readonly written: boolean;
  /** Whether the ConfigMap was created. */
  readonly created: boolean;
  /** The ConfigMap as the server has it after the call (null if it does not exist). */
  readonly configMap: V1ConfigMap | null;
  /** The plan made from the ConfigMap as it was read last. */
  readonly plan: P;
}

/** How `applyConfigMap` decides. */
export interface ApplyOptions<P> {
  /** Plans from the ConfigMap as it is now (null: it does not exist). */
  readonly plan: (current: V1ConfigMap | null) => P;
  /** The object the plan wants written, or null to leave it as it is. */
  readonly desired: (plan: P) => V1ConfigMap | null;
  /** How many 409/404 answers are read again and re-planned (default 5). */
  readonly attempts?: number;
}

/**
 * Reads ConfigMap `name` (from the cache, when `kube` has one), plans, and creates or replaces it with the plan's
 * object (if any), carrying the resourceVersion it read. A 409 (stale resourceVersion, or created meanwhile) or a 404
 * (deleted meanwhile) reads it again from the server and plans again.
 */
export async function applyConfigMap<P>(
  kube: KubeClient,
  name: string,
  options: ApplyOptions<P>,
): Promise<ApplyResult<P>> {
  const attempts = options.attempts ?? 5;
  for (let attempt = 1;; attempt++) {
    // The first read may come from a cache; after a 409 or 404 only the server knows.
    const current = await kube.getConfigMap(name, { fresh: attempt > 1 });
    const plan = options.plan(current);
    const desired = options.desired(plan);
    if (desired === null) return { written: false, created: false, configMap: current, plan };
    const body: V1ConfigMap = {
      ...desired,
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        ...desired.metadata,
        name,
        namespace: kube.namespace,
        resourceVersion: current?.metadata?.resourceVersion,
      },
    };
    try {
      const written = current ? await kube.replaceConfigMap(body) : await kube.createConfigMap(body);
      return { written: true, created: current === null, configMap: written, plan };
    } catch (error) {
      // 409: changed or created meanwhile; 404: deleted meanwhile. Either way, read and decide again.
      if (error instanceof KubeError && (error.status === 409 || error.status === 404) && attempt < attempts) continue;
      throw error;
    }
  }
}

/** One setting in a ConfigMap that another component owns (`ccm-config`, `controller-config`). */
export interface Setting {
  /** The ConfigMap's name. */
  readonly configMap: string;
  /** The data key. */
  readonly key: string;
  /** What the daemon uses when the ConfigMap or the key is missing, for the log line. */
  readonly fallback: string;
}

/**
 * Makes a reader of settings: the value of the key, or undefined when the ConfigMap or the key is missing. A missing
 * ConfigMap is logged once (until it appears), naming it and the default used: the manifests never create it.
 */
export function createSettingReader(log: Logger): (kube: KubeClient, setting: Setting) => Promise<string | undefined> {
  const missing = new Set<string>();
  return async (kube, setting) => {
    const configMap = await kube.getConfigMap(setting.configMap);
    const id = `${setting.configMap}/${setting.key}`;
    if (configMap === null) {
      if (!missing.has(id)) {
        log.warn(
          'ConfigMap "{configMap}" not found in namespace {namespace}: using the default {key}={fallback} (create it from manifests/examples/config_maps.yaml to choose)',
          { configMap: setting.configMap, namespace: kube.namespace, key: setting.key, fallback: setting.fallback },
        );
      }
      missing.add(id);
      return undefined;
    }
    if (missing.delete(id)) {
      log.info('ConfigMap "{configMap}" found: {key} is read from it', { ...setting });
    }
    return configMap.data?.[setting.key];
  };
}
