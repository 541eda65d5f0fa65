/** The client-network probe: link state from /sys/class/net/<nic> and the first IPv4 address; no command is run. */

/** What sysfs says about one interface. */
export interface LinkAttributes {
  /** `operstate`: up, down, lowerlayerdown, dormant, notpresent, testing or unknown. */
  readonly operstate: string;
  /** `flags` as a number (IFF_UP is bit 0). */
  readonly flags: number;
  /** `carrier`: 1, 0, or null when the kernel refuses to tell (the link is administratively down). */
  readonly carrier: number | null;
}

/** The interface state as the conditions report it. */
export type InterfaceState = "UP" | "DOWN" | "UNKNOWN";

/** One address of an interface, as `Deno.networkInterfaces()` lists it. */
export interface InterfaceAddress {
  /** The interface name. */
  readonly name: string;
  /** IPv4 or IPv6. */
  readonly family: "IPv4" | "IPv6";
  /** The address, e.g. `192.0.2.10`. */
  readonly address: string;
}

/** What one probe of an interface saw. */
export interface NetProbe {
  /** The interface name. */
  readonly nic: string;
  /** UP, DOWN, or UNKNOWN (no such interface). */
  readonly state: InterfaceState;
  /** Its sysfs attributes, or null when it does not exist. */
  readonly link: LinkAttributes | null;
  /** Its first IPv4 address by the original's rule, or null. */
  readonly ipv4: string | null;
}

/** Where the probe reads from; tests hand in a fake sysfs folder and a fake address list. */
export interface NetProbeOptions {
  /** The folder of the interfaces (default `/sys/class/net`). */
  readonly sysfsRoot?: string;
  /** The address list (default `Deno.networkInterfaces`). */
  readonly interfaces?: () => readonly InterfaceAddress[];
}

const IFF_UP = 0x1;
const DOWN_STATES = new Set(["down", "lowerlayerdown", "dormant", "notpresent"]);

/**
 * Decides UP/DOWN/UNKNOWN from sysfs attributes (null = no such interface). `unknown` (loopback, some
 * virtual and bond devices) is UP only when the interface is up (IFF_UP) and has carrier.
 */
export function interfaceState(link: LinkAttributes | null): InterfaceState {
  if (link === null) return "UNKNOWN";
  const operstate = link.operstate.trim().toLowerCase();
  if (operstate === "up") return "UP";
  if (DOWN_STATES.has(operstate)) return "DOWN";
  return (link.flags & IFF_UP) !== 0 && link.carrier === 1 ? "UP" : "DOWN";
}

/**
 * The original's rule for the client IP: the interface's first address if it is IPv4, else the next
 * IPv4 one; null when there is none.
 */
export function firstIPv4(addresses: readonly Pick<InterfaceAddress, "family" | "address">[]): string | null {
  return addresses.find((a) => a.family === "IPv4")?.address ?? null;
}

/** Whether a name can be an interface name (and so is safe to put in a sysfs path). */
export function isInterfaceName(name: string): boolean {
  return /^[A-Za-z0-9_.:@-]{1,15}$/.test(name) && name !== "." && name !== "..";
}

async function readAttribute(path: string): Promise<string | null> {
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch {
    // carrier cannot be read (EINVAL) while the link is administratively down
    return null;
  }
}

/** Reads `operstate`, `flags` and `carrier` of one interface; null when it does not exist. */
export async function readLinkAttributes(
  nic: string,
  options: Pick<NetProbeOptions, "sysfsRoot"> = {},
): Promise<LinkAttributes | null> {
  if (!isInterfaceName(nic)) return null;
  const dir = `${options.sysfsRoot ?? "/sys/class/net"}/${nic}`;
  let operstate: string;
  try {
    operstate = (await Deno.readTextFile(`${dir}/operstate`)).trim();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new Error(`Cannot read "${dir}/operstate": ${(error as Error).message}`);
  }
  const flags = await readAttribute(`${dir}/flags`);
  const carrier = await readAttribute(`${dir}/carrier`);
  const flagBits = flags === null ? 0 : Number.parseInt(flags, flags.startsWith("0x") ? 16 : 10);
  return {
    operstate,
    flags: Number.isNaN(flagBits) ? 0 : flagBits,
    carrier: carrier === null || carrier === "" ? null : Number(carrier),
  };
}

function systemInterfaces(): readonly InterfaceAddress[] {
  return Deno.networkInterfaces();
}

/** Probes one interface: its state from sysfs and its first IPv4 address. */
export async function probeInterface(nic: string, options: NetProbeOptions = {}): Promise<NetProbe> {
  const link = await readLinkAttributes(nic, options);
  const addresses = link === null ? [] : (options.interfaces ?? systemInterfaces)().filter((a) => a.name === nic);
  return { nic, state: interfaceState(link), link, ipv4: firstIPv4(addresses) };
}
