/**
 * Images as streams between stores: export (Docker `GET /images/{name}/get`, `ctr images export - <ref>`), load
 * (`POST /images/load`, `ctr images import -`), the image ID, removal of a reference and its image. Bytes pass
 * through; nothing holds a whole image in memory and nothing is written to a temporary file.
 */
import { byteReader, byteStreamFrom, readFull, WriteStalledError } from "../core/byte_stream.ts";
import type { CommandRunner, StreamingCommandRunner } from "./command.ts";
import type { DockerApiClient } from "./docker_api.ts";
import { UploadBodyError } from "./http_upload.ts";

/** An image read out of a store. */
export interface ImageExport {
  /** The image's ID (its config digest, `sha256:<64 hex>`). */
  readonly id: string;
  /** Its size as the store reports it (bytes): about what the stream carries, for the disk check and progress. */
  readonly size: number;
  /** The archive (a `docker save` / OCI tar); cancel it to stop the export. */
  readonly stream: ReadableStream<Uint8Array>;
}

/** A load that failed: the store refused or the stream broke. */
export class ImageLoadError extends Error {
  /** Set when the store stopped taking the archive, rather than refused it. */
  readonly storeStalled: WriteStalledError | null;

  /** Builds the error. */
  constructor(message: string, readonly inputError: Error | null, options: { storeStalled?: WriteStalledError } = {}) {
    super(message);
    this.name = "ImageLoadError";
    this.storeStalled = options.storeStalled ?? null;
  }
}

/** The name of an image as a path segment of the Engine API. */
function segment(ref: string): string {
  return encodeURIComponent(ref);
}

async function answerText(response: Response): Promise<string> {
  const text = await response.text();
  try {
    const message = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof message === "string") return message;
  } catch {
    // not JSON
  }
  return text.trim().slice(0, 300) || `status ${response.status}`;
}

/** The ID and size of a Docker image, or null when the daemon has no image of that name. */
export async function dockerImageInfo(
  docker: DockerApiClient,
  ref: string,
): Promise<{ id: string; size: number } | null> {
  const version = await docker.apiVersion();
  const answer = await docker.get(`/v${version}/images/${segment(ref)}/json`);
  if (answer.status === 404) return null;
  const body = answer.body as { Id?: unknown; Size?: unknown } | null;
  if (answer.status !== 200 || typeof body?.Id !== "string") {
    throw new Error(`Cannot inspect image ${ref}: the Docker Engine answered ${answer.status}`);
  }
  return { id: body.Id, size: typeof body.Size === "number" ? body.Size : 0 };
}

/** The Docker Engine's data root (`DockerRootDir` of `GET /info`): the path whose file system receives images. */
export async function dockerRootDir(docker: DockerApiClient): Promise<string> {
  const version = await docker.apiVersion();
  const answer = await docker.get(`/v${version}/info`);
  const root = (answer.body as { DockerRootDir?: unknown } | null)?.DockerRootDir;
  if (answer.status !== 200 || typeof root !== "string") {
    throw new Error(`Cannot read the Docker Engine's data root: GET /info answered ${answer.status}`);
  }
  return root;
}

/** Streams a Docker image out (`GET /images/{name}/get`); throws when the daemon has no such image. */
export async function exportDockerImage(
  docker: DockerApiClient,
  ref: string,
  options: { signal?: AbortSignal } = {},
): Promise<ImageExport> {
  const info = await dockerImageInfo(docker, ref);
  if (!info) throw new Error(`Cannot export image ${ref}: no such image in ${docker.host}`);
  const version = await docker.apiVersion();
  const response = await docker.send(`/v${version}/images/${segment(ref)}/get`, { signal: options.signal });
  if (response.status !== 200 || !response.body) {
    throw new Error(`Cannot export image ${ref}: the Docker Engine answered ${await answerText(response)}`);
  }
  return { ...info, stream: response.body };
}

/**
 * Streams an archive into Docker (`POST /images/load`); resolves with the references it loaded. A failed or cut
 * input ends the request without its last chunk, so the Engine loads nothing of it.
 */
