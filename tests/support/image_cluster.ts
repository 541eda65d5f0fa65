/** The cluster side of the image-replication tests: version ConfigMaps, the daemons' pods, what a daemon published. */
import { type FakeKubeApiServer, startFakeKubeApiServer } from "../fake_kube/server.ts";
import type { DaemonProcess } from "./daemon_process.ts";
import { configMapObject, nodeObject, VERSION_LABELS } from "./faults_cluster.ts";

/** A version ConfigMap as the operator ships it: `name` and its images. */
export function versionConfigMap(name: string, images: Record<string, string>): Record<string, unknown> {
  return configMapObject(`postgresql-minor-version-info-${name}`, {
    labels: VERSION_LABELS,
    data: { name, ...images },
  });
}

/** The daemon pod of `node`, running, its API on 127.0.0.1:`port` (the port named `http`). */
export function daemonPod(node: string, port: number): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: `polarstack-daemon-${node}`, namespace: "kube-system", labels: { app: "polarstack-daemon" } },
    spec: {
      nodeName: node,
      containers: [{ name: "d", image: "x", ports: [{ name: "http", containerPort: port, hostPort: port }] }],
    },
    status: { phase: "Running", podIP: "127.0.0.1" },
  };
}

/** A fake cluster of nodes a and b for two daemons, and how to start their daemons. */
export interface ImageCluster {
  /** The fake API server. */
  readonly server: FakeKubeApiServer;
  /** The daemon flags of `node` (`node-a` or `node-b`): the cluster, the node, `store` (its image store's flags), the peer token. */
  daemonArgs(node: string, store: readonly string[]): string[];
}

/**
 * Starts the fake API server with nodes a and b, their daemon pods on `ports`, and one version ConfigMap per entry of
 * `versions` (name: images); the peer token is written under `dir`, which is also the daemons' log folder.
 */
export async function startImageCluster(
  versions: Record<string, Record<string, string>>,
  options: { ports: readonly [number, number]; dir: string },
): Promise<ImageCluster> {
  const server = await startFakeKubeApiServer({
    seed: [
      nodeObject("node-a"),
      nodeObject("node-b"),
      configMapObject("controller-config", { data: { isCheckOObIP: "false" } }),
      ...Object.entries(versions).map(([name, images]) => versionConfigMap(name, images)),
      daemonPod("node-a", options.ports[0]),
      daemonPod("node-b", options.ports[1]),
    ],
  });
  const tokenFile = `${options.dir}/peer-token`;
  await Deno.writeTextFile(tokenFile, server.peerToken);
  return {
    server,
    daemonArgs: (node, store) => [
      ...["--kubeconfig", server.kubeconfigPath, "--current-node-name", node, ...store],
      ...["--dbcluster-log-dir", options.dir, "--net-card-name", "lo", "--peer-token-file", tokenFile],
    ],
  };
}

/** The versions `node`'s availability ConfigMap lists. */
export function existingVersions(server: FakeKubeApiServer, node: string): string[] {
  const cm = server.get("configmaps", "kube-system", `polarstack-daemon-version-availability-${node}`);
  const text = (cm as { data?: Record<string, string> } | undefined)?.data?.existingVersions ?? "";
  return text === "" ? [] : text.split(",");
}

/** What `GET /api/v1/images` answers. */
export interface ImagesView {
  readonly incoming: number;
  readonly exportsInProgress: number;
  readonly transfers: {
    version: string;
    ref: string;
    peer: string;
    state: string;
    bytesDone: number;
    failure?: string;
  }[];
}

/** `GET /api/v1/images` of a daemon. */
export async function images(daemon: DaemonProcess): Promise<ImagesView> {
  return (await (await fetch(`${daemon.url}/api/v1/images`)).json()).data;
}
