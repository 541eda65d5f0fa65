/**
 * Sending one call to the API server: the rate limit, the bearer token, a timeout, retries with backoff on network
 * errors, 5xx and 429, and the API server's Retry-After. A Retry-After holds every call of the client until it passes,
 * not only the retry of the call that got it: a run stopped meanwhile must not let the next run ask sooner. A
 * streaming call (a watch) goes through the same token, TLS client, rate limit and hold, and its answer is read as
 * JSON lines until it ends or is stopped.
 */
import { linkSignals, untilAborted } from "../core/signals.ts";
import { backoffDelay, isRetryableStatus, parseRetryAfter } from "./backoff.ts";
import { KubeError } from "./errors.ts";
import type { ClusterConnection } from "./kube_config.ts";
import { RateLimiter } from "./rate_limiter.ts";

/** Options of the real client. */
export interface KubeClientOptions {
  /** Namespace of the daemon's objects. */
  readonly namespace?: string;
  /** User-Agent header. */
  readonly userAgent: string;
  /** Client-side rate limit. */
  readonly qps?: number;
  /** Client-side burst. */
  readonly burst?: number;
  /** Per-request timeout in milliseconds. */
  readonly timeoutMs?: number;
  /** How many times a retryable failure is retried. */
  readonly retries?: number;
  /** The longest backoff in milliseconds. */
  readonly backoffCapMs?: number;
  /** Called before each retry, for logs and metrics. */
  readonly onRetry?: (info: { what: string; attempt: number; delayMs: number; cause: string }) => void;
  /** Called after every response, for metrics and tests. */
  readonly onResponse?: (info: { method: string; status: number }) => void;
}

/** One REST call. */
export interface Call {
  readonly method: "GET" | "POST" | "PUT" | "PATCH";
  readonly path: string;
  readonly query?: Record<string, string | undefined>;
  readonly body?: unknown;
  readonly contentType?: string;
  /** Names the call in errors: `get ConfigMap "x"`. */
  readonly what: string;
  /** How many times a retryable failure of this call is retried; the client's `retries` when absent. */
  readonly retries?: number;
  /** A call no decision waits for (a cache's list or watch, an Event, a report): behind the jobs' in the rate limit. */
  readonly background?: boolean;
}

/** The URL path and query of a call, with every name escaped. */
export function callUrl(server: string, path: string, query: Record<string, string | undefined> = {}): string {
  const url = new URL(server + path);
  for (const [key, value] of Object.entries(query)) if (value) url.searchParams.set(key, value);
  return url.toString();
}

/** Sends calls for one connection; `stop` is the run's signal. */
export type Send = <T>(call: Call, stop?: AbortSignal) => Promise<T>;

/**
 * Opens a call whose answer is a stream of JSON values, one per line (a watch), once: no retry, the caller resumes.
 * It resolves when the answer's head arrived (within the client's timeout) with a status below 400, and rejects with
 * the KubeError of any other answer. The values end when the server ends the stream; reading rejects with a KubeError
 * when the connection breaks or `stop` aborts, which is also how a reader stops it.
 */
export type OpenStream = (call: Call, stop?: AbortSignal) => Promise<AsyncIterableIterator<unknown>>;

/** The calls of one connection: single answers and streams. */
export interface Transport {
  /** Sends a call and parses its JSON answer, retrying what is worth retrying. */
  readonly send: Send;
  /** Opens a streaming call. */
  readonly stream: OpenStream;
}

// A line longer than this is no watch event the daemon can use: the stream is refused rather than buffered.
const MAX_LINE_CHARS = 16 * 1024 * 1024;

