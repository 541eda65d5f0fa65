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

/** Moves the leader of the named clusters to `host` in one store write each (no lost update); returns the time. */
export function moveLeader(server: FakeKubeApiServer, names: readonly string[], host: string): number {
  for (const name of names) {
    const object = server.get("mpdclusters", CLUSTER_NS, name);
    server.put({ ...object, status: { ...object.status, ...leaderStatus(host) } });
  }
  return Date.now();
}
