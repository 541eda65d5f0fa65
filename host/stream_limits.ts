/**
 * Limits on a byte stream between two image stores: a bandwidth cap (bytes per second, smoothed over 64 KiB
 * pieces) and a stall timeout, with a count of the bytes that passed for progress.
 */
import { type ByteReader, byteReader, byteStreamFrom, readFull } from "../core/byte_stream.ts";

/** A stream that stopped sending for longer than its stall timeout. */
export class StreamStalledError extends Error {
  /** Builds the error. */
  constructor(readonly stallMs: number) {
    super(`No data for ${stallMs / 1000} s: the stream stalled`);
    this.name = "StreamStalledError";
  }
}

/** Options of `limitStream`. */
export interface StreamLimits {
  /** At most this many bytes per second; absent or 0: no cap. */
  readonly bytesPerSecond?: number;
  /** Fail with `StreamStalledError` after this long without a byte; absent: no stall check. */
  readonly stallMs?: number;
  /** Called with the size of every piece that passes. */
  readonly onBytes?: (bytes: number) => void;
  /** The clock in ms (default `performance.now`). */
  readonly now?: () => number;
  /** Waits this many ms (default a timer). */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** How long to wait before passing more, after `sent` bytes in `elapsedMs` at `bytesPerSecond`. */
export function throttleDelayMs(sent: number, elapsedMs: number, bytesPerSecond: number): number {
  if (!(bytesPerSecond > 0)) return 0;
  return Math.max(0, (sent / bytesPerSecond) * 1000 - elapsedMs);
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Wraps `input` with the limits; cancelling the result cancels `input`. Pieces go straight from `input` into the
 * consumer's memory, each as large as its buffer unless the stream ends (see core/byte_stream.ts); the stall timeout
 * applies to every read of `input`.
 */
export function limitStream(input: ReadableStream<Uint8Array>, limits: StreamLimits): ReadableStream<Uint8Array> {
  const now = limits.now ?? (() => performance.now());
  const sleep = limits.sleep ?? defaultSleep;
  const reader = byteReader(input);
  const rate = limits.bytesPerSecond ?? 0;
  let started = -1;
  let sent = 0;

  const watch = limits.stallMs === undefined ? null : stallWatch(reader, limits.stallMs);
  const read = watch?.read ?? reader.read;

  return byteStreamFrom({
    async read(into) {
      if (started < 0) started = now();
      let piece: Uint8Array;
      try {
        piece = await readFull(read, into);
      } catch (error) {
        watch?.stop();
        await reader.cancel(error).catch(() => {});
        throw error;
      }
      if (piece.length === 0) {
        watch?.stop();
        return piece;
      }
      const wait = throttleDelayMs(sent, now() - started, rate);
      if (wait > 0) await sleep(wait);
      sent += piece.length;
      limits.onBytes?.(piece.length);
      return piece;
    },
    cancel(reason) {
      watch?.stop();
      return reader.cancel(reason);
    },
  });
}

/**
 * Reads of `reader` that fail with `StreamStalledError` once one waits `stallMs` for data. One timer watches all
 * reads, re-armed once per `stallMs`, where a timer and a race for every read would cost several objects each.
 */
function stallWatch(reader: ByteReader, stallMs: number): { read: ByteReader["read"]; stop(): void } {
  let since: number | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stalled: StreamStalledError | null = null;
  const check = () => {
    timer = undefined;
    if (since === null) return;
    const waited = performance.now() - since;
    if (waited < stallMs) {
      timer = setTimeout(check, stallMs - waited);
      return;
    }
    stalled = new StreamStalledError(stallMs);
    // A cancel ends the read that waits, with no bytes.
    reader.cancel(stalled).catch(() => {});
  };
  return {
    async read(into) {
      since = performance.now();
      timer ??= setTimeout(check, stallMs);
      try {
        const piece = await reader.read(into);
        if (stalled) throw stalled;
        return piece;
      } finally {
        since = null;
      }
    },
    stop() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
