/** The bandwidth cap and the stall timeout of host/stream_limits.ts, with a test clock. */
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { limitStream, StreamStalledError, throttleDelayMs } from "../../host/stream_limits.ts";

Deno.test("throttleDelayMs waits until the bytes sent fit the rate", () => {
  assertEquals(throttleDelayMs(0, 0, 1000), 0);
  assertEquals(throttleDelayMs(1000, 0, 1000), 1000);
  assertEquals(throttleDelayMs(1000, 400, 1000), 600);
  assertEquals(throttleDelayMs(1000, 2000, 1000), 0, "behind schedule: no wait");
  assertEquals(throttleDelayMs(1e9, 0, 0), 0, "no cap");
});

Deno.test("limitStream passes every byte in 64 KiB pieces, waiting as the cap says", async () => {
  let now = 0;
  const waits: number[] = [];
  const source = ReadableStream.from([new Uint8Array(200 * 1024).fill(7), new Uint8Array(10)]);
  let counted = 0;
  const limited = limitStream(source, {
    bytesPerSecond: 64 * 1024,
    now: () => now,
    sleep: (ms) => {
      waits.push(ms);
      now += ms;
      return Promise.resolve();
    },
    onBytes: (n) => (counted += n),
  });
  const pieces: number[] = [];
  for await (const piece of limited) pieces.push(piece.length);
  assertEquals(pieces, [65536, 65536, 65536, 8192, 10]);
  assertEquals(counted, 200 * 1024 + 10);
  // One second per 64 KiB already sent, before each later piece.
  assertEquals(waits, [1000, 1000, 1000, 125]);
});

Deno.test("limitStream fails a stream that sends nothing for the stall timeout, and cancels its source", async () => {
  let cancelled: unknown = null;
  const silent = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array(3));
    },
    pull: () => new Promise(() => {}),
    cancel(reason) {
      cancelled = reason;
    },
  });
  const reader = limitStream(silent, { stallMs: 50 }).getReader();
  assertEquals((await reader.read()).value?.length, 3);
  await assertRejects(() => reader.read(), StreamStalledError, "No data for 0.05 s: the stream stalled");
  assert(cancelled instanceof StreamStalledError);
});
