/**
 * The kernel's choice of outgoing ports: `net.ipv4.ip_local_port_range` (where connect() takes an ephemeral port) and
 * `net.ipv4.ip_local_reserved_ports` (ports it never takes). Both are per network namespace and also apply to IPv6.
 */

/** An inclusive port range `[start, end]`. */
export type PortSpan = readonly [number, number];

/** Where the two sysctls live. */
export const SYSCTL_IPV4_DIR = "/proc/sys/net/ipv4";

/** Parses `ip_local_port_range` ("32768\t60999"); throws naming the text. */
export function parseEphemeralRange(text: string): PortSpan {
  const parts = text.trim().split(/\s+/).map(Number);
  if (parts.length !== 2 || !parts.every((n) => Number.isInteger(n) && n >= 0 && n <= 65535) || parts[0] > parts[1]) {
    throw new Error(`"${text.trim()}" is not two port numbers`);
  }
  return [parts[0], parts[1]];
}

/** Parses `ip_local_reserved_ports` ("" or "8080,9148-9150"), in the kernel's order; throws naming the item. */
export function parsePortList(text: string): PortSpan[] {
  const spans: [number, number][] = [];
  for (const item of text.trim().split(",")) {
    if (item.trim() === "") continue;
    const bounds = item.trim().split("-").map(Number);
    const ok = bounds.length <= 2 && bounds.every((n) => Number.isInteger(n) && n >= 0 && n <= 65535);
    if (!ok || bounds[0] > bounds[bounds.length - 1]) throw new Error(`"${item.trim()}" is not a port or a range`);
    spans.push([bounds[0], bounds[bounds.length - 1]]);
  }
  return spans;
}

/** The kernel's list format: `8080,9148-9150`. */
export function formatPortList(spans: readonly PortSpan[]): string {
  return spans.map(([start, end]) => (start === end ? `${start}` : `${start}-${end}`)).join(",");
}

/** The two sysctls as read. */
export interface EphemeralPorts {
  /** `ip_local_port_range`. */
  readonly range: PortSpan;
  /** `ip_local_reserved_ports`. */
  readonly reserved: PortSpan[];
}

function sysctlError(name: string, verb: string, error: unknown): Error {
  return new Error(`Cannot ${verb} sysctl net.ipv4.${name}: ${(error as Error).message}`);
}

/** Reads both sysctls from `dir` (default /proc/sys/net/ipv4). */
export async function readEphemeralPorts(dir: string = SYSCTL_IPV4_DIR): Promise<EphemeralPorts> {
  const read = async (name: string) => {
    try {
      return await Deno.readTextFile(`${dir}/${name}`);
    } catch (error) {
      throw sysctlError(name, "read", error);
    }
  };
  const parse = <T>(name: string, text: string, parser: (text: string) => T): T => {
    try {
      return parser(text);
    } catch (error) {
      throw sysctlError(name, "read", error);
    }
  };
  const [rangeText, reservedText] = await Promise.all([read("ip_local_port_range"), read("ip_local_reserved_ports")]);
  return {
    range: parse("ip_local_port_range", rangeText, parseEphemeralRange),
    reserved: parse("ip_local_reserved_ports", reservedText, parsePortList),
  };
}

/** Writes `ip_local_reserved_ports` in `dir` (the kernel replaces the whole list with what is written). */
export async function writeReservedPorts(spans: readonly PortSpan[], dir: string = SYSCTL_IPV4_DIR): Promise<void> {
  try {
    await Deno.writeTextFile(`${dir}/ip_local_reserved_ports`, `${formatPortList(spans)}\n`);
  } catch (error) {
    throw sysctlError("ip_local_reserved_ports", "write", error);
  }
}
