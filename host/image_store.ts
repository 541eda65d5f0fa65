/** The local image store: every image reference on this host, in one listing (Docker Engine API or containerd's `ctr`). */
import type { CommandRunner } from "./command.ts";
import { createDockerApiClient, type DockerImageRefs, listDockerImages } from "./docker_api.ts";

/** Which store answered. */
export type ImageStoreKind = "docker" | "containerd";

/** One listing of the store. */
export interface ImageListing {
  /** The store that was listed. */
  readonly store: ImageStoreKind;
  /** Where: the Docker host, or `ctr -n k8s.io` (with its address when one was given). */
  readonly source: string;
  /** Every reference as the store spells it (tags and digests; not normalised). */
  readonly refs: string[];
  /** How many calls the listing took (API requests or commands). */
  readonly calls: number;
  /** Each image's ID with its names, when the store lists IDs (Docker); containerd's `ls -q` does not. */
  readonly images?: readonly DockerImageRefs[];
}

/** Options of a listing. */
export interface ImageStoreOptions {
  /** `auto` (Docker when its socket answers, else containerd), `docker` or `containerd`. */
  readonly kind: "auto" | "docker" | "containerd";
  /** Docker daemon address, `unix:///var/run/docker.sock`. */
  readonly dockerHost: string;
  /** The command runner (for `ctr`). */
  readonly runCommand: CommandRunner;
  /** containerd socket passed to `ctr --address`; ctr's own default (/run/containerd/containerd.sock) when absent. */
  readonly containerdAddress?: string;
  /** containerd namespace of the kubelet's images (default `k8s.io`). */
  readonly containerdNamespace?: string;
  /** Time limit of each call in milliseconds (default 20 s). */
  readonly timeoutMs?: number;
  /** Aborts the listing. */
  readonly signal?: AbortSignal;
}

/** Lists every image reference of the store; throws `Cannot list images: ...` naming what was tried and why it failed. */
export async function listImages(options: ImageStoreOptions): Promise<ImageListing> {
  const tried: string[] = [];
  if (options.kind !== "containerd") {
    try {
      return await listDocker(options);
    } catch (error) {
      tried.push(`Docker at ${options.dockerHost}: ${(error as Error).message}`);
      if (options.kind === "docker" || error instanceof AnsweredError) {
        throw new Error(`Cannot list images: ${tried.join("; ")}`);
      }
    }
  }
  try {
    return await listContainerd(options);
  } catch (error) {
    tried.push(`containerd: ${(error as Error).message}`);
    throw new Error(`Cannot list images: ${tried.join("; ")}`);
  }
}

/** The Docker daemon answered, but its answer is unusable: `auto` does not fall back to containerd then. */
class AnsweredError extends Error {}

/** containerd's socket when `ctr` is given no address. */
const CONTAINERD_SOCKET = "/run/containerd/containerd.sock";

/** Which volume of manifests/daemon_set.yaml mounts each host socket into the container. */
const SOCKET_VOLUMES: Record<string, string> = {
  "/var/run/docker.sock": "docker-sock",
  [CONTAINERD_SOCKET]: "containerd-sock",
};

/** Why a socket is missing; inside a container that is nearly always a missing hostPath mount, so it says which. */
export function missingSocketHint(path: string): string {
  const volume = SOCKET_VOLUMES[path];
  return `no such socket (in a pod, mount the host's ${path}${volume ? `: volume "${volume}"` : ""})`;
}

function isMissing(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return false;
  } catch (error) {
    return error instanceof Deno.errors.NotFound;
  }
}

async function listDocker(options: ImageStoreOptions): Promise<ImageListing> {
  const docker = createDockerApiClient(options.dockerHost, { timeoutMs: options.timeoutMs, signal: options.signal });
  try {
    await docker.apiVersion();
    try {
      const images = await listDockerImages(docker);
      const refs = images.flatMap((image) => (image.id ? [image.id, ...image.names] : image.names));
      return { store: "docker", source: options.dockerHost, refs, calls: 2, images };
    } catch (error) {
      throw new AnsweredError((error as Error).message);
    }
  } catch (error) {
    const path = options.dockerHost.replace(/^unix:\/\//, "");
    if ((error as Error).message === "no such socket") throw new Error(missingSocketHint(path));
    throw error;
  } finally {
    docker.close();
  }
}

async function listContainerd(options: ImageStoreOptions): Promise<ImageListing> {
  const namespace = options.containerdNamespace ?? "k8s.io";
  const address = options.containerdAddress ? ["--address", options.containerdAddress] : [];
  // Without a connect timeout ctr waits about 10 s for a socket that is not there.
  const argv = ["ctr", ...address, "--connect-timeout", "3s", "-n", namespace, "images", "ls", "-q"];
  const timeoutMs = options.timeoutMs ?? 20_000;
  let result;
  try {
    result = await options.runCommand(argv, { timeoutMs, signal: options.signal });
  } catch (error) {
    // The runner says `Cannot run "ctr": command not found`; keep the cause short.
    const message = (error as Error).message.replace(/^Cannot run "ctr": /, "");
    throw new Error(`ctr: ${message}`);
  }
  if (result.timedOut) throw new Error(`ctr: timed out after ${timeoutMs / 1000} s`);
  if (result.code !== 0) {
    const dial = /failed to dial "([^"]+)"/.exec(result.stderr);
    // ctr says only "context deadline exceeded" for a socket that is not there: look for it.
    const cause = dial && isMissing(dial[1]) ? `: ${missingSocketHint(dial[1])}` : "";
    if (dial) throw new Error(`ctr: cannot connect to containerd at ${dial[1]}${cause}`);
    const why = result.stderr.trim().split("\n").pop() || "no output";
    throw new Error(`ctr exited with code ${result.code}: ${why}`);
  }
  const refs = result.stdout.split("\n").map((line) => line.trim()).filter((line) => line !== "");
  const source = `ctr -n ${namespace}${options.containerdAddress ? ` at ${options.containerdAddress}` : ""}`;
  return { store: "containerd", source, refs, calls: 1 };
}
