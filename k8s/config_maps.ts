/**
 * Conflict-safe writes of ConfigMaps (read, decide, write; on 409 read again and decide again), and reads of the
 * settings in ConfigMaps that others own.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import type { Logger } from "../controllers/types.ts";
import type { KubeClient } from "./client.ts";
import { KubeError } from "./errors.ts";

/** What `applyConfigMap` did. */
export interface ApplyResult {
  /** Whether a create or replace was sent and accepted. */
  readonly written: boolean;
  /** Whether the ConfigMap was created. */
  readonly created: boolean;
  /** The ConfigMap as the server has it after the call (null if it does not exist). */
  readonly configMap: V1ConfigMap | null;
}

/**
 * Reads ConfigMap `name`, asks `decide` for the desired object (null = leave it as it is), and
 * creates or replaces it. A 409 (stale resourceVersion, or created meanwhile) re-reads and re-decides.
 */
export async function applyConfigMap(
  kube: KubeClient,
  name: string,
  options: { decide: (current: V1ConfigMap | null) => V1ConfigMap | null; attempts?: number },
): Promise<ApplyResult> {
  const { decide } = options;
  const attempts = options.attempts ?? 5;
  for (let attempt = 1;; attempt++) {
    const current = await kube.getConfigMap(name);
    const desired = decide(current);
    if (desired === null) return { written: false, created: false, configMap: current };
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
      return { written: true, created: current === null, configMap: written };
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
