/** The original daemon's port check: a port is used when a TCP bind on 0.0.0.0:port fails. */
// setImmediate, not setTimeout: nested zero timeouts are clamped to 4 ms, this yield costs microseconds.
import { setImmediate } from "node:timers";

/** Options of `scanPortsByBind`. */
export interface BindScanOptions {
  /** The address bound (default `0.0.0.0`, as the original). */
  readonly hostname?: string;
  /** Stops the scan between batches. */
  readonly signal?: AbortSignal;
}

/** Ports bound between two yields to the event loop, so a full scan does not stall the HTTP API. */
const BATCH = 1024;

/** Whether a TCP bind on `hostname:port` fails (the listener, if any, is closed at once). */
export function bindFails(port: number, hostname = "0.0.0.0"): boolean {
  try {
    Deno.listen({ hostname, port, transport: "tcp" }).close();
    return false;
  } catch {
    // As the original: any failure (in use, or no permission for a low port) counts as used.
    return true;
  }
}

/**
 * The used ports of `ranges` (inclusive) by trying to bind each one, as a 65536-entry bitmap (1 = used).
 * It briefly holds each free port, so it can steal one from a server that is starting: prefer /proc.
 */
export async function scanPortsByBind(
  ranges: readonly (readonly [number, number])[],
  options: BindScanOptions = {},
): Promise<Uint8Array> {
  const hostname = options.hostname ?? "0.0.0.0";
  const bitmap = new Uint8Array(65536);
  let sinceYield = 0;
  for (const [start, end] of ranges) {
    for (let port = start; port <= end; port++) {
      if (bindFails(port, hostname)) bitmap[port] = 1;
      if (++sinceYield === BATCH) {
        sinceYield = 0;
        await new Promise((resolve) => setImmediate(resolve));
        options.signal?.throwIfAborted();
      }
    }
  }
  return bitmap;
}