/** Creates the calls for one connection. */
export function createTransport(connection: ClusterConnection, options: KubeClientOptions): Transport {
  const limiter = new RateLimiter({ qps: options.qps ?? 10, burst: options.burst ?? 20 });
  const httpClient = connection.caCert || connection.clientCert
    ? Deno.createHttpClient({
      caCerts: connection.caCert ? [connection.caCert] : undefined,
      cert: connection.clientCert,
      key: connection.clientKey,
    })
    : undefined;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const retries = options.retries ?? 5;
  const backoffCapMs = options.backoffCapMs ?? 30_000;
  let token = connection.token;
  let tokenReadAt = -Infinity;
  // performance.now() before which no call is sent, as the last Retry-After asked
  let heldUntil = 0;

  function bearer(): string | undefined {
    if (connection.tokenFile && performance.now() - tokenReadAt > 60_000) {
      try {
        token = Deno.readTextFileSync(connection.tokenFile).trim();
        tokenReadAt = performance.now();
      } catch (error) {
        throw new KubeError(`Cannot read token file "${connection.tokenFile}": ${(error as Error).message}`, {
          status: 0,
        });
      }
    }
    return token;
  }

  /** Waits for the Retry-After hold and the rate limit; returns the request's headers. */
  async function prepare(call: Call, stop?: AbortSignal): Promise<Record<string, string>> {
    if (stop?.aborted) throw new KubeError(`Cannot ${call.what}: the run was stopped`, { status: 0, stopped: true });
    const held = heldUntil - performance.now();
    if (held > 0 && !await delay(held, stop)) {
      throw new KubeError(`Cannot ${call.what}: the run was stopped while the API server's Retry-After lasted`, {
        status: 0,
        stopped: true,
      });
    }
    try {
      await limiter.take({ signal: stop, background: call.background });
    } catch {
      throw new KubeError(`Cannot ${call.what}: the run was stopped while it waited for the client's rate limit`, {
        status: 0,
        stopped: true,
      });
    }
    const headers: Record<string, string> = { "User-Agent": options.userAgent, Accept: "application/json" };
    const auth = bearer();
    if (auth) headers.Authorization = `Bearer ${auth}`;
    if (call.body !== undefined) headers["Content-Type"] = call.contentType ?? "application/json";
    return headers;
  }

  /** The error of an answer with status 400 or above; a retryable one with Retry-After holds every later call. */
  function failureOf(call: Call, response: Response, text: string): KubeError {
    let reason = "";
    let detail = "";
    try {
      const status = JSON.parse(text) as { reason?: string; message?: string };
      reason = status.reason ?? "";
      detail = status.message ?? "";
    } catch {
      detail = text.slice(0, 200);
    }
    const head = `${response.status} ${response.statusText || reason}`.trim();
    const retryAfter = response.headers.get("retry-after");
    const asked = isRetryableStatus(response.status) ? parseRetryAfter(retryAfter, new Date()) : null;
    if (asked !== null) heldUntil = Math.max(heldUntil, performance.now() + Math.min(backoffCapMs, asked));
    return Object.assign(
      new KubeError(`Cannot ${call.what}: ${head}${detail ? `: ${detail}` : ""}`, {
        status: response.status,
        reason,
      }),
      { retryAfter },
    );
  }

  function fetchCall(call: Call, init: { headers: Record<string, string>; signal: AbortSignal }): Promise<Response> {
    return fetch(callUrl(connection.server, call.path, call.query), {
      method: call.method,
      headers: init.headers,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      signal: init.signal,
      client: httpClient,
    });
  }

  /** The error of a call that got no answer: stopped by its run, timed out, or the network's. */
  function noAnswer(call: Call, error: unknown, why: { stop?: AbortSignal; timedOut: boolean }): KubeError {
    const stopped = why.stop?.aborted;
    const cause = stopped
      ? "the run was stopped"
      : why.timedOut
      ? `no answer within ${timeoutMs} ms`
      : networkCause(error);
    // A call the run cancelled says nothing about the API server.
    if (!stopped) options.onResponse?.({ method: call.method, status: 0 });
    return new KubeError(`Cannot ${call.what}: ${cause}`, { status: 0, stopped });
  }

  async function sendOnce(call: Call, stop?: AbortSignal): Promise<unknown> {
    const headers = await prepare(call, stop);
    const linked = linkSignals([stop], { timeoutMs });
    let response: Response;
    let text: string;
    try {
      response = await untilAborted(fetchCall(call, { headers, signal: linked.signal }), linked.signal);
      text = await untilAborted(response.text(), linked.signal);
    } catch (error) {
      throw noAnswer(call, error, { stop, timedOut: linked.timedOut });
    } finally {
      linked.dispose();
    }
    options.onResponse?.({ method: call.method, status: response.status });
    if (response.status >= 400) throw failureOf(call, response, text);
    try {
      return text ? JSON.parse(text) : null;
    } catch {
      throw new KubeError(`Cannot ${call.what}: the answer is not JSON`, { status: response.status });
    }
  }

  async function stream(call: Call, stop?: AbortSignal): Promise<AsyncIterableIterator<unknown>> {
    const headers = await prepare(call, stop);
    // The client's timeout bounds the wait for the answer's head only: a watch's body lasts as long as the server
    // keeps it open.
    const cancel = new AbortController();
    const onStop = () => cancel.abort();
    stop?.addEventListener("abort", onStop, { once: true });
    if (stop?.aborted) cancel.abort();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      cancel.abort();
    }, timeoutMs);
    let response: Response;
    try {
      response = await untilAborted(fetchCall(call, { headers, signal: cancel.signal }), cancel.signal);
    } catch (error) {
      stop?.removeEventListener("abort", onStop);
      throw noAnswer(call, error, { stop, timedOut });
    } finally {
      clearTimeout(timer);
    }
    options.onResponse?.({ method: call.method, status: response.status });
    if (response.status >= 400 || !response.body) {
      const text = await response.text().catch(() => "");
      stop?.removeEventListener("abort", onStop);
      throw failureOf(call, response, text);
    }
    return jsonLines(response.body, call, { stop, onEnd: () => stop?.removeEventListener("abort", onStop) });
  }

  async function send<T>(call: Call, stop?: AbortSignal): Promise<T> {
    let failed: KubeError | null = null;
    for (let attempt = 0;; attempt++) {
      try {
        return await sendOnce(call, stop) as T;
      } catch (error) {
        // A retry stopped before it got an answer: the cause is what the last attempt met, not the stop.
        if (failed && error instanceof KubeError && error.stopped) {
          throw new KubeError(`${failed.message} (no more retries: the run was stopped)`, {
            status: failed.status,
            reason: failed.reason,
            stopped: true,
          });
        }
        if (!(error instanceof KubeError) || !isRetryableStatus(error.status) || attempt >= (call.retries ?? retries)) {
          throw error;
        }
        if (stop?.aborted) throw error;
        failed = error;
        const asked = parseRetryAfter((error as KubeError & { retryAfter?: string }).retryAfter, new Date());
        const delayMs = Math.min(backoffCapMs, asked ?? backoffDelay(attempt, { capMs: backoffCapMs }));
        options.onRetry?.({ what: call.what, attempt: attempt + 1, delayMs, cause: error.message });
        if (!await delay(delayMs, stop)) {
          throw new KubeError(`${error.message} (no more retries: the run was stopped)`, {
            status: error.status,
            reason: error.reason,
            stopped: true,
          });
        }
      }
    }
  }

  return { send, stream };
}

