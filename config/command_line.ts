/**
 * The command line: flags (and `$POLARSTACK_DAEMON_ARGS`) -> the Config, and whether to run the daemon, one task, or
 * print the help or the version. Parsed here rather than by a library, which cost the daemon about 7 MB of memory.
 */
import { JOB_NAMES } from "../core/jobs.ts";
import { VERSION } from "../core/version.ts";
import { buildConfig, type Config } from "./config.ts";
import { ARGS_ENV, argsFromEnv, FLAGS, type FlagSpec } from "./flags.ts";
import { FlagError } from "../core/flag_error.ts";

/** The one-shot tasks, by name. */
export const TASKS = JOB_NAMES;

/** Exit codes of the command line. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** What the command line asks to run: the daemon, or one task. */
export type Invocation =
  | { readonly kind: "daemon"; readonly config: Config }
  | {
    readonly kind: "once";
    readonly task: string;
    readonly config: Config;
    readonly dryRun: boolean;
    readonly json: boolean;
    /** `once image-replication --version V`: the one version to copy. */
    readonly version?: string;
    /** `once image-replication --from NODE`: the one peer to copy from. */
    readonly from?: string;
  };

/** What the command line asks for: something to run, or a text to print (the help, the version). */
export type Request = Invocation | { readonly kind: "print"; readonly text: string };

const BY_NAME = new Map<string, FlagSpec>(FLAGS.map((f) => [f.name, f]));
const ONCE_FLAGS = {
  "dry-run": "Compute everything, change nothing: no cluster write, no file removed",
  json: "Print one JSON document instead of a summary",
} as const;
/** The flags of `once image-replication` that take a value (`--version` names a version there, not this build). */
const REPLICATION_FLAGS = {
  version: "image-replication: copy only this version",
  from: "image-replication: copy only from this peer's node",
} as const;
const REPLICATION_TASK = "image-replication";
const DESCRIPTION = "The per-host daemon of PolarDB Stack: port usage, engine versions, log cleanup, client network, " +
  "floating IPs";

function flagLines(): string[] {
  const lines: string[] = [];
  let group = "";
  for (const spec of FLAGS) {
    if (spec.group !== group) {
      group = spec.group;
      lines.push("", `${group} flags:`);
    }
    const shown = spec.defaultText ? ` (default: ${spec.defaultText})` : "";
    lines.push(`  --${spec.name} ${spec.boolean ? "[bool]" : "<value>"}`.padEnd(44) + ` ${spec.description}${shown}`);
  }
  return lines;
}

/** The help of the daemon, or of `once`. */
export function helpText(command: "daemon" | "once"): string {
  const head = command === "once"
    ? [
      `Usage: polarstack-daemon once <task> [--dry-run] [--json] [flags]`,
      "",
      "Run one task once, print a summary (or JSON) and exit: 0 done, 1 failed, 2 usage error",
      `Tasks: ${TASKS.join(", ")}`,
      "",
      "once flags:",
      ...Object.entries(ONCE_FLAGS).map(([name, text]) => `  --${name} [bool]`.padEnd(44) + ` ${text}`),
      ...Object.entries(REPLICATION_FLAGS).map(([name, text]) => `  --${name} <value>`.padEnd(44) + ` ${text}`),
    ]
    : [
      "Usage: polarstack-daemon [flags]",
      "       polarstack-daemon once <task> [--dry-run] [--json] [flags]",
      "",
      DESCRIPTION,
      "",
      "Commands:",
      `  once <task>`.padEnd(44) + ` Run one task once (${TASKS.join(", ")}); once --help says more`,
    ];
  return [
    ...head,
    ...flagLines(),
    "",
    "  -h, --help".padEnd(44) + " Show this help",
    "  --version".padEnd(44) + " Print the version and exit",
  ].join("\n");
}

function toBool(value: string | undefined, name: string): boolean {
  if (value === undefined) return false;
  if (value === "true") return true;
  if (value === "false") return false;
  throw new FlagError(`Invalid value for --${name}: "${value}" is not a boolean (true or false)`);
}

