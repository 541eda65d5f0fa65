/** The kernel's TCP socket tables (/proc/net/tcp, /proc/net/tcp6): listening ports, read as a stream. */
// setImmediate, not setTimeout: nested zero timeouts are clamped to 4 ms, this yield costs microseconds.
import { setImmediate } from "node:timers";

/** One row of /proc/net/tcp or /proc/net/tcp6, decoded. */
export interface ProcNetTcpSocket {
  /** The row number (`sl`). */
  readonly slot: number;
  /** Local address as text: `127.0.0.1`, `::1`, `::ffff:127.0.0.1`. */
  readonly localAddress: string;
  /** Local port. */
  readonly localPort: number;
  /** Remote address as text. */
  readonly remoteAddress: string;
  /** Remote port. */
  readonly remotePort: number;
  /** The kernel's TCP state number (0x0A = LISTEN). */
  readonly state: number;
  /** Whether the socket is a listener (state 0A). */
  readonly listening: boolean;
}

/** The kernel's number of the TCP LISTEN state. */
export const TCP_LISTEN = 0x0a;

/** The kernel's number of the TCP CLOSE state: a listener being closed may still show in the listeners' section. */
const TCP_CLOSE = 0x07;

/** What `listeningPortOfLine` returns for a socket in a connection state (any state but LISTEN and CLOSE). */
export const CONNECTION_ROW = -2;

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
 * The local port of a listening socket in one line of /proc/net/tcp(6) (without its newline), `CONNECTION_ROW` for
 * a socket in a connection state, or -1 for a header, a CLOSE socket or a line that does not parse.
 * Reads bytes only: no string is made.
 */
export function listeningPortOfLine(buf: Uint8Array): number {
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
  i += 4;
  if (buf[i] !== SPACE) return -1;
  // The remote field has the same width as the local one.
  i += 1 + addressLength + 5;
  while (i < end && buf[i] === SPACE) i++;
  if (i + 2 > end) return -1;
  const high = hexValue(buf[i]);
  const low = hexValue(buf[i + 1]);
  if (high < 0 || low < 0) return -1;
  const state = high * 16 + low;
  if (state === TCP_LISTEN) return port;
  return state === TCP_CLOSE ? -1 : CONNECTION_ROW;
}

/** How far the read of one table got, carried from chunk to chunk by `markListeningPorts`. */
export interface TableProgress {
  /** The ports found listening (65536 entries, index = port, 1 = listening); shared by the tables of one scan. */
  readonly ports: Uint8Array;
  /** A connection row was seen: the listeners' section is over. */
  connectionSeen: boolean;
  /** A listener came after a connection row: this table does not list its listeners first. */
  listenerAfterConnection: boolean;
}

/** A `TableProgress` for a table not read yet, marking into `ports`. */
export function tableProgress(ports: Uint8Array): TableProgress {
  return { ports, connectionSeen: false, listenerAfterConnection: false };
}

function markLine(line: Uint8Array, progress: TableProgress) {
  const port = listeningPortOfLine(line);
  if (port >= 0) {
    progress.ports[port] = 1;
    if (progress.connectionSeen) progress.listenerAfterConnection = true;
  } else if (port === CONNECTION_ROW) {
    progress.connectionSeen = true;
  }
}

/**
 * Marks in `progress.ports` the listening ports of the complete lines in `buf`, and notes whether a connection row
 * was seen and whether a listener came after one; returns the offset just after the last complete line (the rest
 * is a partial line for the next read).
 */
export function markListeningPorts(buf: Uint8Array, progress: TableProgress): number {
  let lineStart = 0;
  for (;;) {
    const newline = buf.indexOf(NEWLINE, lineStart);
    if (newline < 0) return lineStart;
    markLine(buf.subarray(lineStart, newline), progress);
    lineStart = newline + 1;
  }
}

function decodeAddress(hex: string): string {
  // The kernel prints the address as 32-bit words in host byte order (little endian here).
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(word.slice(b, b + 2), 16));
  }
  if (bytes.length === 4) return bytes.join(".");
  return formatIpv6(bytes);
}

