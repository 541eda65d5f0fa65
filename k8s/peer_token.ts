/**
 * The token the fan-out sends to the other daemons: a projected service account token bound to the audience
 * `polarstack-daemon` (useless against the API server), read from its file again whenever the kubelet replaces it.
 */
import type { Logger } from "../core/types.ts";

/** Options of the reader. */
export interface PeerTokenOptions {
  /** Where a missing or unreadable file is reported (once per change). */
  readonly log: Logger;
}

/** Makes a function that returns the token in `path` (re-read when the file changes), or null when it is missing. */
export function createPeerTokenReader(path: string, options: PeerTokenOptions): () => string | null {
  let cached: { token: string; version: string } | null = null;
  let failing = false;
  return () => {
    try {
      // The kubelet swaps a new file in (new inode and mtime) when it rotates the token.
      const info = Deno.statSync(path);
      const version = `${info.ino}:${info.mtime?.getTime()}:${info.size}`;
      if (cached?.version !== version) cached = { token: Deno.readTextFileSync(path).trim(), version };
      if (cached.token === "") throw new Error("the file is empty");
    } catch (error) {
      cached = null;
      if (!failing) {
        options.log.warn(
          "Cannot read the peer token {path}: {error}; the fan-out sends no token (never the API server's), so the other daemons refuse it: mount a projected service account token with audience polarstack-daemon there (--peer-token-file)",
          { path, error: (error as Error).message },
        );
      }
      failing = true;
      return null;
    }
    if (failing) options.log.info("The peer token {path} can be read again", { path });
    failing = false;
    return cached.token;
  };
}
