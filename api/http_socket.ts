/** The socket under one HTTP connection: reads and writes that fail soft, and a timer that closes it. */

/** One accepted connection: its reads and writes, each under a deadline that closes it. */
export class Connection {
  #conn: Deno.Conn;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Bytes read but not yet used (the start of a pipelined request). */
  pending: Uint8Array = new Uint8Array(0);
  /** Waiting for a request with nothing of it received: shutdown may close it at once. */
  idle = true;

  /** Wraps an accepted socket. */
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Whether it was closed, by this side or because a read or write failed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the connection when `ms` pass before {@linkcode disarm}. */
  arm(ms: number): void {
    this.disarm();
    this.#timer = setTimeout(() => this.close(), ms);
  }

  /** Cancels the deadline set by {@linkcode arm}. */
  disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Reads up to `size` bytes; null at the end of the stream, on an error or once closed. */
  async read(size: number): Promise<Uint8Array | null> {
    if (this.#closed) return null;
    const buffer = new Uint8Array(size);
    try {
      const n = await this.#conn.read(buffer);
      return n === null ? null : buffer.subarray(0, n);
    } catch {
      return null;
    }
  }

  /** Writes all of `bytes`, each write under `timeoutMs`; false (and closed) when it could not. */
  async write(bytes: Uint8Array, timeoutMs: number): Promise<boolean> {
    let offset = 0;
    while (offset < bytes.length) {
      if (this.#closed) return false;
      this.arm(timeoutMs);
      try {
        offset += await this.#conn.write(bytes.subarray(offset));
      } catch {
        this.close();
        return false;
      } finally {
        this.disarm();
      }
    }
    return true;
  }

  /** Ends the sending side, so the client sees the answer complete while its request is still read. */
  async closeWrite(): Promise<void> {
    try {
      await this.#conn.closeWrite();
    } catch {
      // already closed by the peer
    }
  }

  /** Closes the socket once; later calls do nothing. */
  close(): void {
    this.disarm();
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}