/** The JSON values of a stream, one per line; a broken or stopped stream rejects with a KubeError. */
async function* jsonLines(
  body: ReadableStream<Uint8Array>,
  call: Call,
  options: { stop?: AbortSignal; onEnd: () => void },
): AsyncIterableIterator<unknown> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  // The stop cancels the read itself: after a garbage collection, fetch's own abort no longer reached a body being
  // read (measured: a watch open for a while never ended on its signal).
  const onStop = () => void reader.cancel().catch(() => {});
  options.stop?.addEventListener("abort", onStop, { once: true });
  let pending = "";
  const parse = (line: string) => {
    try {
      return JSON.parse(line);
    } catch {
      throw new KubeError(`Cannot ${call.what}: a line of the stream is not JSON`, { status: 200 });
    }
  };
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await untilAborted(reader.read(), options.stop);
      } catch (error) {
        const stopped = options.stop?.aborted ?? false;
        const cause = stopped ? "the run was stopped" : `the stream broke: ${networkCause(error)}`;
        throw new KubeError(`Cannot ${call.what}: ${cause}`, { status: 0, stopped });
      }
      if (chunk.done) {
        if (options.stop?.aborted) {
          throw new KubeError(`Cannot ${call.what}: the run was stopped`, { status: 0, stopped: true });
        }
        break;
      }
      const parts = chunk.value.split("\n");
      parts[0] = pending + parts[0];
      pending = parts.pop()!;
      if (pending.length > MAX_LINE_CHARS) {
        throw new KubeError(`Cannot ${call.what}: a line of the stream is longer than ${MAX_LINE_CHARS} characters`, {
          status: 200,
        });
      }
      for (const line of parts) if (line.trim()) yield parse(line);
    }
    if (pending.trim()) yield parse(pending);
  } finally {
    options.stop?.removeEventListener("abort", onStop);
    options.onEnd();
    await reader.cancel().catch(() => {});
  }
}

/** Waits `ms`; false when `signal` aborted first. */
export function delay(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (finished: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(finished);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function networkCause(error: unknown): string {
  const message = (error as Error).message;
  const cause = (error as { cause?: { message?: string } }).cause?.message;
  return cause && cause !== message ? `${message}: ${cause}` : message;
}
