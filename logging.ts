/** Logging: JSON lines when not on a terminal, readable lines on a terminal, an optional file; every line names its task. */
import { configureSync, getLogger, type LogLevel, type LogRecord, resetSync, type Sink } from "@logtape/logtape";
import type { Logger } from "./core/types.ts";

/** The root category; a job's logger is `[ROOT, task]`. */
export const ROOT_CATEGORY = "polarstack-daemon";

/** Maps klog's `--v` to a LogTape level: 0-3 info, 4 debug (routine per-run lines), 5 and above trace. */
export function levelForVerbosity(v: number): LogLevel {
  if (v >= 5) return "trace";
  if (v >= 4) return "debug";
  return "info";
}

const SEVERITY: Record<LogLevel, number> = { trace: 0, debug: 0, info: 0, warning: 1, error: 2, fatal: 3 };

/** Whether a record goes to stderr under klog's `--stderrthreshold` (0 info, 1 warning, 2 error, 3 fatal). */
export function meetsStderrThreshold(level: LogLevel, threshold: number): boolean {
  return SEVERITY[level] >= threshold;
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

function writerSink(
  file: { writeSync(p: Uint8Array): number },
  options: { format: (r: LogRecord) => string; accept?: (r: LogRecord) => boolean },
): Sink {
  const encoder = new TextEncoder();
  return (record) => {
    if (options.accept && !options.accept(record)) return;
    try {
      file.writeSync(encoder.encode(options.format(record)));
    } catch {
      // A full disk or closed stderr must not take the daemon down.
    }
  };
}

function openLogFile(path: string, options: { append: boolean }): Deno.FsFile {
  try {
    return Deno.openSync(path, { write: true, create: true, append: options.append, truncate: !options.append });
  } catch (error) {
    throw new Error(`Cannot open log file "${path}" (--log-file or --log-dir): ${(error as Error).message}`);
  }
}

/** A log file that is renamed to `<path>.1` (replacing the previous one) when the next line would pass `maxBytes`. */
function rotatingFile(path: string, maxBytes: number): { writeSync(p: Uint8Array): number } {
  let file = openLogFile(path, { append: true });
  let size = file.statSync().size;
  return {
    writeSync(bytes) {
      if (maxBytes > 0 && size > 0 && size + bytes.length > maxBytes) {
        file.close();
        try {
          Deno.renameSync(path, `${path}.1`);
          file = openLogFile(path, { append: false });
        } catch {
          // Cannot rotate (read-only, removed folder): keep appending to what can be opened.
          file = openLogFile(path, { append: true });
        }
        size = file.statSync().size;
      }
      const written = file.writeSync(bytes);
      size += written;
      return written;
    },
  };
}

/** Options of the logging set-up. */
export interface LoggingOptions {
  /** klog verbosity. */
  readonly v: number;
  /** Every line to standard error (`--logtostderr` or `--alsologtostderr`). */
  readonly toStderr: boolean;
  /** Without `toStderr` and with a file: lines at this klog severity and above also go to stderr (default 2, error). */
  readonly stderrThreshold?: number;
  /** Also append JSON lines to this file. */
  readonly file?: string;
  /** Size at which the file is renamed to `<file>.1` and a new one started; 0 or absent: no limit. */
  readonly maxFileBytes?: number;
  /** Force JSON (true) or text (false) on stderr; default: text only on a terminal. */
  readonly json?: boolean;
}

/** Configures LogTape once for the process. */
export function setUpLogging(options: LoggingOptions): void {
  const json = options.json ?? !Deno.stderr.isTerminal();
  const sinks: Record<string, Sink> = {};
  const format = json ? formatJsonLine : formatTextLine;
  if (options.toStderr || !options.file) {
    sinks.stderr = writerSink(Deno.stderr, { format });
  } else {
    // klog's meaning: logging to a file, warnings (or what the threshold says) still reach `kubectl logs`.
    const threshold = options.stderrThreshold ?? 2;
    sinks.stderr = writerSink(Deno.stderr, { format, accept: (r) => meetsStderrThreshold(r.level, threshold) });
  }
  if (options.file) {
    sinks.file = writerSink(rotatingFile(options.file, options.maxFileBytes ?? 0), { format: formatJsonLine });
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
