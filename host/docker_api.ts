/** A small Docker Engine API client: HTTP over the daemon's unix socket (or tcp://), version negotiated from `/_ping`. */
import { WriteStalledError } from "../core/byte_stream.ts";
import { linkSignals } from "../core/signals.ts";
import { type UploadAnswer, UploadBodyError, uploadStream } from "./http_upload.ts";

/** A JSON answer of the Engine API. */
export interface DockerResponse {
  /** HTTP status. */
  readonly status: number;
  /** Parsed JSON body (null when the body is empty or not JSON). */
  readonly body: unknown;
}

/** A connection to one Docker daemon; `close()` releases it. */
export interface DockerApiClient {
  /** The daemon address as configured, e.g. `unix:///var/run/docker.sock`. */
  readonly host: string;
  /** The API version the daemon speaks (`API-Version` of `/_ping`, else `ApiVersion` of `/version`); cached. */
  apiVersion(): Promise<string>;
  /** GET of an Engine API path (e.g. `/v1.41/images/json`). Throws when the daemon cannot be reached. */
  get(path: string): Promise<DockerResponse>;
  /**
   * Any call, its body unread (for streams): only `init.signal` limits it, since an image takes minutes. Throws
   * when the daemon cannot be reached.
   */
  send(path: string, init: DockerSendInit): Promise<Response>;
  /**
   * A POST of a long stream (an image load) on a connection of its own, each piece written from one buffer; only
   * `init.signal` and `init.stallMs` limit it. Throws `UploadBodyError` when `body` failed, `WriteStalledError` when the
   * daemon stopped taking it, else when the daemon cannot be reached.
   */
  upload(path: string, body: ReadableStream<Uint8Array>, init: DockerUploadInit): Promise<UploadAnswer>;
  /** Releases the HTTP client. */
  close(): void;
}

/** Options of the client. */
export interface DockerApiOptions {
  /** Time limit of each request in milliseconds (default 20 s). */
  readonly timeoutMs?: number;
  /** Aborts every request. */
  readonly signal?: AbortSignal;
}

/** A streaming call of `send`. */
export interface DockerSendInit {
  /** HTTP method (default GET). */
  readonly method?: string;
  /** Request body, streamed. */
  readonly body?: ReadableStream<Uint8Array>;
  /** Request headers. */
  readonly headers?: Record<string, string>;
  /** Ends the call, body included. */
  readonly signal?: AbortSignal;
}

/** Options of `upload`. */
export interface DockerUploadInit {
  /** Request headers. */
  readonly headers?: Record<string, string>;
  /** Ends the call, body included. */
  readonly signal?: AbortSignal;
  /** Fails with `WriteStalledError` when the daemon takes none of the body for this long (ms). */
  readonly stallMs?: number;
}

/** One image of `GET /images/json` (only the fields used here). */
export interface DockerImageSummary {
  /** The image ID, `sha256:<64 hex>`. */
  readonly Id?: string;
  /** `name:tag` references. */
  readonly RepoTags?: string[] | null;
  /** `name@sha256:...` references. */
  readonly RepoDigests?: string[] | null;
}

