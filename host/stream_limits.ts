/**
 * Limits on a byte stream between two image stores: a bandwidth cap (bytes per second, smoothed over 64 KiB
 * pieces) and a stall timeout, with a count of the bytes that passed for progress.
 */

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

/** The largest piece passed on at once, so a capped stream flows evenly. */
const PIECE = 64 * 1024;

/** How long to wait before passing more, after `sent` bytes in `elapsedMs` at `bytesPerSecond`. */
export function throttleDelayMs(sent: number, elapsedMs: number, bytesPerSecond: number): number {
  if (!(bytesPerSecond > 0)) return 0;
  return Math.max(0, (sent / bytesPerSecond) * 1000 - elapsedMs);
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Wraps `input` with the limits; cancelling the result cancels `input`. */
export function limitStream(input: ReadableStream<Uint8Array>, limits: StreamLimits): ReadableStream<Uint8Array> {
  const now = limits.now ?? (() => performance.now());
  const sleep = limits.sleep ?? defaultSleep;
  const reader = input.getReader();
  const rate = limits.bytesPerSecond ?? 0;
  let started = -1;
  let sent = 0;
  let pending: Uint8Array | null = null;

  async function read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (limits.stallMs === undefined) return await reader.read();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StreamStalledError(limits.stallMs!)), limits.stallMs);
    });
    try {
      return await Promise.race([reader.read(), stalled]);
    } finally {
      clearTimeout(timer);
    }
  }

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (started < 0) started = now();
      if (pending === null || pending.length === 0) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await read();
        } catch (error) {
          await reader.cancel(error).catch(() => {});
          controller.error(error);
          return;
        }
        if (chunk.done) {
          controller.close();
          return;
        }
        pending = chunk.value;
      }
      const piece = pending.subarray(0, PIECE);
      pending = pending.subarray(piece.length);
      const wait = throttleDelayMs(sent, now() - started, rate);
      if (wait > 0) await sleep(wait);
      sent += piece.length;
      limits.onBytes?.(piece.length);
      controller.enqueue(piece);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
