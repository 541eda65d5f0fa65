/** The port-usage job's scanners: netlink (with /proc as its fallback), /proc, or the original's bind probe. */
import { scanPortsByBind } from "../../host/bind_scan.ts";
import { readProcLocalPorts } from "../../host/proc_net.ts";
import { openSockDiag, type SockDiag } from "../../host/sock_diag.ts";
import type { JobDeps } from "../deps.ts";
import type { PortRange } from "./ranges.ts";

/** Picks the used ports, given the ranges to look at; a Set or a 65536-entry bitmap (1 = used). */
export type PortScanner = (ranges: readonly PortRange[], signal: AbortSignal) => Promise<Set<number> | Uint8Array>;

/** Options of `createPortScanner`. */
export interface PortScannerOptions {
  /** Opens the netlink dump (default `openSockDiag`). */
  readonly openDiag?: () => SockDiag;
  /** The socket tables of the /proc method and fallback (default /proc/net/tcp and /proc/net/tcp6). */
  readonly procPaths?: readonly string[];
}

/**
 * The scanner of `--port-scan-method`. netlink is opened at the first scan; when it cannot be opened, or a dump
 * fails, the scans read /proc from then on. The log says which method is in use.
 */
export function createPortScanner(
  method: "netlink" | "proc" | "bind",
  log: JobDeps["log"],
  options: PortScannerOptions = {},
): PortScanner {
  if (method === "bind") {
    log.info("Finding used ports by binding each one (--port-scan-method=bind)");
    return (ranges, signal) => scanPortsByBind(ranges, { signal });
  }
  const proc: PortScanner = async (_ranges, signal) =>
    (await readProcLocalPorts({ paths: options.procPaths, signal })).ports;
  if (method === "proc") {
    log.info("Finding used ports in /proc/net/tcp and /proc/net/tcp6 (--port-scan-method=proc)");
    return proc;
  }
  let diag: SockDiag | null = null;
  let fallback = false;
  return (ranges, signal) => {
    if (fallback) return proc(ranges, signal);
    try {
      if (diag === null) {
        diag = (options.openDiag ?? openSockDiag)();
        log.info("Finding used ports with netlink (NETLINK_SOCK_DIAG, --port-scan-method=netlink)");
      }
      const ports = new Uint8Array(65536);
      diag.markLocalPorts(ports);
      return Promise.resolve(ports);
    } catch (error) {
      fallback = true;
      diag?.close();
      log.warn("{cause}: finding used ports in /proc/net/tcp and /proc/net/tcp6 from now on", {
        cause: (error as Error).message,
      });
      return proc(ranges, signal);
    }
  };
}