export async function loadDockerImage(
  docker: DockerApiClient,
  archive: ReadableStream<Uint8Array>,
  options: { signal?: AbortSignal; stallMs?: number } = {},
): Promise<string[]> {
  const version = await docker.apiVersion();
  let answer: { status: number; text: string };
  try {
    answer = await docker.upload(`/v${version}/images/load?quiet=1`, archive, {
      headers: { "Content-Type": "application/x-tar" },
      signal: options.signal,
      stallMs: options.stallMs,
    });
  } catch (error) {
    const inputError = error instanceof UploadBodyError ? error.cause : null;
    const stalled = error instanceof WriteStalledError ? error : undefined;
    throw new ImageLoadError(`Cannot load image: ${(error as Error).message}`, inputError, { storeStalled: stalled });
  }
  const text = answer.text;
  if (answer.status !== 200) {
    const cause = `the Docker Engine answered ${answer.status}: ${text.trim().slice(0, 300)}`;
    throw new ImageLoadError(`Cannot load image: ${cause}`, null);
  }
  const loaded: string[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let message: { stream?: unknown; error?: unknown };
    try {
      message = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof message.error === "string") {
      throw new ImageLoadError(`Cannot load image: the Docker Engine says ${message.error}`, null);
    }
    const stream = typeof message.stream === "string" ? message.stream.trim() : "";
    const named = /^Loaded image(?: ID)?: (.+)$/.exec(stream);
    if (named) loaded.push(named[1]);
  }
  return loaded;
}

/**
 * Removes a reference and, when no other reference keeps it, its image (after a copy that did not match). A
 * reference that is already gone is fine.
 */
export async function removeDockerImage(docker: DockerApiClient, ref: string, options: { id: string }): Promise<void> {
  const version = await docker.apiVersion();
  await deleteDockerImage(docker, `/v${version}/images/${segment(ref)}`, ref);
  // Deleting by ID would also drop a last remaining tag: only an image that no reference keeps goes.
  const left = await docker.get(`/v${version}/images/${segment(options.id)}/json`);
  if (left.status === 404) return;
  const body = left.body as { RepoTags?: string[] | null; RepoDigests?: string[] | null } | null;
  if ((body?.RepoTags ?? []).length > 0 || (body?.RepoDigests ?? []).length > 0) return;
  await deleteDockerImage(docker, `/v${version}/images/${segment(options.id)}`, options.id);
}

async function deleteDockerImage(docker: DockerApiClient, path: string, name: string): Promise<void> {
  const response = await docker.send(path, { method: "DELETE" });
  if (response.status === 200 || response.status === 404) {
    await response.body?.cancel();
    return;
  }
  throw new Error(`Cannot remove image ${name}: ${await answerText(response)}`);
}

/** Where and how `ctr` reaches containerd. */
export interface ContainerdTarget {
  /** containerd's socket (`ctr --address`); ctr's default when absent. */
  readonly address?: string;
  /** The namespace (default `k8s.io`, the kubelet's). */
  readonly namespace?: string;
}

function ctrArgs(target: ContainerdTarget, args: readonly string[]): string[] {
  const address = target.address ? ["--address", target.address] : [];
  return ["ctr", ...address, "--connect-timeout", "3s", "-n", target.namespace ?? "k8s.io", ...args];
}

const ARCH: Record<string, string> = { x86_64: "amd64", aarch64: "arm64" };

interface Descriptor {
  readonly mediaType?: string;
  readonly digest?: string;
  readonly size?: number;
  readonly platform?: { architecture?: string; os?: string };
}

async function ctrText(runCommand: CommandRunner, target: ContainerdTarget, args: readonly string[]): Promise<string> {
  const result = await runCommand(ctrArgs(target, args), { timeoutMs: 20_000 });
  if (result.timedOut) throw new Error(`ctr ${args[0]} ${args[1]}: timed out after 20 s`);
  if (result.code !== 0) {
    throw new Error(
      `ctr ${args[0]} ${args[1]} exited with code ${result.code}: ${result.stderr.trim().split("\n").pop()}`,
    );
  }
  return result.stdout;
}

