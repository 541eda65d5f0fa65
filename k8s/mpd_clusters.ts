/**
 * The operator's MPDClusters (`mpd.polardb.aliyun.com/v1`): the informer's source across all namespaces, and the one
 * status write the daemon makes, the `LeaderIPReady` condition, conflict-safe and touching nothing else.
 */
import type { V1ObjectMeta } from "@kubernetes/client-node";
import type { Clock } from "../core/types.ts";
import type { KubeClient } from "./client.ts";
import { KubeError } from "./errors.ts";
import type { ListWatch } from "./informer.ts";
import { collectionSource } from "./list_watch.ts";
import { kubeTime } from "./values.ts";

/** A floating IP as `spec.netCfg.leaderFloatingIP` and `status.floatingIP` hold it (unchecked: the operator's data). */
export interface FloatingIpConfig {
  /** `manual` or `auto`. */
  readonly ipAddressCfgType?: string;
  /** The IPv4 address. */
  readonly ipAddress?: string;
  /** The prefix length. */
  readonly mask?: number;
  /** The gateway (recorded, not routed). */
  readonly gateWay?: string;
  /** The physical NIC. */
  readonly basedNetIf?: string;
  /** `VirtualIF` (the default) or `MultiIP`. */
  readonly ipMode?: string;
}

/** One entry of `status.dbInstanceStatus`. */
export interface DbInstanceStatus {
  /** The node the instance runs on. */
  readonly nodeName?: string;
  /** `leader`, `follower` or `logger`. */
  readonly role?: string;
  /** `rw`, `ro` or `tempro`. */
  readonly insType?: string;
}

/** One item of `status.conditions`. */
export interface ClusterCondition {
  /** The condition's type, e.g. `LeaderIPReady`. */
  readonly type?: string;
  /** `True`, `False` or `Unknown`. */
  readonly status?: string;
  /** When it was last probed. */
  readonly lastProbeTime?: string;
  /** When `status` last changed. */
  readonly lastTransitionTime?: string;
  /** A CamelCase reason. */
  readonly reason?: string;
  /** A sentence. */
  readonly message?: string;
}

/** An MPDCluster, with the fields the daemon reads; the others are kept as they are. */
export interface MPDCluster {
  /** `mpd.polardb.aliyun.com/v1`. */
  readonly apiVersion?: string;
  /** `MPDCluster`. */
  readonly kind?: string;
  /** Name, namespace, resourceVersion. */
  readonly metadata?: V1ObjectMeta;
  /** The operator's spec. */
  readonly spec?: { readonly netCfg?: { readonly leaderFloatingIP?: FloatingIpConfig } };
  /** The operator's status, with the conditions the daemon writes one of. */
  readonly status?: {
    readonly leaderInstanceHost?: string;
    readonly leaderInstanceId?: string;
    readonly floatingIP?: FloatingIpConfig;
    readonly dbInstanceStatus?: Readonly<Record<string, DbInstanceStatus>>;
    readonly conditions?: readonly ClusterCondition[];
  };
}

/** The condition the floating-IP job owns. */
export const LEADER_IP_READY = "LeaderIPReady";

/** What a condition should say. */
export interface WantedCondition {
  /** `True`, `False` or `Unknown`. */
  readonly status: "True" | "False" | "Unknown";
  /** A CamelCase reason, e.g. `IPConflict`. */
  readonly reason: string;
  /** A sentence that names the object and the cause. */
  readonly message: string;
}

/** Options of `writeLeaderIpReady`. */
export interface ConditionWriteOptions {
  /** What `LeaderIPReady` should say. */
  readonly condition: WantedCondition;
  /** The time of the write. */
  readonly clock: Clock;
  /** How many PUTs a 409 may cost before the error surfaces (default 5). */
  readonly attempts?: number;
  /**
   * The cluster as a watch cache has it, with its conditions: the first write is then one merge PATCH conditional on
   * its resourceVersion, with no GET; when the cache is behind (409), the GET and PUT follow.
   */
  readonly cached?: MPDCluster;
}

/** What `writeLeaderIpReady` did. */
export interface ConditionWriteResult {
  /** Whether a PATCH or PUT was sent and accepted. */
  readonly written: boolean;
  /** The MPDCluster as the server has it now; null when it does not exist. */
  readonly cluster: MPDCluster | null;
}

const GROUP_VERSION = "/apis/mpd.polardb.aliyun.com/v1";
const seg = encodeURIComponent;

type Json = Record<string, unknown>;

function json(value: unknown): Json | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? value as Json : undefined;
}

function instanceEntry(value: unknown): DbInstanceStatus {
  const entry = json(value);
  return { nodeName: entry?.nodeName as string | undefined, insType: entry?.insType as string | undefined };
}

/**
 * What the floating-IP job reads of an MPDCluster, for its watch cache: the name, the addresses, the leader and the
 * rw instance's node, and the conditions (the base of a `LeaderIPReady` patch). The operator's spec and status are otherwise large, and a host's cache holds
 * every cluster of the platform. Values are kept as they came, malformed or not: the job judges them.
 */
