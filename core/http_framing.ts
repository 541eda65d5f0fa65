/**
 * HTTP/1.1 framing on bytes: where a head ends, and chunks framed in place (a piece read into a buffer after room for
 * its size line goes as one chunk, with no copy).
 */

const encoder = new TextEncoder();

/** Room for a chunk's size line before its data: six hex digits (leading zeros are valid) and CRLF. */
export const CHUNK_HEAD = 8;

/** Room a chunk needs after its data (CRLF). */
export const CHUNK_TAIL = 2;

/** Frames the `n` bytes at `CHUNK_HEAD` of `buffer` as one chunk, in the room around them; at most 16 MiB - 1. */
export function frameChunk(buffer: ArrayBuffer, n: number): Uint8Array {
  const out = new Uint8Array(buffer, 0, CHUNK_HEAD + n + CHUNK_TAIL);
  out.set(encoder.encode(`${n.toString(16).padStart(CHUNK_HEAD - 2, "0")}\r\n`));
  out.set([13, 10], CHUNK_HEAD + n);
  return out;
}

/** Where the empty line that ends a head starts in `bytes`, searching from `from` on; -1 while it has not come. */
export function findHeadEnd(bytes: Uint8Array, from: number): number {
  for (let i = Math.max(0, from - 3); i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i;
  }
  return -1;
}
