/** The pure disk check before a copy: refuse when the image store's file system would be too full afterwards. */
import { formatBytes } from "./progress.ts";

/** The figures of a file system, from statfs. */
export interface FsUsage {
  /** The store's root the figures are for. */
  readonly path: string;
  /** Bytes in use. */
  readonly usedBytes: number;
  /** Bytes free for an unprivileged writer (`f_bavail`), as `df` counts them. */
  readonly availableBytes: number;
}

/** The default limit: at most 85% full after the copy. */
export const DISK_LIMIT = 0.85;

/** The check's verdict. */
export type DiskVerdict =
  | { readonly ok: true; readonly percentAfter: number }
  | {
    readonly ok: false;
    /** Always `DiskPressure`. */
    readonly reason: "DiskPressure";
    /** How full the file system would be after the copy, in percent (rounded up). */
    readonly percentAfter: number;
    /** The limit, in percent. */
    readonly limitPercent: number;
    /** One line with both figures. */
    readonly message: string;
  };

/**
 * Whether `needBytes` more fit under the limit. Full means what `df` shows: used / (used + available), so the root
 * reserve does not count as room. A size that is not a finite non-negative number is refused.
 */
export function checkDisk(usage: FsUsage, needBytes: number, options: { limit?: number } = {}): DiskVerdict {
  const limit = options.limit ?? DISK_LIMIT;
  const limitPercent = Math.round(limit * 100);
  const capacity = usage.usedBytes + usage.availableBytes;
  if (!Number.isFinite(needBytes) || needBytes < 0 || capacity <= 0) {
    return {
      ok: false,
      reason: "DiskPressure",
      percentAfter: 100,
      limitPercent,
      message: `Cannot copy into ${usage.path}: the size ${needBytes} bytes cannot be checked against the free space`,
    };
  }
  const after = (usage.usedBytes + needBytes) / capacity;
  const percentAfter = Math.ceil(after * 100);
  if (after <= limit) return { ok: true, percentAfter };
  return {
    ok: false,
    reason: "DiskPressure",
    percentAfter,
    limitPercent,
    message: `Cannot copy into ${usage.path}: its file system would be ${percentAfter}% full after the copy ` +
      `(limit ${limitPercent}%): ${formatBytes(needBytes)} needed, ${formatBytes(usage.availableBytes)} free of ` +
      `${formatBytes(capacity)}`,
  };
}
