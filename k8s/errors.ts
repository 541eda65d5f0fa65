/** Errors of cluster calls, with the object, the HTTP status and the server's reason. */

/** A failed call to the Kubernetes API server. */
export class KubeError extends Error {
  /** HTTP status, or 0 for a network error or a timeout. */
  readonly status: number;
  /** The `reason` of the server's Status object (e.g. `Conflict`, `NotFound`), when it sent one. */
  readonly reason: string;
  /** Whether the call gave up because the run that made it was stopped (its time limit passed). */
  readonly stopped: boolean;

  /** Builds the error; `message` already names the object and the cause. */
  constructor(message: string, options: { status: number; reason?: string; stopped?: boolean }) {
    super(message);
    this.name = "KubeError";
    this.status = options.status;
    this.reason = options.reason ?? "";
    this.stopped = options.stopped ?? false;
  }
}
