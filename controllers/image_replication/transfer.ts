/**
 * One attempt to copy one image from one peer: ask its export endpoint, check the disk against the size it gives,
 * stream the body into the local store (capped, with a stall timeout), then check the loaded image's ID. A copy that
 * does not match is removed; a stream that breaks leaves nothing, since the store never sees a clean end.
 */
import { ImageLoadError } from "../../host/image_stream.ts";
import { limitStream, StreamStalledError } from "../../host/stream_limits.ts";
import type { DiskVerdict } from "./disk.ts";
import { boundedText, type PeerEndpoint } from "./peers.ts";
import { type PeerImage, verifyLoaded } from "./plan.ts";
import type { AttemptFailure } from "./retry.ts";
import type { ReplicationStore } from "./store.ts";

/** How an attempt ended. */
export type AttemptResult =
  | { readonly ok: true; readonly bytes: number }
  | {
    readonly ok: false;
    readonly failure: AttemptFailure;
    /** One line naming the image, the peer and the cause. */
    readonly message: string;
    /** The cause alone. */
    readonly cause: string;
    /** Bytes received before it failed. */
    readonly bytes: number;
    /** A busy peer's Retry-After (ms). */
    readonly retryAfterMs?: number;
  };

/** What an attempt needs besides the image and the peer. */
export interface AttemptOptions {
  /** The local store. */
  readonly store: ReplicationStore;
  /** The peer token's header, read for every request. */
  readonly headers: () => Record<string, string>;
  /** The disk check for a copy of that many bytes. */
  readonly checkDisk: (bytes: number) => Promise<DiskVerdict>;
  /** Bytes per second at most (0: no cap). */
  readonly bytesPerSecond: number;
  /** Fail after this long without a byte from the peer, the answer's head included, or into the store (ms). */
  readonly stallMs: number;
  /** Called once the peer answered, with the size it gave. */
  readonly onStart: (total: number | null) => void;
  /** Called with every piece received. */
  readonly onBytes: (bytes: number) => void;
  /** Called when the load ended and the ID is being checked. */
  readonly onVerify: () => void;
  /** Stops the attempt (the run's time limit, shutdown). */
  readonly signal: AbortSignal;
}

/** The size a header gives, or null when it is absent or not a whole number. */
function headerSize(response: Response, name: string): number | null {
  const text = response.headers.get(name);
  if (text === null || !/^\d{1,20}$/.test(text.trim())) return null;
  return Number(text.trim());
}

/** The longest refusal read from a peer. */
const MAX_REFUSAL = 64 * 1024;

/** A refusal's status and message; its body is read only so far, and for at most `stallMs`. */
async function refusal(response: Response, stallMs: number): Promise<string> {
  const text = response.body ? (await boundedText(response.body, MAX_REFUSAL, { timeoutMs: stallMs })) ?? "" : "";
  try {
    const message = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof message === "string" && message !== "") return `${response.status} ${message}`;
  } catch {
    // not the envelope
  }
  return `${response.status} ${text.trim().slice(0, 200) || response.statusText}`;
}

/** Copies one image from one peer; throws only when `signal` stopped it. */
export async function copyImage(
  image: PeerImage,
  peer: PeerEndpoint,
  options: AttemptOptions,
): Promise<AttemptResult> {
  const from = `image ${image.ref} from node ${peer.node}`;
  const failed = (failure: AttemptFailure, why: string, bytes = 0, retryAfterMs?: number): AttemptResult => ({
    ok: false,
    failure,
    message: `Cannot copy ${from}: ${why}`,
    cause: why,
    bytes,
    retryAfterMs,
  });
  // The request's signal also ends the body: the head's timeout is cleared once it arrived, the stall check follows.
  const request = new AbortController();
  const stop = () => request.abort(options.signal.reason);
  options.signal.addEventListener("abort", stop, { once: true });
  let headTimedOut = false;
  const timer = setTimeout(() => {
    headTimedOut = true;
    request.abort();
  }, options.stallMs);
  let response: Response;
  try {
    const url = `${peer.url}/api/v1/images/export?ref=${encodeURIComponent(image.ref)}`;
    response = await fetch(url, { headers: options.headers(), signal: request.signal });
  } catch (error) {
    options.signal.removeEventListener("abort", stop);
    options.signal.throwIfAborted();
    const cause = headTimedOut
      ? `no answer in ${options.stallMs / 1000} s`
      : ((error as Error & { cause?: Error }).cause?.message ?? (error as Error).message);
    return failed("PeerFailed", cause);
  } finally {
    clearTimeout(timer);
  }
  try {
    return await receive(response, { image, failed, options });
  } finally {
    options.signal.removeEventListener("abort", stop);
  }
}

/** The rest of an attempt once the peer answered: its refusal, or the disk check, the stream and the ID check. */
async function receive(
  response: Response,
  context: {
    image: PeerImage;
    failed: (failure: AttemptFailure, why: string, bytes?: number, retryAfterMs?: number) => AttemptResult;
    options: AttemptOptions;
  },
): Promise<AttemptResult> {
  const { image, failed, options } = context;
  if (response.status !== 200 || !response.body) {
    const retryAfter = Number(response.headers.get("retry-after"));
    const why = await refusal(response, options.stallMs);
    if (response.status === 429 || response.status === 503) {
      return failed("PeerBusy", why, 0, Number.isFinite(retryAfter) ? retryAfter * 1000 : undefined);
    }
    return failed("PeerFailed", why);
  }
  const header = response.headers.get("x-image-id");
  const length = headerSize(response, "content-length");
  const size = headerSize(response, "x-image-size");
  // The larger figure: a peer cannot make room by giving a small one beside a large Content-Length.
  const need = length === null && size === null ? Number.NaN : Math.max(length ?? 0, size ?? 0);
  const disk = await options.checkDisk(need);
  if (!disk.ok) {
    await response.body.cancel();
    return failed("DiskPressure", disk.message);
  }
  options.onStart(length ?? size);
  let bytes = 0;
  const onBytes = (n: number) => {
    bytes += n;
    options.onBytes(n);
  };
  const body = limitStream(response.body, {
    bytesPerSecond: options.bytesPerSecond,
    stallMs: options.stallMs,
    onBytes,
  });
  try {
    await options.store.load(body, { signal: options.signal, stallMs: options.stallMs });
  } catch (error) {
    options.signal.throwIfAborted();
    await body.cancel().catch(() => {});
    if (!(error instanceof ImageLoadError)) return failed("PeerFailed", (error as Error).message, bytes);
    if (error.inputError instanceof StreamStalledError) return failed("Stalled", error.inputError.message, bytes);
    if (error.storeStalled) return failed("Stalled", error.storeStalled.message, bytes);
    if (error.inputError) return failed("StreamCut", `the stream broke: ${error.inputError.message}`, bytes);
    return failed("Garbage", `the image store refused what the peer sent: ${error.message}`, bytes);
  }
  options.onVerify();
  const local = (await options.store.info(image.ref))?.id ?? null;
  const mismatch = verifyLoaded(image, { header, local });
  if (mismatch) {
    if (local !== null) await options.store.remove(image.ref, { id: local });
    return failed("ImageMismatch", `${mismatch.message}; what was loaded is removed`, bytes);
  }
  return { ok: true, bytes };
}
