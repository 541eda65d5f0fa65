/** The command line: flags (and `$POLARSTACK_DAEMON_ARGS`) -> the Config, and whether to run the daemon or one task. */
import { Argument, Command, Option } from "commander";
import { JOB_NAMES } from "../core/jobs.ts";
import { VERSION } from "../core/version.ts";
import { buildConfig, type Config } from "./config.ts";
import { ARGS_ENV, argsFromEnv, FLAGS } from "./flags.ts";
import { FlagError } from "../core/flag_error.ts";

/** The one-shot tasks, by name. */
export const TASKS = JOB_NAMES;

/** Exit codes of the command line. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

const BOOLEAN_FLAGS = new Set(FLAGS.filter((f) => f.boolean).map((f) => `--${f.name}`).concat(["--dry-run", "--json"]));

/** Go's flag package never takes the next word as a boolean's value: `--local once` is `--local=true once`. */
export function normalizeArgs(args: readonly string[]): string[] {
  return args.map((arg) => (BOOLEAN_FLAGS.has(arg) ? `${arg}=true` : arg));
}

function addFlags(command: Command): Command {
  for (const spec of FLAGS) {
    // Defaults are applied by buildConfig, so a value given before `once` is not hidden by the sub-command's default.
    const shown = spec.defaultText ? ` (default: ${spec.defaultText})` : "";
    const option = new Option(`--${spec.name} ${spec.boolean ? "[bool]" : "<value>"}`, `${spec.description}${shown}`);
    option.helpGroup(`${spec.group} flags:`);
    command.addOption(option);
  }
  return command;
}

/** What the command line asks for: the daemon, or one task. */
export type Invocation =
  | { readonly kind: "daemon"; readonly config: Config }
  | {
    readonly kind: "once";
    readonly task: string;
    readonly config: Config;
    readonly dryRun: boolean;
    readonly json: boolean;
  };

/** Builds the command line; `onParsed` receives what it asks for (tests read it without running anything). */
export function buildProgram(onParsed: (invocation: Invocation) => void): Command {
  const program = addFlags(
    new Command("polarstack-daemon")
      .description("The per-host daemon of PolarDB Stack: port usage, engine versions, log cleanup, client network")
      .version(VERSION, "--version", "Print the version and exit")
      .helpOption("-h, --help", "Show this help")
      .exitOverride()
      .showSuggestionAfterError(false)
      .enablePositionalOptions()
      .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) }),
  );
  // A word that is not a command (a typo of `once`) is named, not reported as "too many arguments".
  program.allowExcessArguments(true).action((raw, command: Command) => {
    if (command.args.length > 0) {
      throw new FlagError(
        `Unknown command "${command.args[0]}": the command is once <task>, with a task of ${TASKS.join(", ")}`,
      );
    }
    const config = toConfig(raw);
    onParsed({ kind: "daemon", config });
  });
  addFlags(
    program.command("once")
      .description("Run one task once, print a summary (or JSON) and exit: 0 done, 1 failed, 2 usage error")
      .addArgument(
        new Argument("<task>", TASKS.join(", ")).choices(TASKS),
      )
      .option("--dry-run [bool]", "Compute everything, change nothing: no cluster write, no file removed")
      .option("--json [bool]", "Print one JSON document instead of a summary")
      .helpOption("-h, --help", "Show this help")
      .exitOverride(),
  ).action((task: string, raw: Record<string, unknown>) => {
    const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
    const config = toConfig({ ...program.opts(), ...given });
    const dryRun = toBool(raw.dryRun, "dry-run");
    const json = toBool(raw.json, "json");
    onParsed({ kind: "once", task, config, dryRun, json });
  });
  return program;
}

function toBool(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (value === true || value === "true") return true;
  if (value === "false") return false;
  throw new FlagError(`Invalid value for --${name}: "${value}" is not a boolean (true or false)`);
}

function toConfig(raw: Record<string, unknown>): Config {
  return buildConfig(raw, { env: Deno.env.toObject(), hostname: Deno.hostname() });
}

/**
 * Parses a command line without running anything; throws FlagError or CommanderError (help, version, usage).
 * The flags in `$POLARSTACK_DAEMON_ARGS` come first, so the command line's win.
 */
export function parseCommandLine(
  args: readonly string[],
  options: { env?: Readonly<Record<string, string | undefined>> } = {},
): Invocation {
  const fromEnv = argsFromEnv((options.env ?? Deno.env.toObject())[ARGS_ENV]);
  let invocation: Invocation | null = null;
  buildProgram((parsed) => (invocation = parsed)).parse(normalizeArgs([...fromEnv, ...args]), { from: "user" });
  if (!invocation) throw new FlagError("Nothing to run: see --help");
  return invocation;
}
