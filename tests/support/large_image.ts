/** Images of a chosen size for the stream tests and benchmarks, generated as they are sent (never whole in memory). */

const BLOCK = 1024 * 1024;

function octal(value: number, length: number): string {
  return value.toString(8).padStart(length - 1, "0") + "\0";
}

/** A ustar header of one regular file. */
function fileHeader(name: string, size: number): Uint8Array {
  const header = new Uint8Array(512);
  const encoder = new TextEncoder();
  const put = (at: number, text: string) => header.set(encoder.encode(text), at);
  put(0, name);
  put(100, octal(0o644, 8));
  put(108, octal(0, 8));
  put(116, octal(0, 8));
  put(124, octal(size, 12));
  put(136, octal(1_600_000_000, 12));
  put(148, "        ");
  put(156, "0");
  put(257, "ustar\0");
  put(263, "00");
  const sum = header.reduce((a, b) => a + b, 0);
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return header;
}

/**
 * A root file system tar of one file of `bytes` pseudo-random bytes (xorshift from `seed`, so two seeds give two
 * different layers), made block by block as it is read.
 */
export function largeRootfsTar(bytes: number, seed: number): ReadableStream<Uint8Array> {
  const size = Math.ceil(bytes / BLOCK) * BLOCK;
  let sent = -1;
  let state = (seed * 2654435761) >>> 0 || 1;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent < 0) {
        controller.enqueue(fileHeader("data.bin", size));
        sent = 0;
        return;
      }
      if (sent >= size) {
        controller.enqueue(new Uint8Array(1024));
        controller.close();
        return;
      }
      const block = new Uint32Array(BLOCK / 4);
      for (let i = 0; i < block.length; i++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        block[i] = state >>> 0;
      }
      sent += BLOCK;
      controller.enqueue(new Uint8Array(block.buffer));
    },
  }, { highWaterMark: 0 });
}

/** Imports a `bytes`-sized image into the Docker daemon at `socketPath` as `ref` (`docker import`); returns its ID. */
export async function importLargeImage(
  socketPath: string,
  ref: string,
  options: { bytes: number; seed: number },
): Promise<string> {
  const colon = ref.lastIndexOf(":");
  const query = new URLSearchParams({ fromSrc: "-", repo: ref.slice(0, colon), tag: ref.slice(colon + 1) });
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socketPath } });
  try {
    const response = await fetch(`http://docker/images/create?${query}`, {
      method: "POST",
      client,
      body: largeRootfsTar(options.bytes, options.seed),
      headers: { "Content-Type": "application/x-tar" },
    });
    const text = await response.text();
    const id = /"status":"(sha256:[0-9a-f]{64})"/.exec(text)?.[1];
    if (response.status !== 200 || !id) throw new Error(`Cannot import image ${ref}: ${text.slice(0, 300)}`);
    return id;
  } finally {
    client.close();
  }
}

/** Passes the first `bytes` of `input`, then fails as a connection reset would. */
export function cutStream(input: ReadableStream<Uint8Array>, bytes: number): ReadableStream<Uint8Array> {
  const reader = input.getReader();
  let passed = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (passed >= bytes) {
        await reader.cancel();
        controller.error(new Error(`connection reset after ${passed} bytes`));
        return;
      }
      const chunk = await reader.read();
      if (chunk.done) {
        controller.close();
        return;
      }
      const piece = chunk.value.subarray(0, bytes - passed);
      passed += piece.length;
      controller.enqueue(piece);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * Reads a tar archive whole (a test's image is small) and gives its first `bytes` up to the first entry boundary at
 * or past half of it, then fails: there a plain tar reader sees a clean end of archive, the hardest cut to notice.
 */
export async function cutAtEntryBoundary(
  archive: ReadableStream<Uint8Array>,
): Promise<{ stream: ReadableStream<Uint8Array>; at: number; total: number }> {
  const whole = new Uint8Array(await new Response(archive).arrayBuffer());
  const decoder = new TextDecoder();
  let at = 0;
  while (at + 512 <= whole.length && at < whole.length / 2) {
    const header = whole.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const size = parseInt(decoder.decode(header.subarray(124, 136)).replace(/\0.*$/, "").trim(), 8) || 0;
    at += 512 + Math.ceil(size / 512) * 512;
  }
  const head = whole.subarray(0, at);
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(head);
    },
    pull(controller) {
      controller.error(new Error(`connection reset after ${at} bytes`));
    },
  });
  return { stream, at, total: whole.length };
}
