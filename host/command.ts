/** The one place that runs commands: an argument array and a timeout, never a shell. */

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
    const timeout = AbortSignal.timeout(timeoutMs);
    const signals = [timeout, signal, options.signal].filter((s): s is AbortSignal => s !== undefined);
    const combined = AbortSignal.any(signals);
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
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(`Cannot run "${full[0]}": command not found`);
      }
      throw new Error(`Cannot run "${full[0]}": ${(error as Error).message}`);
    }
    const output = await child.output();
    const decoder = new TextDecoder();
    return {
      code: output.signal === null ? output.code : null,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
      timedOut: timeout.aborted,
    };
  };
}
