/** Pure progress of one transfer: bytes done, the rate, a log line at every 10%, and the summary of a finished copy. */

/** How a transfer stands. */
export interface Progress {
  /** Bytes received so far. */
  readonly done: number;
  /** Bytes expected (the peer's figure), or null when unknown. */
  readonly total: number | null;
  /** When it started (ms). */
  readonly startedAt: number;
  /** The last 10% step logged (0 at start). */
  readonly loggedStep: number;
  /** Recent samples `[at, done]`, one per second at most, for the current rate. */
  readonly samples: readonly (readonly [number, number])[];
}

/** How long the current rate looks back (ms). */
const RATE_WINDOW_MS = 5_000;

/** A transfer that starts at `at`. */
export function startProgress(total: number | null, at: number): Progress {
  return { done: 0, total, startedAt: at, loggedStep: 0, samples: [[at, 0]] };
}

/** The progress after `bytes` more at `at`; `logPercent` is the 10% step to log now, or null. */
export function advanceProgress(
  progress: Progress,
  bytes: number,
  at: number,
): { progress: Progress; logPercent: number | null } {
  const done = progress.done + bytes;
  const last = progress.samples.at(-1)!;
  const samples = at - last[0] >= 1_000
    ? [...progress.samples.filter(([t]) => at - t <= RATE_WINDOW_MS), [at, done] as const]
    : progress.samples;
  let loggedStep = progress.loggedStep;
  let logPercent: number | null = null;
  if (progress.total !== null && progress.total > 0) {
    const step = Math.min(10, Math.floor((done / progress.total) * 10));
    if (step > loggedStep) {
      loggedStep = step;
      logPercent = step * 10;
    }
  }
  return { progress: { ...progress, done, samples, loggedStep }, logPercent };
}

/** The rate in bytes per second: over the last few seconds, or since the start when that is all there is. */
export function currentRate(progress: Progress, at: number): number {
  const first = progress.samples.find(([t]) => at - t <= RATE_WINDOW_MS) ?? [progress.startedAt, 0];
  const seconds = (at - first[0]) / 1000;
  if (seconds <= 0) return 0;
  return (progress.done - first[1]) / seconds;
}

/** Bytes in decimal units, one decimal above kB unless told: `512 B`, `2.1 GB`, `44.0 MB` (`44 MB` with 0 digits). */
export function formatBytes(bytes: number, options: { digits?: number } = {}): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(options.digits ?? 1)} ${units[unit]}`;
}

/** What a finished copy of a version was. */
export interface CopySummary {
  /** The version. */
  readonly version: string;
  /** How many images. */
  readonly images: number;
  /** Bytes copied in all. */
  readonly bytes: number;
  /** The peer's node. */
  readonly peer: string;
  /** How long it took (ms). */
  readonly ms: number;
}

/** The Event message of a finished copy: `Copied version V (3 images, 2.1 GB) from node N in 48 s (44 MB/s)`. */
export function copiedMessage(copy: CopySummary): string {
  const seconds = copy.ms / 1000;
  const rate = seconds > 0 ? copy.bytes / seconds : 0;
  const images = `${copy.images} image${copy.images === 1 ? "" : "s"}`;
  return `Copied version ${copy.version} (${images}, ${formatBytes(copy.bytes)}) from node ${copy.peer} in ` +
    `${Math.round(seconds)} s (${formatBytes(rate, { digits: 0 })}/s)`;
}
