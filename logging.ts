/** Logging: JSON lines when not on a terminal, readable lines on a terminal, an optional file; every line names its task. */
import { configureSync, getLogger, type LogLevel, type LogRecord, resetSync, type Sink } from "@logtape/logtape";
import type { Logger } from "./controllers/types.ts";

/** The root category; a job's logger is `[ROOT, task]`. */
export const ROOT_CATEGORY = "polarstack-daemon";

/** Maps klog's `--v` to a LogTape level. */
export function levelForVerbosity(v: number): LogLevel {
  if (v >= 5) return "trace";
  if (v >= 2) return "debug";
  return "info";
}

function messageText(record: LogRecord): string {
  return record.message.map((part, i) => (i % 2 === 0 ? String(part) : renderValue(part))).join("");
}

function renderValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.message;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function taskOf(record: LogRecord): string {
  return record.category[1] ?? "daemon";
}

/** One JSON line for a record: time, level, task, message, then the properties. */
export function formatJsonLine(record: LogRecord): string {
  const props: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record.properties)) {
    props[key] = value instanceof Error ? value.message : value;
  }
  return JSON.stringify({
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    task: taskOf(record),
    message: messageText(record),
    ...props,
  }) + "\n";
}

/** One readable line for a terminal. */
export function formatTextLine(record: LogRecord): string {
  const time = new Date(record.timestamp).toISOString().slice(11, 23);
  return `${time} ${record.level.toUpperCase().padEnd(5)} [${taskOf(record)}] ${messageText(record)}\n`;
}

function writerSink(file: Deno.FsFile | typeof Deno.stderr, format: (r: LogRecord) => string): Sink {
  const encoder = new TextEncoder();
  return (record) => {
    try {
      file.writeSync(encoder.encode(format(record)));
    } catch {
      // A full disk or closed stderr must not take the daemon down.
    }
  };
}

/** Options of the logging set-up. */
export interface LoggingOptions {
  /** klog verbosity. */
  readonly v: number;
  /** Log to standard error. */
  readonly toStderr: boolean;
  /** Also append JSON lines to this file. */
  readonly file?: string;
  /** Force JSON (true) or text (false) on stderr; default: text only on a terminal. */
  readonly json?: boolean;
}

/** Configures LogTape once for the process. */
export function setUpLogging(options: LoggingOptions): void {
  const json = options.json ?? !Deno.stderr.isTerminal();
  const sinks: Record<string, Sink> = {};
  if (options.toStderr || !options.file) sinks.stderr = writerSink(Deno.stderr, json ? formatJsonLine : formatTextLine);
  if (options.file) {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(options.file, { append: true, create: true });
    } catch (error) {
      throw new Error(`Cannot open log file "${options.file}" (--log-file or --log-dir): ${(error as Error).message}`);
    }
    sinks.file = writerSink(file, formatJsonLine);
  }
  resetSync();
  configureSync({
    reset: true,
    sinks,
    loggers: [
      { category: [ROOT_CATEGORY], lowestLevel: levelForVerbosity(options.v), sinks: Object.keys(sinks) },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: Object.keys(sinks) },
    ],
  });
}

/** The logger of one task (`port-usage`, `api`, `daemon`, ...). */
export function taskLogger(task: string): Logger {
  return getLogger([ROOT_CATEGORY, task]);
}
