/** Conflict-safe writes of ConfigMaps: read, decide, write; on 409 read again and decide again. */
import type { V1ConfigMap } from "@kubernetes/client-node";
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
