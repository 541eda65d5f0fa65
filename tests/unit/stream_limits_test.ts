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

Deno.test("limitStream passes every byte in pieces that fill the reader's 64 KiB, waiting as the cap says", async () => {
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
  // The last piece gathers the end of the first chunk and the whole second one.
  assertEquals(pieces, [65536, 65536, 65536, 8202]);
  assertEquals(counted, 200 * 1024 + 10);
  // One second per 64 KiB already sent, before each later piece.
  assertEquals(waits, [1000, 1000, 1000]);
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
  // The 3 bytes wait for more to fill the piece; none come.
  await assertRejects(() => reader.read(), StreamStalledError, "No data for 0.05 s: the stream stalled");
  assert(cancelled instanceof StreamStalledError);
});

Deno.test("limitStream's stall timeout is per read: a slow stream whose gaps stay under it passes whole", async () => {
  let sent = 0;
  const slow = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent === 10) return controller.close();
      await new Promise((resolve) => setTimeout(resolve, 30));
      controller.enqueue(new Uint8Array([sent++]));
    },
  });
  const pieces: number[][] = [];
  // The ten bytes take 300 ms, three times the timeout, and gather into one piece.
  for await (const piece of limitStream(slow, { stallMs: 100 })) pieces.push([...piece]);
  assertEquals(pieces, [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
});