export function slimMpdCluster(object: unknown): MPDCluster {
  const root = json(object);
  const metadata = json(root?.metadata);
  const spec = json(root?.spec);
  const status = json(root?.status);
  const instances = status?.dbInstanceStatus;
  const leaderFloatingIP = json(spec?.netCfg)?.leaderFloatingIP;
  return {
    apiVersion: root?.apiVersion as string | undefined,
    kind: root?.kind as string | undefined,
    metadata: {
      name: metadata?.name as string | undefined,
      namespace: metadata?.namespace as string | undefined,
      resourceVersion: metadata?.resourceVersion as string | undefined,
      uid: metadata?.uid as string | undefined,
    },
    spec: spec && { netCfg: leaderFloatingIP === undefined ? undefined : { leaderFloatingIP } } as MPDCluster["spec"],
    status: status && {
      leaderInstanceHost: status.leaderInstanceHost,
      floatingIP: status.floatingIP,
      dbInstanceStatus: Array.isArray(instances) ? instances.map(instanceEntry) : json(instances) &&
        Object.fromEntries(Object.entries(json(instances)!).map(([k, v]) => [k, instanceEntry(v)])),
      conditions: status.conditions,
    } as MPDCluster["status"],
  };
}

/** The informer's source: every MPDCluster in every namespace, each as `slimMpdCluster` keeps it. */
export function mpdClusterSource(kube: KubeClient): ListWatch<MPDCluster> {
  return collectionSource<MPDCluster>(kube, {
    path: `${GROUP_VERSION}/mpdclusters`,
    what: "MPDClusters in all namespaces",
    keep: slimMpdCluster,
  });
}

/**
 * The conditions with one of `type` set as `wanted`, or null when it already says that (status, reason, message).
 * Every other item is kept as it is, at its place; `lastTransitionTime` changes only when the status does.
 */
export function withCondition(
  conditions: readonly ClusterCondition[],
  type: string,
  options: { wanted: WantedCondition; now: Date },
): ClusterCondition[] | null {
  const { wanted, now } = options;
  const index = conditions.findIndex((c) => c?.type === type);
  const current = index < 0 ? undefined : conditions[index];
  if (
    current?.status === wanted.status && current.reason === wanted.reason && current.message === wanted.message
  ) return null;
  const stamp = kubeTime(now);
  const next: ClusterCondition = {
    type,
    status: wanted.status,
    lastProbeTime: stamp,
    lastTransitionTime: current?.status === wanted.status && current.lastTransitionTime
      ? current.lastTransitionTime
      : stamp,
    reason: wanted.reason,
    message: wanted.message,
  };
  return index < 0 ? [...conditions, next] : conditions.map((c, i) => (i === index ? next : c));
}

/**
 * Sets `LeaderIPReady` on an MPDCluster's status: from the cached cluster, one merge PATCH of the conditions bound to
 * its resourceVersion; otherwise (or when that is stale) GET, then PUT of `/status` with the resourceVersion read, the
 * status as read but for that one condition. A 409 reads again and applies again; nothing is written when the
 * condition already says so, or when the MPDCluster does not exist. Its calls yield the rate limit to the jobs'.
 */
export async function writeLeaderIpReady(
  kube: KubeClient,
  target: { readonly namespace: string; readonly name: string },
  options: ConditionWriteOptions,
): Promise<ConditionWriteResult> {
  const path = `${GROUP_VERSION}/namespaces/${seg(target.namespace)}/mpdclusters/${seg(target.name)}`;
  const id = `MPDCluster "${target.namespace}/${target.name}"`;
  const attempts = options.attempts ?? 5;
  const version = options.cached?.metadata?.resourceVersion;
  const cachedConditions = options.cached?.status?.conditions ?? [];
  if (version && Array.isArray(cachedConditions)) {
    const next = withCondition(cachedConditions, LEADER_IP_READY, {
      wanted: options.condition,
      now: options.clock.now(),
    });
    if (next === null) return { written: false, cluster: options.cached! };
    try {
      // A merge patch replaces the whole list: the resourceVersion makes sure it is the list the server has.
      const written = await kube.request("PATCH", `${path}/status`, {
        body: { metadata: { resourceVersion: version }, status: { conditions: next } },
        contentType: "application/merge-patch+json",
        what: `set ${LEADER_IP_READY} on ${id}`,
        background: true,
      }) as MPDCluster;
      return { written: true, cluster: written };
    } catch (error) {
      if (!(error instanceof KubeError) || error.status !== 409) {
        if (error instanceof KubeError && error.status === 404) return { written: false, cluster: null };
        throw error;
      }
    }
  }
  for (let attempt = 1;; attempt++) {
    let cluster: MPDCluster;
    try {
      cluster = await kube.request("GET", path, { what: `get ${id}`, background: true }) as MPDCluster;
    } catch (error) {
      if (error instanceof KubeError && error.status === 404) return { written: false, cluster: null };
      throw error;
    }
    const conditions = cluster.status?.conditions ?? [];
    if (!Array.isArray(conditions)) {
      throw new KubeError(`Cannot set ${LEADER_IP_READY} on ${id}: its status.conditions is not a list`, {
        status: 0,
      });
    }
    const next = withCondition(conditions, LEADER_IP_READY, {
      wanted: options.condition,
      now: options.clock.now(),
    });
    if (next === null) return { written: false, cluster };
    const body = { ...cluster, status: { ...cluster.status, conditions: next } };
    try {
      const written = await kube.request("PUT", `${path}/status`, {
        body,
        what: `set ${LEADER_IP_READY} on ${id}`,
        background: true,
      }) as MPDCluster;
      return { written: true, cluster: written };
    } catch (error) {
      // 409: the operator (or another daemon) wrote meanwhile; 404: deleted meanwhile. Read again and decide again.
      if (error instanceof KubeError && (error.status === 409 || error.status === 404) && attempt < attempts) continue;
      throw error;
    }
  }
}