/**
 * The ID (config digest) and size of a containerd image, or null when there is no image of that name: its target
 * from `ctr images ls`, then the manifest (this machine's platform when the target is an index) from the content store.
 */
export async function containerdImageInfo(
  runCommand: CommandRunner,
  ref: string,
  target: ContainerdTarget = {},
): Promise<{ id: string; size: number } | null> {
  const listing = await ctrText(runCommand, target, ["images", "ls", `name==${ref}`]);
  const digest = listingRows(listing).find((row) => row.name === ref)?.digest;
  if (!digest) return null;
  return await containerdConfigOf(runCommand, digest, { target, ref });
}

/** The name and target digest of every row of `ctr images ls`. */
function listingRows(listing: string): { name: string; digest: string }[] {
  return listing.split("\n").slice(1).flatMap((line) => {
    const cols = line.trim().split(/\s+/);
    const digest = cols.find((col) => /^sha256:[0-9a-f]{64}$/.test(col));
    return digest && cols[0] ? [{ name: cols[0], digest }] : [];
  });
}

/**
 * Every image of containerd with its ID (config digest) and names, from one `ctr images ls` and, for each target not
 * in `cache` yet, its manifest (content is immutable, so the cache never goes stale; it is emptied past 4,096). An
 * image whose manifest cannot be read is left out.
 */
export async function listContainerdImageIds(
  runCommand: CommandRunner,
  target: ContainerdTarget,
  options: { cache: Map<string, string> },
): Promise<{ id: string; names: string[] }[]> {
  const { cache } = options;
  const byDigest = new Map<string, string[]>();
  for (const row of listingRows(await ctrText(runCommand, target, ["images", "ls"]))) {
    byDigest.set(row.digest, [...byDigest.get(row.digest) ?? [], row.name]);
  }
  if (cache.size > 4096) cache.clear();
  const images: { id: string; names: string[] }[] = [];
  for (const [digest, names] of byDigest) {
    let id = cache.get(digest);
    if (id === undefined) {
      try {
        id = (await containerdConfigOf(runCommand, digest, { target, ref: names[0] })).id;
      } catch {
        // Content that cannot be read (another platform only, a broken import): this image gives no ID.
        continue;
      }
      cache.set(digest, id);
    }
    images.push({ id, names });
  }
  return images;
}

/** The config digest and size of the manifest `digest` (this machine's platform when it is an index). */
async function containerdConfigOf(
  runCommand: CommandRunner,
  digest: string,
  options: { target: ContainerdTarget; ref: string },
): Promise<{ id: string; size: number }> {
  const { target, ref } = options;
  let manifest = JSON.parse(await ctrText(runCommand, target, ["content", "get", digest])) as {
    manifests?: Descriptor[];
    config?: Descriptor;
    layers?: Descriptor[];
  };
  if (Array.isArray(manifest.manifests)) {
    const arch = ARCH[Deno.build.arch] ?? Deno.build.arch;
    const chosen = manifest.manifests.find((m) => m.platform?.os === "linux" && m.platform.architecture === arch);
    if (!chosen?.digest) throw new Error(`Cannot read image ${ref}: its index has no linux/${arch} manifest`);
    manifest = JSON.parse(await ctrText(runCommand, target, ["content", "get", chosen.digest]));
  }
  const id = manifest.config?.digest;
  if (typeof id !== "string") throw new Error(`Cannot read image ${ref}: its manifest names no config`);
  const size = [manifest.config!, ...(manifest.layers ?? [])].reduce((n, d) => n + (d.size ?? 0), 0);
  return { id, size };
}

/**
 * The folder of containerd's content store, where `ctr images import` writes (its root is /var/lib/containerd by
 * default, k3s's elsewhere): the content plugin's `root` export in `ctr plugins ls --detailed`.
 */
