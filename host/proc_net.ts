/** The kernel's TCP socket tables (/proc/net/tcp, /proc/net/tcp6): the local port of every socket, read whole. */
// setImmediate, not setTimeout: nested zero timeouts are clamped to 4 ms, this yield costs microseconds.
import { setImmediate } from "node:timers";

/** The socket tables read by default. */
export const PROC_NET_TCP_PATHS: readonly string[] = ["/proc/net/tcp", "/proc/net/tcp6"];

const COLON = 0x3a;
const SPACE = 0x20;
const NEWLINE = 0x0a;

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/**
 * The local port of the socket in one line of /proc/net/tcp(6) (without its newline), whatever its state, or -1
 * for the header or a line that does not parse. Reads bytes only: no string is made.
 */
export function localPortOfLine(buf: Uint8Array): number {
  const end = buf.length;
  let i = 0;
  while (i < end && buf[i] === SPACE) i++;
  if (i >= end || buf[i] < 0x30 || buf[i] > 0x39) return -1; // the slot number is decimal
  while (i < end && buf[i] !== COLON) i++;
  i++;
  while (i < end && buf[i] === SPACE) i++;
  // Local address: 8 (IPv4) or 32 (IPv6) hex digits, then ':' and a 4-digit hex port.
  const addressStart = i;
  while (i < end && buf[i] !== COLON) i++;
  const addressLength = i - addressStart;
  if (addressLength !== 8 && addressLength !== 32) return -1;
  i++;
  if (i + 4 > end) return -1;
  let port = 0;
  for (let k = 0; k < 4; k++) {
    const v = hexValue(buf[i + k]);
    if (v < 0) return -1;
    port = port * 16 + v;
  }
  return buf[i + 4] === SPACE ? port : -1;
}

/**
 * Marks in `ports` (65536 entries, index = port) the local port of every complete line in `buf`; returns the offset
 * just after the last complete line (the rest is a partial line for the next read).
 */
export function markLocalPorts(buf: Uint8Array, ports: Uint8Array): number {
  let lineStart = 0;
  for (;;) {
    const newline = buf.indexOf(NEWLINE, lineStart);
    if (newline < 0) return lineStart;
    const port = localPortOfLine(buf.subarray(lineStart, newline));
    if (port >= 0) ports[port] = 1;
    lineStart = newline + 1;
  }
}

/** Options of `readProcLocalPorts`. */
export interface ReadProcOptions {
  /** The tables to read (default /proc/net/tcp and /proc/net/tcp6; a missing tcp6 is skipped: IPv6 off). */
  readonly paths?: readonly string[];
  /** Bytes asked for per read; the only buffer held. */
  readonly bufferSize?: number;
  /** Stops the read between chunks. */
  readonly signal?: AbortSignal;
}

/** The result of `readProcLocalPorts`. */
export interface ProcLocalPorts {
  /** 65536 entries, index = port, 1 = the local port of some TCP socket. */
  readonly ports: Uint8Array;
  /** How many `read()` calls it took: each one is a point where the kernel resumes its walk. */
  readonly reads: number;
}

/** Reads between two yields to the event loop (a few milliseconds of a huge table). */
const READS_PER_YIELD = 256;

/**
 * The local ports of every TCP socket of this host (this network namespace), in every state the tables list.
 * Each table is read to its end through one buffer. The kernel hands out at most one page of rows per `read()` of
 * these files whatever the buffer, and resumes its walk at a bucket and an offset in it: a socket that closes
 * between two reads can hide another of its bucket. So one read is no snapshot; the job confirms a port's absence
 * with a second scan.
 * Reads are synchronous (an async read per chunk costs a thread hop each) with a yield every few hundred reads.
 */
export async function readProcLocalPorts(options: ReadProcOptions = {}): Promise<ProcLocalPorts> {
  const paths = options.paths ?? PROC_NET_TCP_PATHS;
  const ports = new Uint8Array(65536);
  const buf = new Uint8Array(options.bufferSize ?? 64 * 1024);
  let reads = 0;
  for (const path of paths) {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound && path.endsWith("6")) continue;
      throw new Error(`Cannot read socket table "${path}": ${(error as Error).message}`);
    }
    try {
      let filled = 0;
      for (;;) {
        if (++reads % READS_PER_YIELD === 0) {
          await new Promise((resolve) => setImmediate(resolve));
          options.signal?.throwIfAborted();
        }
        if (filled === buf.length) {
          throw new Error(`Cannot read socket table "${path}": a line is longer than the buffer`);
        }
        const n = file.readSync(buf.subarray(filled));
        if (n === null) break;
        filled += n;
        const consumed = markLocalPorts(buf.subarray(0, filled), ports);
        buf.copyWithin(0, consumed, filled);
        filled -= consumed;
      }
      // A last line without a newline still counts.
      if (filled > 0) {
        const port = localPortOfLine(buf.subarray(0, filled));
        if (port >= 0) ports[port] = 1;
      }
    } finally {
      file.close();
    }
  }
  options.signal?.throwIfAborted();
  return { ports, reads };
}
