/**
 * The HTTP/1.1 listener around the app's `fetch`: header and idle timeouts, a connection cap answered with 503, an
 * accept loop that outlives "Too many open files", both IP stacks, and memory handed back after a burst. `Deno.serve`
 * has none of these knobs and its accept loop dies on EMFILE, so the daemon serves through this small server over
 * `Deno.listen` instead. This module listens and accepts; `http_connection.ts` serves each connection.
 */
import type { Logger } from "../core/types.ts";
import { type FetchHandler, type Limits, refuse, serveConnection } from "./http_connection.ts";
import { Connection } from "./http_socket.ts";

/** What the server hands each request to (the Hono app's `fetch`). */
export type { FetchHandler } from "./http_connection.ts";

/** Options of {@linkcode serveApp}. */
export interface ServeOptions {
  /** TCP port; 0 picks a free one. */
  readonly port: number;
  /** Listen only on this address; by default on `::` (both stacks), or `0.0.0.0` where IPv6 is off. */
  readonly hostname?: string;
  /** Close a connection whose request head is not complete this long after it was accepted or began. */
  readonly headersTimeoutMs?: number;
  /** Close a keep-alive connection that sends nothing this long after a response; also the limit on a stalled body. */
  readonly idleTimeoutMs?: number;
  /** Connections served at once; more are answered 503 and closed (64 at a time; the rest wait to be accepted). */
  readonly maxConnections?: number;
  /** The largest request head, in bytes (431 above). */
  readonly maxHeaderBytes?: number;
  /** Where accept failures are logged. */
  readonly log?: Logger;
}

/** A running server. */
export interface AppServer {
  /** The port it listens on. */
  readonly port: number;
  /** The addresses it listens on, e.g. `["::"]` or `["0.0.0.0"]`. */
  readonly hostnames: readonly string[];
  /** Connections open now (served and being refused). */
  connections(): number;
  /** Stops accepting, closes idle connections, lets requests in flight finish (up to `graceMs`, default 5 s). */
  shutdown(options?: { graceMs?: number }): Promise<void>;
}

/** Defaults of {@linkcode ServeOptions}. */
export const SERVER_DEFAULTS = {
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  maxConnections: 1024,
  maxHeaderBytes: 32 * 1024,
} as const;

/** File descriptors kept for everything else the process opens (cluster client, image store, log walk, commands). */
const RESERVED_FDS = 256;

/** Refused connections kept open at once to deliver their 503; beyond that new ones wait in the kernel's backlog. */
const MAX_REFUSING = 64;

/** Open connections that make a burst: once they fall back to an eighth of their peak, V8 collects its garbage. */
const BURST_CONNECTIONS = 256;

/** The connection cap for a soft open-file limit: 256 descriptors for the rest of the process and 64 refusals below. */
export function connectionCap(softLimit: number, wanted: number = SERVER_DEFAULTS.maxConnections): number {
  return Math.max(16, Math.min(wanted, softLimit - RESERVED_FDS - MAX_REFUSING));
}

let fullGc: (() => void) | null | undefined;

/**
 * Runs one full V8 garbage collection. After a burst the connections' objects die together in the old generation and,
 * with no allocation to follow, V8 keeps their pages: RSS would stay high for minutes. One full collection returns them.
 * The two modules it needs cost about 4 MB, so they are loaded at the first burst, not at start.
 */
async function collectGarbage(): Promise<void> {
  if (fullGc === undefined) {
    try {
      const [{ setFlagsFromString }, { runInNewContext }] = await Promise.all([import("node:v8"), import("node:vm")]);
      setFlagsFromString("--expose-gc");
      fullGc = runInNewContext("gc") as () => void;
    } catch {
      fullGc = null;
    }
  }
  fullGc?.();
}

function listen(port: number, hostname: string | undefined): Deno.TcpListener[] {
  if (hostname !== undefined) return [Deno.listen({ hostname, port, transport: "tcp" })];
  let v6: Deno.TcpListener;
  try {
    v6 = Deno.listen({ hostname: "::", port, transport: "tcp" });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) throw error;
    // IPv6 is off on this host (or in this namespace): IPv4 only.
    return [Deno.listen({ hostname: "0.0.0.0", port, transport: "tcp" })];
  }
  // Where `::` is IPv6-only (net.ipv6.bindv6only=1) the IPv4 port is still free: take it too.
  try {
    return [v6, Deno.listen({ hostname: "0.0.0.0", port: (v6.addr as Deno.NetAddr).port, transport: "tcp" })];
  } catch {
    return [v6];
  }
}

