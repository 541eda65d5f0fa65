/** The cluster side of the image-replication tests: version ConfigMaps, the daemons' pods, what a daemon published. */
import type { FakeKubeApiServer } from "../fake_kube/server.ts";
import type { DaemonProcess } from "./daemon_process.ts";
import { configMapObject, VERSION_LABELS } from "./faults_cluster.ts";

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
