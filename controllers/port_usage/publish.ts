/** The port-usage job's apply step: the ConfigMap written when the used ports changed, or in local mode only logged. */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { JOBS } from "../../core/jobs.ts";
import type { Clock, EventSink, Logger } from "../../core/types.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { applyConfigMap } from "../../k8s/config_maps.ts";
import { CONFIGMAP_MAX_BYTES, planPortUsage, portUsageConfigMapName, type PortUsagePlan } from "./plan.ts";
import type { PortUsageState } from "./state.ts";

/** What the apply step did. */
export interface Published {
  /** Whether the ConfigMap was written (with --dry-run: would be; in local mode: the set changed since the last run). */
  readonly changed: boolean;
  /** What happened to the ConfigMap, for the summary: "created", "unchanged (dry run)", ... */
  readonly verb: string;
}

/** Options of `publishPorts`. */
export interface PublishOptions {
  /** This host's Node name. */
  readonly node: string;
  /** The time of the `updateTimestamp` annotation. */
  readonly clock: Clock;
  /** Computes everything and writes nothing, records nothing. */
  readonly dryRun: boolean;
  /** Where a write is said. */
  readonly log: Logger;
  /** Where a refused write is recorded. */
  readonly events: EventSink;
}

/** Plans the ConfigMap from the one as it is now (again after a conflict) and writes it when the ports changed. */
export async function publishPorts(
  api: KubeClient,
  used: readonly number[],
  options: PublishOptions,
): Promise<Published> {
  const { node, clock } = options;
  const name = portUsageConfigMapName(node);
  const plan = (existing: V1ConfigMap | null) => planPortUsage({ node, used, existing, now: clock.now() });
  if (options.dryRun) {
    const planned = plan(await api.getConfigMap(name));
    if (planned.changed && planned.tooLarge) throw tooLargeError(planned, used.length, options);
    return { changed: planned.changed, verb: planned.changed ? "would be written (dry run)" : "unchanged (dry run)" };
  }
  const applied = await applyConfigMap(api, name, {
    plan,
    desired: (planned) => (planned.changed && !planned.tooLarge ? planned.configMap : null),
  });
  if (applied.plan.changed && applied.plan.tooLarge) throw tooLargeError(applied.plan, used.length, options);
  if (applied.written) options.log.info("Wrote ConfigMap {name} with {count} used ports", { name, count: used.length });
  return { changed: applied.written, verb: applied.created ? "created" : applied.written ? "updated" : "unchanged" };
}

/** The error of a plan over the API server's limit, recorded as an Event unless in a dry run. */
function tooLargeError(plan: PortUsagePlan, count: number, options: PublishOptions): Error {
  const message = `Cannot write ConfigMap "${plan.name}": ${count} used ports take ${plan.sizeBytes} bytes, ` +
    `more than the limit of ${CONFIGMAP_MAX_BYTES}; the previous content stays`;
  if (!options.dryRun) {
    options.events.record({ job: JOBS.portUsage.name, type: "Warning", reason: "PortUsageTooLarge", message });
  }
  return new Error(message);
}

/** Local mode publishes nothing: it logs the ports when they changed since the last run. */
export function logLocalPorts(
  used: number[],
  state: PortUsageState,
  options: { readonly node: string; readonly log: Logger },
): Published {
  const last = state.lastLocalUsed;
  const changed = last === null || last.length !== used.length || last.some((port, i) => port !== used[i]);
  state.lastLocalUsed = used;
  if (changed) {
    options.log.info("Local mode: would write ConfigMap {name} with {count} ports: {ports}", {
      name: portUsageConfigMapName(options.node),
      count: used.length,
      ports: used.join(","),
    });
  }
  return { changed, verb: "not written (local mode)" };
}
