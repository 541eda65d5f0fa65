/** The one place that runs commands: an argument array and a timeout, never a shell. */
import { byteReader, PIECE_BYTES, WriteStalledError, writeWithin } from "../core/byte_stream.ts";
import { linkSignals } from "../core/signals.ts";

/** What a command left behind. */
export interface CommandResult {
  /** Exit code, or null when it was killed. */
  readonly code: number | null;
  /** Standard output, decoded as UTF-8. */
  readonly stdout: string;
  /** Standard error, decoded as UTF-8. */
  readonly stderr: string;
  /** Whether the timeout killed it. */
  readonly timedOut: boolean;
}

/** Options of one command run. */
export interface RunOptions {
  /** Kill the command after this many milliseconds. */
  readonly timeoutMs: number;
  /** Aborts the command early. */
  readonly signal?: AbortSignal;
}

/** Runs `argv[0]` with the rest as arguments; rejects when it cannot be started. */
export type CommandRunner = (
  argv: readonly string[],
  options: RunOptions,
) => Promise<CommandResult>;

/** Options of the real runner. */
export interface CommandRunnerOptions {
  /** Put in front of every command, e.g. `["nsenter", "-t", "1", "-m", "--"]` to run it in the host's mount namespace. */
  readonly prefix?: readonly string[];
  /** Kills every command still running when it aborts: the process is exiting, and must leave no child behind. */
  readonly signal?: AbortSignal;
}

/** Makes the real runner on `Deno.Command`. */
export function createCommandRunner(
  options: CommandRunnerOptions = {},
): CommandRunner {
  const prefix = options.prefix ?? [];
  return async function runCommand(argv, { timeoutMs, signal }) {
    const full = [...prefix, ...argv];
    if (full.length === 0) throw new Error("Cannot run a command: empty argument list");
    // Held by its sources (AbortSignal.any's result can be collected, and its abort lost with it).
    const linked = linkSignals([signal, options.signal], { timeoutMs });
    const combined = linked.signal;
    // Deno.Command does not kill a child whose signal was aborted before the spawn: such a command never starts.
    if (combined.aborted) return { code: null, stdout: "", stderr: "", timedOut: linked.timedOut };
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(full[0], {
        args: full.slice(1),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: combined,
      }).spawn();
    } catch (error) {
      linked.dispose();
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(`Cannot run "${full[0]}": command not found`);
      }
      throw new Error(`Cannot run "${full[0]}": ${(error as Error).message}`);
    }
    const output = await child.output().finally(() => linked.dispose());
    const decoder = new TextDecoder();
    return {
      code: output.signal === null ? output.code : null,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
      timedOut: linked.timedOut,
    };
  };
}

/** How a streaming command ended. */
export interface StreamedResult {
  /** Exit code, or null when it was killed. */
  readonly code: number | null;
  /** The end of its standard error (at most 4 KiB), decoded as UTF-8. */
  readonly stderr: string;
  /** Whether the timeout killed it. */
  readonly timedOut: boolean;
  /** The error of the input stream, when it failed: the command was killed before it could see an end of input. */
  readonly inputError: Error | null;
  /** Set when the command took none of its input for `stdinStallMs`: it was killed. */
  readonly stdinStalled: WriteStalledError | null;
}

/** A running command whose output is read as it comes. */
export interface StreamingRun {
  /** Its standard output; read it to the end or cancel it, or the command blocks. */
  readonly stdout: ReadableStream<Uint8Array>;
  /** Resolves when the command has exited. */
  readonly finished: Promise<StreamedResult>;
}

/** Options of one streaming run. */
export interface StreamRunOptions extends RunOptions {
  /** Fed to its standard input, chunk by chunk (none: standard input is empty). */
  readonly stdin?: ReadableStream<Uint8Array>;
  /** Kills the command when it takes none of `stdin` for this long (ms); absent: no limit. */
  readonly stdinStallMs?: number;
}

/** Starts `argv[0]` with its output as a stream (an image export or import); throws when it cannot be started. */
export type StreamingCommandRunner = (argv: readonly string[], options: StreamRunOptions) => StreamingRun;

/** Makes the real streaming runner on `Deno.Command`: the same prefix and abort rules as `createCommandRunner`. */
export function createStreamingCommandRunner(options: CommandRunnerOptions = {}): StreamingCommandRunner {
  const prefix = options.prefix ?? [];
  return function runStreaming(argv, { timeoutMs, signal, stdin, stdinStallMs }) {
    const full = [...prefix, ...argv];
    if (full.length === 0) throw new Error("Cannot run a command: empty argument list");
    const timeout = AbortSignal.timeout(timeoutMs);
    const signals = [timeout, signal, options.signal].filter((s): s is AbortSignal => s !== undefined);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(full[0], {
        args: full.slice(1),
        stdin: stdin ? "piped" : "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.any(signals),
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw new Error(`Cannot run "${full[0]}": command not found`);
      throw new Error(`Cannot run "${full[0]}": ${(error as Error).message}`);
    }
    let fedResult: Fed = { inputError: null, stalled: null };
    const fed = stdin
      ? feed(child, stdin, stdinStallMs).then((result) => void (fedResult = result))
      : Promise.resolve();
    const stderr = (async () => {
      const decoder = new TextDecoder();
      let tail = "";
      for await (const chunk of child.stderr) tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096);
      return tail;
    })();
    const finished = (async (): Promise<StreamedResult> => {
      const status = await child.status;
      await fed;
      return {
        code: status.signal === null ? status.code : null,
        stderr: await stderr,
        timedOut: timeout.aborted,
        inputError: fedResult.inputError,
        stdinStalled: fedResult.stalled,
      };
    })();
    return { stdout: child.stdout, finished };
  };
}

/** How feeding a child's standard input ended. */
interface Fed {
  /** The input stream's failure. */
  readonly inputError: Error | null;
  /** The child took none of it for the stall timeout. */
  readonly stalled: WriteStalledError | null;
}

/**
 * Copies `input` to the child's standard input. When `input` fails, the child is killed first and its input closed
 * after, so it never takes a cut stream for a whole one; so too when the child takes nothing for `stallMs`.
 */
async function feed(child: Deno.ChildProcess, input: ReadableStream<Uint8Array>, stallMs?: number): Promise<Fed> {
  const writer = child.stdin.getWriter();
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  };
  // One buffer for every piece: a write resolves once the pipe took it all.
  const reader = byteReader(input);
  let buffer = new ArrayBuffer(PIECE_BYTES);
  try {
    for (;;) {
      let piece: Uint8Array;
      try {
        piece = await reader.read(new Uint8Array(buffer));
      } catch (error) {
        kill();
        await writer.abort().catch(() => {});
        return { inputError: error instanceof Error ? error : new Error(String(error)), stalled: null };
      }
      if (piece.length === 0) break;
      buffer = piece.buffer as ArrayBuffer;
      await writeWithin(writer.write(piece), stallMs, { stop: kill, who: "the command" });
    }
    await writer.close();
    return { inputError: null, stalled: null };
  } catch (error) {
    // The child closed its input (it exited, or was killed for taking nothing): its exit tells why.
    await reader.cancel().catch(() => {});
    return { inputError: null, stalled: error instanceof WriteStalledError ? error : null };
  }
}
