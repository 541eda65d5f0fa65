/** The BMC (out-of-band) address from `ipmitool lan print 1`, run through the command runner. */
import { isIPv4 } from "../core/addresses.ts";
import type { CommandRunner } from "./command.ts";

/** The answer of one OOB check: the address, or why there is none. */
export type OobAnswer =
  | { readonly ok: true; readonly ip: string }
  | { readonly ok: false; readonly error: string };

/** The command that prints the BMC's LAN settings. */
export const IPMITOOL_LAN_PRINT: readonly string[] = ["ipmitool", "lan", "print", "1"];

/**
 * Parses `ipmitool lan print` output: the value of the `IP Address  : x.x.x.x` line (not
 * `IP Address Source`). Returns the answer the condition is built from.
 */
export function parseIpmiLanPrint(output: string): OobAnswer {
  for (const line of output.split("\n")) {
    const m = /^\s*IP Address\s*:\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    const value = m[1].split(/\s+/)[0] ?? "";
    if (value === "") return { ok: false, error: "ip is null" };
    if (!isIPv4(value)) return { ok: false, error: `ip ${value} is unavailable` };
    return { ok: true, ip: value };
  }
  return { ok: false, error: "ip is null" };
}

/** Options of one OOB check. */
export interface ReadOobOptions {
  /** Kill ipmitool after this many milliseconds. */
  readonly timeoutMs: number;
  /** Aborts the check early (daemon shutdown). */
  readonly signal?: AbortSignal;
}

/** The kustomize component that gives the container the BMC device. */
export const IPMI_COMPONENT = "manifests/components/ipmi/";

/**
 * ipmitool's failure to open the BMC device (`Could not open device at /dev/ipmi0 or /dev/ipmi/0 or
 * /dev/ipmidev/0: <cause>`) as an error that names the device and what gives it to the container, else null.
 * The cause is that of the last path tried, so it reads "No such file or directory" even when the device cgroup
 * refused /dev/ipmi0.
 */
export function deviceError(output: string): string | null {
  const m = /Could not open device at (\S+) or (\S+) or (\S+): ([^\r\n]+)/.exec(output);
  if (!m) return null;
  return `ipmitool cannot open the BMC device ${m[1]} (nor ${m[2]}, ${m[3]}): ${m[4].trim()}; ` +
    `the host has no IPMI driver loaded or the container may not use the device: deploy with the kustomize component ${IPMI_COMPONENT}`;
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0]?.trim().slice(0, 200) ?? "";
}

/** Runs `ipmitool lan print 1` and parses it; never throws (a failure is an answer with the cause). */
export async function readOobAddress(runCommand: CommandRunner, options: ReadOobOptions): Promise<OobAnswer> {
  const what = IPMITOOL_LAN_PRINT.join(" ");
  let result;
  try {
    result = await runCommand(IPMITOOL_LAN_PRINT, options);
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
  if (result.timedOut) return { ok: false, error: `${what} gave no answer within ${options.timeoutMs} ms` };
  if (result.code !== 0) {
    const device = deviceError(result.stderr);
    if (device) return { ok: false, error: device };
    const cause = firstLine(result.stderr) || firstLine(result.stdout);
    const how = result.code === null ? "was killed" : `exited with ${result.code}`;
    return { ok: false, error: `${what} ${how}${cause ? `: ${cause}` : ""}` };
  }
  return parseIpmiLanPrint(result.stdout);
}
