/** Starts `main.ts` as its own process, as an operator would, and talks to its HTTP API. */
import { MALLOC_ENV, V8_FLAGS } from "../../config/config.ts";
import { stopChild } from "./child.ts";

/** A daemon process under test. */
export interface DaemonProcess {
  /** The child process. */
  readonly child: Deno.ChildProcess;
  /** Base URL of its HTTP API. */
  readonly url: string;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
}

const ROOT = new URL("../../", import.meta.url).pathname;

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * The command line that runs the daemon as production does: `deno run -A --v8-flags=... main.ts ...args`; its
 * environment adds MALLOC_ENV.
 */
export function daemonCommand(args: readonly string[]): string[] {
  return [Deno.execPath(), "run", "-A", `--v8-flags=${V8_FLAGS.join(",")}`, `${ROOT}main.ts`, ...args];
}

/** Runs `deno run -A main.ts ...args` to completion; returns code, stdout and stderr. */
export async function runMain(
  args: readonly string[],
  options: { env?: Record<string, string>; timeoutMs?: number; prefix?: readonly string[] } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = [...(options.prefix ?? []), ...daemonCommand(args)];
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: ROOT,
    env: { NO_COLOR: "1", ...MALLOC_ENV, ...options.env },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/** Starts the daemon with `args` (add `--port`); resolves once `/healthz` answers. */
export async function startDaemon(
  args: readonly string[],
  options: { port: number; env?: Record<string, string>; prefix?: readonly string[]; host?: string } = {
    port: freePort(),
  },
): Promise<DaemonProcess> {
  const argv = [
    ...(options.prefix ?? []),
    ...daemonCommand(["--port", String(options.port)]),
    ...args,
  ];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: ROOT,
    env: { NO_COLOR: "1", ...MALLOC_ENV, ...options.env },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of child.stderr) text += decoder.decode(chunk, { stream: true });
  })();
  const url = `http://${options.host ?? "127.0.0.1"}:${options.port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/healthz`);
      await res.body?.cancel();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`The daemon did not answer /healthz within 30 s; stderr:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    url,
    stderr: () => text,
    async stop(signal: Deno.Signal = "SIGTERM") {
      // The daemon's own grace period is 20 s; a daemon that ignores the signal fails its test instead of hanging it.
      const status = await stopChild(child, { signal, killAfterMs: 40_000 });
      await reading;
      return status.code;
    },
  };
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  fn: () => Promise<T> | T,
  options: { timeoutMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${options.what ?? "a condition"}${last ? `: ${last}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
