/**
 * The local image store as image replication uses it: one interface over Docker (Engine API) and containerd
 * (`ctr`), for the export endpoint (the sending side) and the job (the receiving side).
 */
import type { CommandRunner, StreamingCommandRunner } from "../../host/command.ts";
import { createDockerApiClient, type DockerApiClient } from "../../host/docker_api.ts";
import {
  containerdContentRoot,
  containerdImageInfo,
  dockerImageInfo,
  dockerRootDir,
  exportContainerdImage,
  exportDockerImage,
  type ImageExport,
  loadContainerdImage,
  loadDockerImage,
  removeContainerdImage,
  removeDockerImage,
} from "../../host/image_stream.ts";

/** A containerd stream may take this long (a Docker stream ends only by its signal). */
const CTR_STREAM_TIMEOUT_MS = 6 * 3_600_000;

/** One image store, opened for a copy or an export. */
export interface ReplicationStore {
  /** Which store it is. */
  readonly kind: "docker" | "containerd";
  /** The ID and size of an image, or null when the store has none of that name. */
  info(ref: string): Promise<{ id: string; size: number } | null>;
  /** Streams an image out; null when the store has none of that name. */
  exportImage(ref: string, options: { signal: AbortSignal }): Promise<ImageExport | null>;
  /** Streams an archive in; throws `ImageLoadError` when the store refused it or the stream broke. */
  load(archive: ReadableStream<Uint8Array>, options: { signal: AbortSignal; stallMs?: number }): Promise<void>;
  /** Removes a reference, and its image when no other reference keeps it. */
  remove(ref: string, options: { id: string }): Promise<void>;
  /** The path whose file system receives the images (for the disk check). */
  root(): Promise<string>;
  /** Releases the connection. */
  close(): void;
}

/** How to reach the store (the core-version job's flags). */
export interface StoreOptions {
  /** `--image-store`. */
  readonly kind: "auto" | "docker" | "containerd";
  /** `--docker-host`. */
  readonly dockerHost: string;
  /** `--containerd-address`; ctr's default when absent. */
  readonly containerdAddress?: string;
  /** The command runner, for `ctr`. */
  readonly runCommand: CommandRunner;
  /** The streaming runner, for `ctr images export/import`. */
  readonly runStreaming: StreamingCommandRunner;
}

/** Opens the store: Docker when asked or (with `auto`) when its socket answers, else containerd. */
export async function openStore(options: StoreOptions): Promise<ReplicationStore> {
  if (options.kind !== "containerd") {
    const docker = createDockerApiClient(options.dockerHost);
    try {
      await docker.apiVersion();
      return dockerStore(docker);
    } catch (error) {
      docker.close();
      if (options.kind === "docker") {
        throw new Error(`Cannot reach the Docker Engine at ${options.dockerHost}: ${(error as Error).message}`);
      }
    }
  }
  return containerdStore(options);
}

function dockerStore(docker: DockerApiClient): ReplicationStore {
  return {
    kind: "docker",
    info: (ref) => dockerImageInfo(docker, ref),
    async exportImage(ref, { signal }) {
      if (!(await dockerImageInfo(docker, ref))) return null;
      return await exportDockerImage(docker, ref, { signal });
    },
    async load(archive, { signal, stallMs }) {
      await loadDockerImage(docker, archive, { signal, stallMs });
    },
    remove: (ref, { id }) => removeDockerImage(docker, ref, { id }),
    root: () => dockerRootDir(docker),
    close: () => docker.close(),
  };
}

function containerdStore(options: StoreOptions): ReplicationStore {
  const { runCommand, runStreaming } = options;
  const target = { address: options.containerdAddress };
  const streams = { ...target, runStreaming, timeoutMs: CTR_STREAM_TIMEOUT_MS };
  return {
    kind: "containerd",
    info: (ref) => containerdImageInfo(runCommand, ref, target),
    async exportImage(ref, { signal }) {
      if (!(await containerdImageInfo(runCommand, ref, target))) return null;
      return await exportContainerdImage(runCommand, ref, { ...streams, signal });
    },
    load: (archive, { signal, stallMs }) => loadContainerdImage(archive, { ...streams, signal, stallMs }),
    remove: (ref) => removeContainerdImage(runCommand, ref, target),
    root: () => containerdContentRoot(runCommand, target),
    close: () => {},
  };
}
