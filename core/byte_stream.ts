/**
 * Moving a long byte stream through memory the consumer owns. A default reader of a fetch body gets a new 64 KiB
 * buffer for every piece (often carrying far less), and dead buffers pile up in the allocator until V8 collects
 * them: copying an image that way grew a daemon's heap by about 18 MB. Read with `byteReader` into one buffer and
 * pass on with `byteStreamFrom`, and a piece costs no new buffer at all.
 */

/** Reads a stream into memory the caller hands in. */
export interface ByteReader {
  /**
   * Reads at most `into.length` bytes into `into` (which must not be empty). Resolves with the bytes read, a view of
   * the same memory (under a new ArrayBuffer object when a BYOB read moved it: read on into the view's buffer), and
   * no bytes only at the end.
   */
  read(into: Uint8Array): Promise<Uint8Array>;
  /** Cancels the stream. */
  cancel(reason?: unknown): Promise<void>;
}

/**
 * The largest piece a stream made by `byteStreamFrom` passes at once, and the buffer its consumers read into: a
 * fetch body comes in pieces of about 30 KB, and each piece costs every process on the way a few syscalls and
 * promises, so pieces are gathered up to this size before they go on.
 */
export const PIECE_BYTES = 256 * 1024;

/** The buffer a default reader of a `byteStreamFrom` stream gets for each piece. */
const DEFAULT_PIECE_BYTES = 64 * 1024;

/**
 * A reader of `stream` into the caller's memory: a BYOB reader when the stream is a byte stream (fetch and socket
 * bodies, child process output), else a default reader whose pieces are copied in, the rest kept for the next read.
 */
export function byteReader(stream: ReadableStream<Uint8Array>): ByteReader {
  let byob: ReadableStreamBYOBReader | null = null;
  try {
    byob = stream.getReader({ mode: "byob" });
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
  }
  if (byob !== null) {
    const reader = byob;
    return {
      async read(into) {
        const result = await reader.read(into);
        // A cancelled stream hands back no view at all.
        return result.value ?? new Uint8Array(0);
      },
      cancel: (reason) => reader.cancel(reason),
    };
  }
  const reader = stream.getReader();
  let rest: Uint8Array = new Uint8Array(0);
  return {
    async read(into) {
      while (rest.length === 0) {
        const result = await reader.read();
        if (result.done) return into.subarray(0, 0);
        rest = result.value;
      }
      const n = Math.min(rest.length, into.length);
      into.set(rest.subarray(0, n));
      rest = rest.subarray(n);
      return into.subarray(0, n);
    },
    cancel: (reason) => reader.cancel(reason),
  };
}

/**
 * Reads with `read` into `into` until it is full or the stream ended, so that few large pieces go on; resolves with
 * the bytes read (no bytes: the end), in the memory `read` handed back.
 */
export async function readFull(
  read: (into: Uint8Array) => Promise<Uint8Array>,
  into: Uint8Array,
): Promise<Uint8Array> {
  // A BYOB read detaches `into`: keep its place and size.
  const { byteOffset: start, length: size } = into;
  let buffer = into.buffer as ArrayBuffer;
  let filled = 0;
  while (filled < size) {
    const got = await read(new Uint8Array(buffer, start + filled, size - filled));
    // A cancelled BYOB read hands back no memory: what was in it is gone with it.
    if (got.length === 0) return got.buffer.byteLength === 0 ? got : new Uint8Array(got.buffer, start, filled);
    buffer = got.buffer as ArrayBuffer;
    filled += got.length;
  }
  return new Uint8Array(buffer, start, filled);
}

/** A consumer that took none of what was written to it for longer than its stall timeout. */
export class WriteStalledError extends Error {
  /** `who` names the consumer, e.g. `the Docker Engine`. */
  constructor(readonly stallMs: number, who: string) {
    super(`${who} took no data for ${stallMs / 1000} s`);
    this.name = "WriteStalledError";
  }
}

/**
 * Awaits `write`. When it has not settled after `stallMs` (absent: no limit), calls `stop`, which must make it
 * settle (close the connection, kill the process), and throws `WriteStalledError` naming `who`.
 */
export async function writeWithin<T>(
  write: Promise<T>,
  stallMs: number | undefined,
  options: { stop: () => void; who: string },
): Promise<T> {
  if (stallMs === undefined) return await write;
  let stalled = false;
  const timer = setTimeout(() => {
    stalled = true;
    options.stop();
  }, stallMs);
  try {
    return await write;
  } catch (error) {
    if (stalled) throw new WriteStalledError(stallMs, options.who);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** The pieces, one after another, in one array. */
export function joinBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Where `byteStreamFrom` takes its pieces. */
export interface ByteSource {
  /** Reads the next piece into `into`, as `ByteReader.read` does (no bytes: the end); a throw fails the stream. */
  read(into: Uint8Array): Promise<Uint8Array>;
  /** Called when the consumer cancels. */
  cancel(reason: unknown): Promise<void> | void;
}

/**
 * A byte stream whose pieces `source` reads straight into the consumer's memory: a BYOB consumer's own buffer, or
 * a 64 KiB one for a default reader.
 */
export function byteStreamFrom(source: ByteSource): ReadableStream<Uint8Array> {
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: DEFAULT_PIECE_BYTES,
    async pull(controller) {
      // Never null: with autoAllocateChunkSize every read, a default one too, comes with a request.
      const request = controller.byobRequest!;
      const view = request.view as Uint8Array;
      const into = new Uint8Array(view.buffer, view.byteOffset, Math.min(view.byteLength, PIECE_BYTES));
      let got: Uint8Array;
      try {
        got = await source.read(into);
      } catch (error) {
        controller.error(error);
        return;
      }
      if (got.length === 0) controller.close();
      // A copying source filled the request's own buffer; a BYOB one moved it, and answers in a view of it. A closed
      // stream still answers its pending read, with no bytes.
      if (got.buffer === view.buffer) request.respond(got.length);
      else request.respondWithNewView(got);
    },
    cancel: (reason) => source.cancel(reason),
  });
}