/** Creates a client for `unix:///path` or `tcp://host:port` (plain HTTP); throws on another scheme. */
export function createDockerApiClient(host: string, options: DockerApiOptions = {}): DockerApiClient {
  const timeoutMs = options.timeoutMs ?? 20_000;
  let base: string;
  let client: Deno.HttpClient | undefined;
  let address: Deno.ConnectOptions | Deno.UnixConnectOptions;
  if (host.startsWith("unix://")) {
    const path = host.slice("unix://".length);
    if (!path.startsWith("/")) throw new Error(`Invalid Docker host "${host}": the socket path must be absolute`);
    // The host part of the URL is ignored: every request goes to the socket.
    base = "http://docker";
    client = Deno.createHttpClient({ proxy: { transport: "unix", path } });
    address = { transport: "unix", path };
  } else if (host.startsWith("tcp://") || host.startsWith("http://")) {
    base = `http://${host.replace(/^[a-z]+:\/\//, "").replace(/\/+$/, "")}`;
    const url = new URL(base);
    address = { hostname: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 80) };
  } else {
    throw new Error(`Invalid Docker host "${host}": expected unix:///path or tcp://host:port`);
  }
  let version: string | undefined;

  async function get(path: string): Promise<DockerResponse> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, { client, signal });
    } catch (error) {
      throw new Error(connectionCause(error, timeout.aborted, timeoutMs));
    }
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    return { status: response.status, body };
  }

  async function send(path: string, init: DockerSendInit): Promise<Response> {
    const signals = [init.signal, options.signal].filter((s): s is AbortSignal => s !== undefined);
    try {
      return await fetch(`${base}${path}`, {
        client,
        method: init.method ?? "GET",
        body: init.body,
        headers: init.headers,
        signal: signals.length > 0 ? AbortSignal.any(signals) : undefined,
      });
    } catch (error) {
      throw new Error(connectionCause(error, false, timeoutMs));
    }
  }

  async function upload(path: string, body: ReadableStream<Uint8Array>, init: DockerUploadInit) {
    const linked = linkSignals([init.signal, options.signal]);
    try {
      return await uploadStream(address, body, {
        path,
        headers: init.headers,
        signal: linked.signal,
        stallMs: init.stallMs,
      });
    } catch (error) {
      if (error instanceof UploadBodyError) throw error;
      if (error instanceof WriteStalledError) throw new WriteStalledError(error.stallMs, "the Docker Engine");
      throw new Error(connectionCause(error, false, timeoutMs));
    } finally {
      linked.dispose();
    }
  }

  async function negotiate(): Promise<string> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    let ping: Response;
    try {
      ping = await fetch(`${base}/_ping`, { client, signal });
    } catch (error) {
      throw new Error(connectionCause(error, timeout.aborted, timeoutMs));
    }
    await ping.body?.cancel();
    const header = ping.headers.get("API-Version");
    if (header && /^\d+\.\d+$/.test(header)) return header;
    // Old daemons and some proxies do not send the header: ask /version (unversioned path).
    const answer = await get("/version");
    const fromBody = (answer.body as { ApiVersion?: unknown } | null)?.ApiVersion;
    if (answer.status === 200 && typeof fromBody === "string" && /^\d+\.\d+$/.test(fromBody)) return fromBody;
    throw new Error(`no API version in /_ping (status ${ping.status}) nor in /version (status ${answer.status})`);
  }

  return {
    host,
    async apiVersion() {
      version ??= await negotiate();
      return version;
    },
    get,
    send,
    upload,
    close() {
      client?.close();
    },
  };
}

/** One image of the daemon: its ID and its tags and digests. */
export interface DockerImageRefs {
  /** The image ID, `sha256:<64 hex>` (null when the Engine gives none). */
  readonly id: string | null;
  /** Its `RepoTags` and `RepoDigests` (dangling `<none>` entries left out). */
  readonly names: string[];
}

/** Lists every image of the daemon with its names, in one `GET /images/json`. */
export async function listDockerImages(docker: DockerApiClient): Promise<DockerImageRefs[]> {
  const version = await docker.apiVersion();
  const answer = await docker.get(`/v${version}/images/json`);
  if (answer.status !== 200 || !Array.isArray(answer.body)) {
    throw new Error(`GET /v${version}/images/json answered ${answer.status}: ${describeBody(answer.body)}`);
  }
  const images: DockerImageRefs[] = [];
  for (const image of answer.body as DockerImageSummary[]) {
    // Dangling images are listed as `<none>:<none>` and `<none>@<none>`.
    const names = [...(image.RepoTags ?? []), ...(image.RepoDigests ?? [])]
      .filter((ref): ref is string => typeof ref === "string" && !ref.startsWith("<none>"));
    images.push({ id: typeof image.Id === "string" ? image.Id : null, names });
  }
  return images;
}

function describeBody(body: unknown): string {
  const message = (body as { message?: unknown } | null)?.message;
  if (typeof message === "string") return message;
  return JSON.stringify(body)?.slice(0, 200) ?? "no body";
}

/** Turns a fetch failure into a short cause: `no such socket`, `connection refused`, `timed out after 20 s`. */
function connectionCause(error: unknown, timedOut: boolean, timeoutMs: number): string {
  if (timedOut) return `timed out after ${timeoutMs / 1000} s`;
  const err = error as Error & { cause?: Error };
  const text = `${err.message} ${err.cause?.message ?? ""}`;
  const os = /os error (\d+)/.exec(text);
  switch (os?.[1]) {
    case "2":
      return "no such socket";
    case "111":
      return "connection refused";
    case "13":
      return "permission denied";
  }
  if (err.name === "AbortError") return "aborted";
  return err.cause?.message ?? err.message;
}
