/** What the port-usage job remembers between runs: one object, owned by its controller. */
import type { PortScanner } from "./scanner.ts";

/** The job's memory between runs. */
export interface PortUsageState {
  /** The host scanner, made at the first scan (netlink opens a socket then). */
  scan: PortScanner | null;
  /** The `enablePrintPort` switch as last read, and when (ms since the epoch). */
  printSwitch: { readonly value: boolean; readonly readAt: number } | null;
  /** The used ports of the last run: a port missing from a scan is dropped only if a second scan agrees. */
  lastScanned: number[] | null;
  /** Local mode: the used ports of the last run, so that only a change is logged. */
  lastLocalUsed: number[] | null;
  /** What was last reported, so that each report is made once per change ("" = nothing). */
  readonly reported: { invalid: string; overlap: string; sysctlError: string };
}

/** The memory of a job that has not run yet. */
export function newPortUsageState(scan: PortScanner | null = null): PortUsageState {
  return {
    scan,
    printSwitch: null,
    lastScanned: null,
    lastLocalUsed: null,
    reported: { invalid: "", overlap: "", sysctlError: "" },
  };
}
