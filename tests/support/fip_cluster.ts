/** MPDClusters with a leader floating IP, as the operator writes them, for the floating-IP tests and benchmark. */
import type { FakeKubeApiServer } from "../fake_kube/server.ts";

/** The namespace of the test's MPDClusters. */
export const CLUSTER_NS = "db";

/** How the address is carried. */
export type FipMode = "VirtualIF" | "MultiIP";

/** What GET /api/v1/floating-ips answers for one address. */
export interface FipAddressState {
  address: string;
  cluster: string | null;
  mode: string | null;
  nic: string | null;
  device: string | null;
  held: boolean;
  action: string;
  reason: string;
  message: string;
  lease: { holder: string | null; expiresAt: string | null } | null;
  lastChange: string | null;
  announcedAt: string | null;
  error: string | null;
}

/** The leader part of an MPDCluster's status: `leaderInstanceHost` and the rw entry agree on `leader`. */
export function leaderStatus(leader: string): Record<string, unknown> {
  const follower = leader === "h1" ? "h2" : "h1";
  return {
    leaderInstanceHost: leader,
    dbInstanceStatus: {
      ins1: { insType: "rw", role: "leader", nodeName: leader },
      ins2: { insType: "ro", role: "follower", nodeName: follower },
    },
  };
}

/** A manual `leaderFloatingIP` with mask 24, and `extra` fields over it. */
export function manualFip(ip: string, mode: FipMode, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ipAddressCfgType: "manual", ipAddress: ip, mask: 24, ipMode: mode, ...extra };
}

/** An MPDCluster of CLUSTER_NS whose `spec.netCfg.leaderFloatingIP` is `fip` (any JSON) and leader `leader`. */
export function mpdClusterObject(name: string, fip: unknown, leader: string): Record<string, unknown> {
  return {
    apiVersion: "mpd.polardb.aliyun.com/v1",
    kind: "MPDCluster",
    metadata: { name, namespace: CLUSTER_NS },
    spec: { netCfg: { leaderFloatingIP: fip } },
    status: leaderStatus(leader),
  };
}

function instance(id: string, options: { node: string; insType: string; role: string; port: number }) {
  const version = {
    versionName: "image-open-v1",
    engineImage: "polardb/polardb_pg_engine_release:11beta3.20210820.cdc86b89.20210817200119",
    managerImage: "polardb/polardb-stack-manager-agent:1.0.0",
    pfsdImage: "polardb/pfsd:1.2.41-20210818",
    pfsdToolImage: "polardb/pfsd_tool:1.2.41-20210818",
  };
  const state = (state: string) => ({ reason: "", state, startAt: "2026-11-30T08:00:00Z" });
  return {
    physicalInsId: `${id}-p`,
    insId: id,
    insName: id,
    podName: `${id}-pod`,
    podNameSpace: CLUSTER_NS,
    nodeName: options.node,
    hostClientIP: "192.168.10.11",
    polarFsHostId: "2",
    installed: true,
    role: options.role,
    insType: options.insType,
    status: "Running",
    versionInfo: version,
    insClassInfo: { className: "polar.o.x4.medium", cpu: "2000m", memory: "17Gi" },
    netInfo: { netType: "host", workingPort: options.port, workingHostIP: "192.168.10.11" },
    currentState: state("Running"),
    lastState: state("Creating"),
  };
}

/**
 * An MPDCluster with every field the operator's types have, filled as a running three-instance cluster has them, and
 * the managed fields the API server adds: what a host's watch cache really receives (about 5 KB of JSON).
 */
export function fieldMpdCluster(name: string, fip: unknown, leader: string): Record<string, unknown> {
  const nodes = [leader, `${leader}-b`, `${leader}-c`];
  const ins = (i: number, insType: string, role: string) =>
    instance(`pi-${name}-${i}`, { node: nodes[i], insType, role, port: 5780 + i * 5 });
  const manager = (manager: string, subresource?: string) => ({
    manager,
    operation: "Update",
    apiVersion: "mpd.polardb.aliyun.com/v1",
    time: "2026-11-30T08:00:00Z",
    fieldsType: "FieldsV1",
    ...(subresource ? { subresource } : {}),
    fieldsV1: subresource
      ? {
        "f:status": { "f:clusterStatus": {}, "f:dbInstanceStatus": {}, "f:conditions": {}, "f:leaderInstanceHost": {} },
      }
      : { "f:spec": { "f:classInfo": {}, "f:netCfg": { "f:leaderFloatingIP": {} }, "f:shareStore": {} } },
  });
  return {
    apiVersion: "mpd.polardb.aliyun.com/v1",
    kind: "MPDCluster",
    metadata: {
      name,
      namespace: CLUSTER_NS,
      labels: { "apsara.metric.ins_name": name, "apsara.metric.clusterType": "share" },
      annotations: { "polarbox.mpd.create.time": "2026-11-30T08:00:00Z" },
      finalizers: ["mpd.finalizers.polardb.aliyun.com"],
      managedFields: [manager("polardb-stack-operator"), manager("polardb-stack-operator", "status")],
    },
    spec: {
      operatorName: "polar-mpd",
      dbClusterType: "share",
      dbType: "polar-o",
      description: `${name} for the order service`,
      followerNum: 2,
      classInfo: { className: "polar.o.x4.medium", cpu: "2000m", memory: "17Gi" },
      classInfoModifyTo: { className: "" },
      shareStore: {
        drive: "pvc",
        sharePvcName: `pvc-${name}`,
        sharePvcNamespace: CLUSTER_NS,
        volumeId: "360050767088081329800000000000116",
        volumeType: "multipath",
        diskQuota: "520000",
      },
      dbProxyInfo: { enabled: true, name: `${name}-proxy`, resourceType: "stand", consistencyLevel: 1 },
      netCfg: { netType: "host", engineStartPort: 5780, proxyStartPort: 5800, portStep: 5, leaderFloatingIP: fip },
      versionCfg: { versionName: "image-open-v1" },
    },
    status: {
      clusterStatus: "Running",
      followerNum: 2,
      insClassInfo: { className: "polar.o.x4.medium", cpu: "2000m", memory: "17Gi" },
      leaderInstanceId: `pi-${name}-0`,
      leaderInstanceHost: leader,
      logicId: `li-${name}`,
      dbInstanceStatus: {
        [`pi-${name}-0`]: ins(0, "rw", "leader"),
        [`pi-${name}-1`]: ins(1, "ro", "follower"),
        [`pi-${name}-2`]: ins(2, "ro", "follower"),
      },
      clusterManagerStatus: { workingPort: 5790, deployName: `${name}-cm` },
      proxyStatus: { workingPort: 5800, maxScaleName: `${name}-proxy`, maxScaleNameSpace: CLUSTER_NS },
      conditions: ["FollowerReady", "ProxyReady"].map((type) => ({
        type,
        status: "True",
        lastTransitionTime: "2026-11-30T08:00:00Z",
        reason: "Ready",
        message: `${type} since the cluster was created`,
      })),
    },
  };
}

/** Moves the leader of the named clusters to `host` in one store write each (no lost update); returns the time. */
export function moveLeader(server: FakeKubeApiServer, names: readonly string[], host: string): number {
  for (const name of names) {
    const object = server.get("mpdclusters", CLUSTER_NS, name);
    server.put({ ...object, status: { ...object.status, ...leaderStatus(host) } });
  }
  return Date.now();
}
