/** Injected faults of the fake Kubernetes API server: errors, delays and dropped connections for matching requests. */
import { failure } from "./responses.ts";

/** A fault for the next `count` requests whose method and path match. */
export interface FakeFault {
  /** HTTP method; any when absent. */
  method?: string;
  /** The path must start with this. */
  pathPrefix: string;
  /** How many matching requests get the fault. */
  count: number;
  /** Only watch requests (true), only other requests (false); both when absent. */
  watch?: boolean;
  /** Answer with this status (and a Status body) instead of handling the request. */
  status?: number;
  /** Wait this long before answering (or handling the request normally, if no status or drop is given). */
  delayMs?: number;
  /** Close the connection without a usable answer. */
  drop?: boolean;
  /** Seconds for a `Retry-After` header on the fault's answer. */
  retryAfter?: number;
}

/** The faults not yet used up, in the order they were added. */
export class FakeFaults {
  #faults: FakeFault[] = [];

  /** Adds a fault (a copy of it). */
  add(fault: FakeFault): void {
    this.#faults.push({ ...fault });
  }

  /** Drops the faults not yet used up. */
  clear(): void {
    this.#faults = [];
  }

  /** The first fault matching a request, used once; undefined when none matches. */
  take(method: string, path: string, watch: boolean): FakeFault | undefined {
    const fault = this.#faults.find((f) =>
      f.count > 0 && path.startsWith(f.pathPrefix) && (!f.method || f.method.toUpperCase() === method) &&
      (f.watch === undefined || f.watch === watch)
    );
    if (fault) {
      fault.count--;
      this.#faults = this.#faults.filter((f) => f.count > 0);
    }
    return fault;
  }
}

/** The Status answer of a fault with a status, with its `Retry-After` when it has one. */
export function faultAnswer(fault: FakeFault & { status: number }): Response {
  if (fault.retryAfter === undefined) return failure(fault.status, `injected fault: ${fault.status}`);
  return failure(fault.status, `injected fault: ${fault.status}`, {
    details: { retryAfterSeconds: fault.retryAfter },
    headers: { "Retry-After": String(fault.retryAfter) },
  });
}

/** Waits `ms`, or less when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