export async function containerdContentRoot(runCommand: CommandRunner, target: ContainerdTarget = {}): Promise<string> {
  const text = await ctrText(runCommand, target, ["plugins", "ls", "--detailed"]);
  // One block per plugin, each opening with its `Type:` line.
  const block = text.split(/^(?=Type:)/m).find((b) => /^Type:\s+io\.containerd\.content\.v1\s*$/m.test(b));
  const root = block && /^\s+root\s+(\/\S*)\s*$/m.exec(block)?.[1];
  if (!root) throw new Error("Cannot read containerd's content root: ctr plugins ls shows no content plugin root");
  return root;
}

/** Options of the containerd streams. */
export interface ContainerdStreamOptions extends ContainerdTarget {
  /** The streaming runner. */
  readonly runStreaming: StreamingCommandRunner;
  /** The most the command may take (ms). */
  readonly timeoutMs: number;
  /** Stops the command. */
  readonly signal?: AbortSignal;
}

/** Streams a containerd image out (`ctr images export - <ref>`); the stream fails when ctr does. */
export async function exportContainerdImage(
  runCommand: CommandRunner,
  ref: string,
  options: ContainerdStreamOptions,
): Promise<ImageExport> {
  const info = await containerdImageInfo(runCommand, ref, options);
  if (!info) throw new Error(`Cannot export image ${ref}: no such image in containerd`);
  const run = options.runStreaming(ctrArgs(options, ["images", "export", "-", ref]), {
    timeoutMs: options.timeoutMs,
    signal: options.signal,
  });
  // The archive's end is only whole when ctr exits 0: hold the close until then.
  const reader = byteReader(run.stdout);
  const stream = byteStreamFrom({
    async read(into) {
      const piece = await readFull(reader.read, into);
      if (piece.length > 0) return piece;
      const result = await run.finished;
      if (result.code === 0) return piece;
      throw new Error(`ctr images export ${ref} failed: ${describeExit(result)}`);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return { ...info, stream };
}

function describeExit(result: { code: number | null; stderr: string; timedOut: boolean }): string {
  if (result.timedOut) return "timed out";
  const why = result.stderr.trim().split("\n").pop() || "no output";
  return result.code === null ? `killed (${why})` : `exit code ${result.code}: ${why}`;
}

/** Streams an archive into containerd (`ctr images import -`); a failed input kills ctr before it sees an end. */
export async function loadContainerdImage(
  archive: ReadableStream<Uint8Array>,
  options: ContainerdStreamOptions & { stallMs?: number },
): Promise<void> {
  const run = options.runStreaming(ctrArgs(options, ["images", "import", "-"]), {
    timeoutMs: options.timeoutMs,
    signal: options.signal,
    stdin: archive,
    stdinStallMs: options.stallMs,
  });
  await run.stdout.pipeTo(new WritableStream());
  const result = await run.finished;
  if (result.stdinStalled) {
    const stalled = new WriteStalledError(result.stdinStalled.stallMs, "ctr images import");
    throw new ImageLoadError(`Cannot load image: ${stalled.message}`, null, { storeStalled: stalled });
  }
  if (result.inputError) {
    throw new ImageLoadError(`Cannot load image: the stream failed: ${result.inputError.message}`, result.inputError);
  }
  if (result.code !== 0) throw new ImageLoadError(`Cannot load image: ctr images import ${describeExit(result)}`, null);
}

/** Removes a containerd image by name (`ctr images rm`); a name already gone is fine. */
export async function removeContainerdImage(
  runCommand: CommandRunner,
  ref: string,
  target: ContainerdTarget = {},
): Promise<void> {
  const result = await runCommand(ctrArgs(target, ["images", "rm", ref]), { timeoutMs: 20_000 });
  if (result.code !== 0 && !/not found/i.test(result.stderr)) {
    throw new Error(`Cannot remove image ${ref}: ${result.stderr.trim().split("\n").pop() ?? "ctr failed"}`);
  }
}