function formatIpv6(bytes: number[]): string {
  const isMapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (isMapped) return `::ffff:${bytes.slice(12).join(".")}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes[i] * 256 + bytes[i + 1]);
  // RFC 5952: compress the longest run (two or more) of zero groups.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const text = groups.map((g) => g.toString(16));
  if (bestStart < 0) return text.join(":");
  return `${text.slice(0, bestStart).join(":")}::${text.slice(bestStart + bestLength).join(":")}`;
}

const LINE =
  /^\s*(\d+):\s+([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})\s+([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})\s+([0-9A-Fa-f]{2})(?:\s|$)/;

/** Decodes one line of /proc/net/tcp or /proc/net/tcp6; null for the header or a line that does not parse. */
export function parseProcNetTcpLine(line: string): ProcNetTcpSocket | null {
  const m = LINE.exec(line);
  if (!m) return null;
  const state = parseInt(m[6], 16);
  return {
    slot: Number(m[1]),
    localAddress: decodeAddress(m[2]),
    localPort: parseInt(m[3], 16),
    remoteAddress: decodeAddress(m[4]),
    remotePort: parseInt(m[5], 16),
    state,
    listening: state === TCP_LISTEN,
  };
}

/** Options of `readListeningTcpPorts`. */
export interface ReadListeningOptions {
  /** The tables to read (default /proc/net/tcp and /proc/net/tcp6; a missing tcp6 is skipped: IPv6 off). */
  readonly paths?: readonly string[];
  /** Bytes read at a time; the only buffer held (a line is about 150 bytes). */
  readonly bufferSize?: number;
  /** Stop reading a table after the chunk that holds its first connection row (see `createProcPortReader`). */
  readonly untilConnections?: boolean;
  /** Stops the read between chunks. */
  readonly signal?: AbortSignal;
}

/** The result of `readListeningTcpPorts`. */
export interface ListeningPorts {
  /** 65536 entries, index = port, 1 = listening. */
  readonly ports: Uint8Array;
  /** The first table that listed a listener after a connection row, or null when each listed its listeners first. */
  readonly outOfOrderTable: string | null;
}

/** Reads between two yields to the event loop (about 2 MB of a huge table, a few milliseconds). */
const READS_PER_YIELD = 128;

/**
 * The listening TCP ports of this host (this network namespace).
 * Streams each table through one fixed buffer, so a huge table on a busy host costs no more memory.
 * Reads are synchronous (an async read per chunk costs a thread hop each: 40% slower) with a yield to the
 * event loop every few hundred reads.
 */
export async function readListeningTcpPorts(options: ReadListeningOptions = {}): Promise<ListeningPorts> {
  const paths = options.paths ?? PROC_NET_TCP_PATHS;
  const ports = new Uint8Array(65536);
  // 16 KiB: big enough for few reads, small enough that a read stopped at the connections wastes little kernel work.
  const buf = new Uint8Array(options.bufferSize ?? 16 * 1024);
  let outOfOrderTable: string | null = null;
  let reads = 0;
  for (const path of paths) {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound && path.endsWith("6")) continue;
      throw new Error(`Cannot read socket table "${path}": ${(error as Error).message}`);
    }
    const progress = tableProgress(ports);
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
        const consumed = markListeningPorts(buf.subarray(0, filled), progress);
        buf.copyWithin(0, consumed, filled);
        filled -= consumed;
        if (options.untilConnections && progress.connectionSeen) {
          filled = 0;
          break;
        }
      }
      // A last line without a newline still counts.
      if (filled > 0) markLine(buf.subarray(0, filled), progress);
    } finally {
      file.close();
    }
    if (progress.listenerAfterConnection) outOfOrderTable ??= path;
  }
  options.signal?.throwIfAborted();
  return { ports, outOfOrderTable };
}

/** Options of `createProcPortReader`. */
export interface ProcPortReaderOptions {
  /** The tables to read (default /proc/net/tcp and /proc/net/tcp6). */
  readonly paths?: readonly string[];
  /** Called once, with the table, when one lists a listener after a connection: all reads are full from then on. */
  readonly onOutOfOrder?: (path: string) => void;
}

/**
 * Reads the listening ports as fast as is safe. Linux lists a table's listeners before its connections
 * (net/ipv4/tcp_ipv4.c walks the listening hash, then the established hash), so a read can stop at the first
 * connection row: on a busy host that skips most of the table. The first read goes through the whole tables and
 * checks that order; if it, or any later read, sees a listener after a connection (a /proc that is not Linux's),
 * every read from then on is a full one, the current one included.
 */
export function createProcPortReader(
  options: ProcPortReaderOptions = {},
): (signal?: AbortSignal) => Promise<Uint8Array> {
  let mode: "check" | "until-connections" | "full" = "check";
  return async (signal) => {
    const untilConnections = mode === "until-connections";
    const read = await readListeningTcpPorts({ paths: options.paths, untilConnections, signal });
    if (read.outOfOrderTable === null) {
      if (mode === "check") mode = "until-connections";
      return read.ports;
    }
    if (mode !== "full") {
      mode = "full";
      options.onOutOfOrder?.(read.outOfOrderTable);
    }
    return untilConnections ? (await readListeningTcpPorts({ paths: options.paths, signal })).ports : read.ports;
  };
}
