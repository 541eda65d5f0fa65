/** A test's reader of a watch on the fake Kubernetes API server: real HTTPS, one event per line of the stream. */
import type { FakeKubeApiServer } from "./server.ts";

/** One watch event. */
export interface WatchEvent {
  /** `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`. */
  readonly type: string;
  /** The object, or a Status for ERROR. */
  // deno-lint-ignore no-explicit-any
  readonly object: any;
}

/** An open watch. */
export interface WatchStream {
  /** The answer's status. */
  readonly status: number;
  /** The answer's headers. */
  readonly headers: Headers;
  /** The answer's body when it is not a stream of events (a refused watch). */
  readonly failure?: Record<string, unknown>;
  /** The next event, or null when the server ended the stream; rejects when none comes within `timeoutMs`. */
  next(timeoutMs?: number): Promise<WatchEvent | null>;
  /** Closes the stream and the client. */
  close(): Promise<void>;
}

/** Opens `path` (with its query) on the server with `token` (the admin token by default). */
export async function openWatch(
  server: Pick<FakeKubeApiServer, "url" | "caCert" | "adminToken">,
  path: string,
  options: { token?: string } = {},
): Promise<WatchStream> {
  const client = Deno.createHttpClient({ caCerts: [server.caCert] });
  const response = await fetch(`${server.url}${path}`, {
    headers: { Authorization: `Bearer ${options.token ?? server.adminToken}` },
    client,
  });
  if (response.status !== 200) {
    const failure = await response.json();
    client.close();
    return {
      status: response.status,
      headers: response.headers,
      failure,
      next: () => Promise.resolve(null),
      close: () => Promise.resolve(),
    };
  }
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let ended = false;

  async function next(timeoutMs = 5000): Promise<WatchEvent | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`No watch event on ${path} within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      while (!buffer.includes("\n")) {
        if (ended) return null;
        const { value, done } = await Promise.race([reader.read(), deadline]);
        if (done) ended = true;
        else buffer += value;
      }
      const newline = buffer.indexOf("\n");
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      return JSON.parse(line);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    status: response.status,
    headers: response.headers,
    next,
    async close() {
      await reader.cancel().catch(() => {});
      client.close();
    },
  };
}