/** Serves `fetch` over HTTP/1.1 with timeouts, a connection cap and an accept loop that never dies. */
export function serveApp(fetch: FetchHandler, options: ServeOptions): AppServer {
  const limits: Limits = {
    headersTimeoutMs: options.headersTimeoutMs ?? SERVER_DEFAULTS.headersTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? SERVER_DEFAULTS.idleTimeoutMs,
    maxHeaderBytes: options.maxHeaderBytes ?? SERVER_DEFAULTS.maxHeaderBytes,
  };
  const maxConnections = options.maxConnections ?? SERVER_DEFAULTS.maxConnections;
  let listeners: Deno.TcpListener[];
  try {
    listeners = listen(options.port, options.hostname);
  } catch (error) {
    const cause = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot listen on port ${options.port}: ${cause}`, { cause: error });
  }
  const port = (listeners[0].addr as Deno.NetAddr).port;
  const hostnames = listeners.map((l) => (l.addr as Deno.NetAddr).hostname);
  const served = new Map<Connection, Promise<void>>();
  const refusing = new Map<Connection, Promise<void>>();
  let stopping = false;
  let acceptError = "";
  const context = { fetch, limits, stopping: () => stopping, origin: `localhost:${port}` };

  // Wakes an accept loop that paused because every served and refusing slot was taken.
  let slotFreed = Promise.withResolvers<void>();
  const wake = () => {
    slotFreed.resolve();
    slotFreed = Promise.withResolvers<void>();
  };
  let peak = 0;
  let collecting: ReturnType<typeof setTimeout> | undefined;
  const track = (
    connection: Connection,
    { map, work }: { map: Map<Connection, Promise<void>>; work: Promise<void> },
  ) => {
    map.set(
      connection,
      work.catch(() => connection.close()).finally(() => {
        map.delete(connection);
        wake();
        const open = served.size + refusing.size;
        if (!stopping && peak >= BURST_CONNECTIONS && open <= peak / 8 && collecting === undefined) {
          peak = open;
          // A second later, so the connections' last closures are gone too.
          collecting = setTimeout(() => {
            collecting = undefined;
            collectGarbage().catch(() => {});
          }, 1000);
        }
      }),
    );
    peak = Math.max(peak, served.size + refusing.size);
  };

  async function acceptLoop(listener: Deno.TcpListener): Promise<void> {
    let backoffMs = 10;
    while (!stopping) {
      if (served.size >= maxConnections && refusing.size >= MAX_REFUSING) {
        // Even refusals are at their limit: leave new connections in the kernel's backlog until a slot frees.
        await slotFreed.promise;
        continue;
      }
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (stopping) return;
        // Out of file descriptors (or any other failure): wait and try again, logging once per change.
        const message = error instanceof Error ? error.message : String(error);
        if (message !== acceptError) {
          acceptError = message;
          options.log?.error("Cannot accept connections on port {port}: {error}; retrying", { port, error: message });
        }
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 1000);
        continue;
      }
      if (acceptError) {
        options.log?.info("Accepting connections on port {port} again", { port });
        acceptError = "";
      }
      backoffMs = 10;
      const connection = new Connection(conn);
      if (stopping) connection.close();
      else if (served.size < maxConnections) {
        track(connection, { map: served, work: serveConnection(connection, context) });
      } else track(connection, { map: refusing, work: refuse(connection) });
    }
  }

  const loops = listeners.map(acceptLoop);
  return {
    port,
    hostnames,
    connections: () => served.size + refusing.size,
    async shutdown({ graceMs = 5000 } = {}) {
      stopping = true;
      wake();
      for (const listener of listeners) {
        try {
          listener.close();
        } catch {
          // already closed
        }
      }
      await Promise.all(loops);
      // Requests in flight end with `connection: close`; connections waiting for a request have nothing to finish.
      for (const connection of served.keys()) if (connection.idle) connection.close();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise((resolve) => timer = setTimeout(resolve, graceMs));
      await Promise.race([Promise.all([...served.values(), ...refusing.values()]), grace]);
      clearTimeout(timer);
      for (const connection of [...served.keys(), ...refusing.keys()]) connection.close();
      clearTimeout(collecting);
    },
  };
}
