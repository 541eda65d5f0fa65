/** Streams read into the consumer's memory (core/byte_stream.ts): BYOB and default sources and consumers. */
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import {
  byteReader,
  byteStreamFrom,
  PIECE_BYTES,
  readFull,
  WriteStalledError,
  writeWithin,
} from "../../core/byte_stream.ts";

/** `total` bytes counting up from 0 (mod 251), in chunks of `size`, from a default (not byte) stream. */
function counting(total: number, size: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      const n = Math.min(size, total - sent);
      controller.enqueue(Uint8Array.from({ length: n }, (_, i) => (sent + i) % 251));
      sent += n;
    },
  });
}

/** A byte stream over `source` whose reads record the size of the buffer each one was handed. */
function recordingByteStream(source: ReadableStream<Uint8Array>, seen: number[]): ReadableStream<Uint8Array> {
  const reader = byteReader(source);
  return byteStreamFrom({
    read(into) {
      seen.push(into.buffer.byteLength);
      return reader.read(into);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

function assertCounting(bytes: Uint8Array, from: number): void {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== (from + i) % 251) throw new Error(`byte ${from + i} is ${bytes[i]}`);
  }
}

Deno.test("byteReader reads a default stream into the caller's buffer, keeping the rest for the next read", async () => {
  const reader = byteReader(counting(1000, 700));
  const into = new Uint8Array(300);
  const sizes: number[] = [];
  let at = 0;
  for (;;) {
    const got = await reader.read(into);
    if (got.length === 0) break;
    assert(got.buffer === into.buffer, "a copying read fills the caller's own memory");
    assertCounting(got, at);
    at += got.length;
    sizes.push(got.length);
  }
  assertEquals(sizes, [300, 300, 100, 300]);
});

Deno.test("a BYOB consumer's one buffer is the memory every layer reads into, and every byte arrives in order", async () => {
  const seen: number[] = [];
  // Two layers of byte streams over a default source, read with one 100,000-byte buffer.
  const stream = recordingByteStream(recordingByteStream(counting(1_000_000, 30_000), seen), seen);
  const reader = byteReader(stream);
  let buffer = new ArrayBuffer(100_000);
  let at = 0;
  for (;;) {
    const got = await reader.read(new Uint8Array(buffer));
    if (got.length === 0) break;
    assertCounting(got, at);
    at += got.length;
    buffer = got.buffer as ArrayBuffer;
  }
  assertEquals(at, 1_000_000);
  assert(seen.length > 0 && seen.every((n) => n === 100_000), `buffers handed down: ${[...new Set(seen)]}`);
});

Deno.test("a default reader of a byte stream gets pieces of at most 64 KiB; PIECE_BYTES caps a larger buffer", async () => {
  const sizes: number[] = [];
  for await (const piece of recordingByteStream(counting(200_000, 200_000), [])) sizes.push(piece.length);
  assertEquals(sizes, [65536, 65536, 65536, 200_000 - 3 * 65536]);
  const seen: number[] = [];
  const reader = byteReader(recordingByteStream(counting(1_000_000, 1_000_000), seen));
  const got = await reader.read(new Uint8Array(PIECE_BYTES * 2));
  assertEquals(got.length, PIECE_BYTES);
});

Deno.test("readFull gathers small pieces until the buffer is full or the stream ends", async () => {
  const reader = byteReader(recordingByteStream(counting(25_000, 1000), []));
  const sizes: number[] = [];
  let buffer = new ArrayBuffer(10_000);
  let at = 0;
  for (;;) {
    const got = await readFull(reader.read, new Uint8Array(buffer));
    if (got.length === 0) break;
    assertCounting(got, at);
    at += got.length;
    sizes.push(got.length);
    buffer = got.buffer as ArrayBuffer;
  }
  assertEquals(sizes, [10_000, 10_000, 5000]);
});

Deno.test("a source's failure fails the stream with its error; a cancel reaches the source with its reason", async () => {
  const broken = byteStreamFrom({
    read: () => Promise.reject(new Error("Disk on fire")),
    cancel: () => {},
  });
  await assertRejects(() => byteReader(broken).read(new Uint8Array(10)), Error, "Disk on fire");
  let reason: unknown = null;
  const endless = byteStreamFrom({
    read: (into) => Promise.resolve(into.subarray(0, 1)),
    cancel: (why) => void (reason = why),
  });
  const reader = byteReader(endless);
  assertEquals((await reader.read(new Uint8Array(10))).length, 1);
  await reader.cancel("receiver left");
  assertEquals(reason, "receiver left");
});

Deno.test("writeWithin: a write that does not settle in time is stopped and fails naming who took nothing", async () => {
  let stopped = false;
  let fail: (error: Error) => void = () => {};
  const hung = new Promise<void>((_, reject) => (fail = reject));
  const error = await assertRejects(
    () =>
      writeWithin(hung, 50, {
        stop: () => {
          stopped = true;
          fail(new Error("Broken pipe"));
        },
        who: "the Docker Engine",
      }),
    WriteStalledError,
    "the Docker Engine took no data for 0.05 s",
  );
  assert(stopped, "stop was called");
  assertEquals((error as WriteStalledError).stallMs, 50);
  assertEquals(await writeWithin(Promise.resolve(7), 50, { stop: () => {}, who: "x" }), 7);
  await assertRejects(
    () => writeWithin(Promise.reject(new Error("Disk full")), 50, { stop: () => {}, who: "x" }),
    Error,
    "Disk full",
  );
});