interface Words {
  readonly raw: Record<string, string>;
  readonly once: Record<string, string>;
  readonly replication: Record<string, string>;
  readonly positionals: string[];
  help: boolean;
  version: boolean;
}

/**
 * Splits the words as Go's flag package reads them: `--name=value` or `--name value`, a boolean never takes the next
 * word (`--local once` is `--local=true once`), and a later value wins.
 */
function splitWords(words: readonly string[]): Words {
  const out: Words = { raw: {}, once: {}, replication: {}, positionals: [], help: false, version: false };
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    const replicating = out.positionals[0] === "once" && out.positionals[1] === REPLICATION_TASK;
    const named = /^--(version|from)(?:=(.*))?$/s.exec(word);
    if (replicating && named) {
      const value = named[2] ?? words[++i];
      if (value === undefined || value.trim() === "") throw new FlagError(`Flag --${named[1]} needs a value`);
      out.replication[named[1]] = value.trim();
      continue;
    }
    if (word === "-h" || word === "--help") {
      out.help = true;
      continue;
    }
    if (word === "--version") {
      out.version = true;
      continue;
    }
    if (!word.startsWith("-") || word === "-") {
      out.positionals.push(word);
      continue;
    }
    const eq = word.indexOf("=");
    const name = word.slice(word.startsWith("--") ? 2 : 1, eq < 0 ? undefined : eq);
    const inline = eq < 0 ? undefined : word.slice(eq + 1);
    if (name in ONCE_FLAGS && out.positionals[0] === "once") {
      out.once[name] = inline ?? "true";
      continue;
    }
    const spec = BY_NAME.get(name);
    if (!spec || !word.startsWith("--")) throw new FlagError(`Unknown flag ${word.split("=")[0]}: see --help`);
    if (inline !== undefined || spec.boolean) {
      out.raw[spec.key] = inline ?? "true";
      continue;
    }
    const next = words[i + 1];
    if (next === undefined) throw new FlagError(`Flag --${name} needs a value`);
    out.raw[spec.key] = next;
    i++;
  }
  return out;
}

/**
 * Reads a command line without running anything; throws FlagError naming the flag, the command or the task. The
 * flags in `$POLARSTACK_DAEMON_ARGS` come first, so the command line's win.
 */
export function readCommandLine(
  args: readonly string[],
  options: { env?: Readonly<Record<string, string | undefined>> } = {},
): Request {
  const fromEnv = argsFromEnv((options.env ?? Deno.env.toObject())[ARGS_ENV]);
  const words = splitWords([...fromEnv, ...args]);
  const [command, task, ...extra] = words.positionals;
  if (words.version) return { kind: "print", text: VERSION };
  if (command !== undefined && command !== "once") {
    throw new FlagError(`Unknown command "${command}": the command is once <task>, with a task of ${TASKS.join(", ")}`);
  }
  if (words.help) return { kind: "print", text: helpText(command === "once" ? "once" : "daemon") };
  const config = buildConfig(words.raw, { env: Deno.env.toObject(), hostname: Deno.hostname() });
  if (command === undefined) return { kind: "daemon", config };
  if (task === undefined) throw new FlagError(`The command once needs a task: one of ${TASKS.join(", ")}`);
  if (!(TASKS as readonly string[]).includes(task)) {
    throw new FlagError(`Unknown task "${task}": the tasks are ${TASKS.join(", ")}`);
  }
  if (extra.length > 0) throw new FlagError(`Unexpected word "${extra[0]}" after once ${task}`);
  return {
    kind: "once",
    task,
    config,
    dryRun: toBool(words.once["dry-run"], "dry-run"),
    json: toBool(words.once.json, "json"),
    ...words.replication,
  };
}

/** What a command line runs (as `readCommandLine`); asking for the help or the version is a FlagError here. */
export function parseCommandLine(
  args: readonly string[],
  options: { env?: Readonly<Record<string, string | undefined>> } = {},
): Invocation {
  const request = readCommandLine(args, options);
  if (request.kind === "print") throw new FlagError("The command line asks for the help or the version, not a run");
  return request;
}
