/** The shapes the image-replication job shows: its requests, its transfers and its result. */
import type { AttemptFailure } from "./retry.ts";

/** A copy asked for (the POST, `once`): one version or all, from one peer or any. */
export interface ReplicationRequest {
  /** The version; absent: every missing version. */
  readonly version?: string;
  /** Only this peer's node. */
  readonly from?: string;
}

/** One image's transfer, as `GET /api/v1/images` shows it. */
export interface TransferView {
  /** The version. */
  readonly version: string;
  /** The image. */
  readonly ref: string;
  /** The peer's node. */
  readonly peer: string;
  /** `copying`, `verifying`, `done` or `failed`. */
  readonly state: "copying" | "verifying" | "done" | "failed";
  /** Bytes received. */
  readonly bytesDone: number;
  /** Bytes the peer announced, or null. */
  readonly bytesTotal: number | null;
  /** Bytes per second over the last seconds. */
  readonly rateBytesPerSecond: number;
  /** When it started (ISO 8601). */
  readonly startedAt: string;
  /** How it failed. */
  readonly failure?: AttemptFailure;
  /** Why. */
  readonly error?: string;
}

/** One version's outcome in a run. */
export interface VersionCopy {
  /** The version. */
  readonly version: string;
  /** Its images. */
  readonly images: readonly string[];
  /** The peers that hold it, best first. */
  readonly sources: readonly string[];
  /** `copied`, `failed`, or `planned` (dry run). */
  readonly outcome: "copied" | "failed" | "planned";
  /** The peer the last image came from. */
  readonly peer?: string;
  /** Bytes copied. */
  readonly bytes?: number;
  /** How long it took (ms). */
  readonly ms?: number;
  /** How it failed (`ImageMismatch`, `DiskPressure`, ...). */
  readonly failure?: AttemptFailure | "NoPeer";
  /** Why. */
  readonly error?: string;
}

/** The job's result: `once image-replication --json` and part of `GET /api/v1/images`. */
export interface ImageReplicationResult {
  /** This node. */
  readonly node: string;
  /** `--image-replication`. */
  readonly mode: "off" | "auto";
  /** The versions handled by this run. */
  readonly versions: VersionCopy[];
  /** Versions missing here that no peer holds whole. */
  readonly unavailable: string[];
}
