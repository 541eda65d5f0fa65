/**
 * `GET /images/export?ref=<ref>` for the other daemons: streams one image of this host's store, with `X-Image-Id`,
 * `X-Image-Size` and, when the store knows it, `Content-Length`. Only references of a version ConfigMap are served,
 * to callers with a token bound to the daemon's audience, at most `concurrency` at once.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { normalizeImageRef } from "../controllers/core_version/image_ref.ts";
import { byteReader, byteStreamFrom, readFull } from "../core/byte_stream.ts";
import type { Logger } from "../core/types.ts";
import type { Refusal } from "./auth.ts";

/** An image as the store hands it out. */
export interface ExportedImage {
  /** Its ID (config digest). */
  readonly id: string;
  /** Its size as the store reports it (bytes). */
  readonly size: number;
  /** The archive's exact length, when the store knows it. */
  readonly length?: number;
  /** The archive. */
  readonly stream: ReadableStream<Uint8Array>;
}

/** What the endpoint needs; it never touches the host itself. */
export interface ImageExportDeps {
  /** Checks the caller (the POSTs' authorizer); absent: no check (`--api-auth=none`, local mode). */
  readonly authorize?: (authorization: string | undefined) => Promise<Refusal | null>;
  /** Every image reference of every version ConfigMap, as written there. */
  readonly versionImages: () => Promise<readonly string[]>;
  /** Opens the image's stream from the local store; null when the store has no such image. */
  readonly exportImage: (ref: string, options: { signal: AbortSignal }) => Promise<ExportedImage | null>;
  /** Streams at once (`--image-export-concurrency`); more get 429. */
  readonly concurrency: number;
  /** Seconds a refused caller is told to wait (default 10). */
  readonly retryAfterSeconds?: number;
  /** Where started, finished and broken exports are logged. */
  readonly log: Logger;
}

/** The endpoint and its count of streams in progress (shown to the peers that choose whom to ask). */
export interface ImageExportEndpoint {
  /** The sub-app: mount it under `/api/v1`. */
  readonly app: Hono<Env>;
  /** Streams in progress now. */
  active(): number;
}

/** The longest reference accepted. */
const MAX_REF = 512;

type Env = { Variables: { requestId: string } };

/** The original's error envelope; `requestId` comes from the app's middleware once mounted. */
function envelope(c: Context<Env>, status: number, message: string) {
  const requestId = c.get("requestId");
  return c.json({ code: String(status), data: null, message, requestId }, status as 400);
}

/** Builds the export endpoint. */
export function createImageExport(deps: ImageExportDeps): ImageExportEndpoint {
  let active = 0;
  const retryAfter = String(deps.retryAfterSeconds ?? 10);
  const app = new Hono<Env>();

  app.get("/images/export", async (c) => {
    if (deps.authorize) {
      const refused = await deps.authorize(c.req.header("authorization"));
      if (refused) return envelope(c, refused.status, refused.message);
    }
    const ref = c.req.query("ref")?.trim() ?? "";
    if (ref === "") return envelope(c, 400, "Missing query parameter ref");
    if (ref.length > MAX_REF || /[\s\0]/.test(ref)) {
      return envelope(c, 400, `Invalid query parameter ref: "${ref.slice(0, 64)}" is not an image reference`);
    }
    let listed: readonly string[];
    try {
      listed = await deps.versionImages();
    } catch (error) {
      c.header("Retry-After", retryAfter);
      return envelope(c, 503, `Cannot read the version ConfigMaps: ${(error as Error).message}`);
    }
    const wanted = normalizeImageRef(ref);
    if (!listed.some((image) => normalizeImageRef(image) === wanted)) {
      return envelope(c, 403, `Image ${ref} may not be exported: it is in no version ConfigMap`);
    }
    if (active >= deps.concurrency) {
      c.header("Retry-After", retryAfter);
      return envelope(c, 429, `Image ${ref} cannot be exported now: ${active} exports in progress (the limit)`);
    }
    active++;
    let released = false;
    const release = () => {
      if (!released) active--;
      released = true;
    };
    const abort = new AbortController();
    let image: ExportedImage | null;
    try {
      image = await deps.exportImage(ref, { signal: abort.signal });
    } catch (error) {
      release();
      return envelope(c, 502, `Cannot export image ${ref}: ${(error as Error).message}`);
    }
    if (!image) {
      release();
      return envelope(c, 404, `Image ${ref} is not in this host's image store`);
    }
    deps.log.info("Exporting image {ref} ({id}, {size} bytes)", { ref, id: image.id, size: image.size });
    // A byte stream, so the server's one buffer goes down to the store's socket, filled: no buffer per piece.
    const reader = byteReader(image.stream);
    let sent = 0;
    const body = byteStreamFrom({
      async read(into) {
        let piece: Uint8Array;
        try {
          piece = await readFull(reader.read, into);
        } catch (error) {
          release();
          deps.log.warn("Export of image {ref} broke after {sent} bytes: {error}", {
            ref,
            sent,
            error: (error as Error).message,
          });
          throw error;
        }
        if (piece.length === 0) {
          release();
          deps.log.info("Exported image {ref}: {sent} bytes", { ref, sent });
        }
        sent += piece.length;
        return piece;
      },
      async cancel(reason) {
        release();
        deps.log.info("Export of image {ref} stopped by the receiver after {sent} bytes", { ref, sent });
        abort.abort(reason);
        await reader.cancel(reason).catch(() => {});
      },
    });
    const headers: Record<string, string> = {
      "Content-Type": "application/x-tar",
      "X-Image-Id": image.id,
      "X-Image-Size": String(image.size),
    };
    if (image.length !== undefined) headers["Content-Length"] = String(image.length);
    return new Response(body, { status: 200, headers });
  });

  return { app, active: () => active };
}
