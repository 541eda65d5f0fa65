/**
 * Floating addresses on this host with iproute2's `ip`, run through the command runner: listing what is there,
 * knowing which of it this daemon tagged, adding and removing it.
 *
 * Tags, so that a restarted daemon finds its own addresses and never touches another's:
 * - MultiIP: the address carries the label `<nic>:fip` (a label is at most 15 characters and must start with the
 *   NIC's name, so it is cut to 15 characters; a NIC of 14 or 15 characters leaves no room for a tag, and MultiIP
 *   is refused there).
 * - VirtualIF: the address sits on a macvlan `fip<8 hex digits>` whose name and MAC both spell the address:
 *   192.0.2.50 gives `fipc0000232` and `02:50:c0:00:02:32`. The MAC is locally administered and unicast (first
 *   octet 0x02), the same on every host as VRRP's virtual MAC is, so clients' ARP entries stay valid across moves;
 *   the second octet 0x50 keeps it apart from Docker's 02:42:<IPv4>. Spelling the address instead of hashing it
 *   makes two floating IPs never share a name or a MAC.
 */
import { isIPv4 } from "../core/addresses.ts";
import type { CommandRunner } from "./command.ts";

/** How a floating IP sits on the NIC: a second address on it, or its own macvlan interface. */
export type FipMode = "MultiIP" | "VirtualIF";

/** One IPv4 address of an interface, as `ip -j addr show` gives it. */
export interface InterfaceAddress {
  /** Dotted IPv4 address. */
  readonly ip: string;
  /** Prefix length. */
  readonly prefix: number;
  /** The address's label (the interface name when none was given). */
  readonly label: string;
}

/** One interface with its IPv4 addresses, as `ip -j -d addr show` gives it. */
export interface HostInterface {
  /** Interface name. */
  readonly name: string;
  /** MAC address in lower case, or "" when it has none. */
  readonly mac: string;
  /** Link kind (`macvlan`, `veth`, `bond`, ...), or "" for a plain device. */
  readonly kind: string;
  /** The lower device of a macvlan or VLAN, or "" when there is none. */
  readonly lower: string;
  /** Its IPv4 addresses, in the kernel's order. */
  readonly addresses: readonly InterfaceAddress[];
}

/** A floating IP as this node should hold it. */
export interface FloatingAddress {
  /** Dotted IPv4 address. */
  readonly ip: string;
  /** Prefix length, 0..32. */
  readonly prefix: number;
  /** The physical NIC it goes on. */
  readonly nic: string;
  /** How it sits on the NIC. */
  readonly mode: FipMode;
}

/** Something this daemon put on the host: a labelled address, or a `fip...` macvlan with or without its address. */
export interface TaggedAddress {
  /** How it sits on the NIC. */
  readonly mode: FipMode;
  /** The physical NIC. */
  readonly nic: string;
  /** The interface that holds it: the NIC (MultiIP) or the macvlan (VirtualIF). */
  readonly device: string;
  /** The address, or null for a macvlan of ours that lost it (a half-done add). */
  readonly ip: string | null;
  /** Its prefix length, or null with no address. */
  readonly prefix: number | null;
}

/** Options of one `ip` (or `sysctl`) call. */
export interface IpOptions {
  /** Kill the command after this many milliseconds. */
  readonly timeoutMs: number;
  /** Aborts it early (daemon shutdown). */
  readonly signal?: AbortSignal;
}

/** The command that lists every interface with its addresses and link details, as JSON. */
export const IP_ADDR_SHOW: readonly string[] = ["ip", "-j", "-d", "addr", "show"];

const LABEL_MAX = 15;
const VIRTUAL_IF = /^fip([0-9a-f]{8})$/;
const MAC_PREFIX = "02:50";

function ipBytes(ip: string): number[] {
  return ip.split(".").map(Number);
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** The label that tags a MultiIP address on `nic` (`<nic>:fip`, cut to 15 characters), or null when none fits. */
export function multiIpLabel(nic: string): string | null {
  // The label must start with the NIC's name; keep at least ":f" so that it cannot be mistaken for another's.
  if (nic.length > LABEL_MAX - 2) return null;
  return `${nic}:fip`.slice(0, LABEL_MAX);
}

/** The name of the macvlan that holds `ip` in VirtualIF mode: `fip` and the address in 8 hex digits. */
export function virtualIfName(ip: string): string {
  return `fip${ipBytes(ip).map(hex2).join("")}`;
}

/** The MAC of the macvlan that holds `ip`: `02:50:` and the address's 4 bytes, the same on every host. */
export function virtualIfMac(ip: string): string {
  return [MAC_PREFIX, ...ipBytes(ip).map(hex2)].join(":");
}

/** Whether an interface is a macvlan this daemon made: its name and its MAC spell the same address. */
export function isOurVirtualIf(iface: HostInterface): boolean {
  const m = VIRTUAL_IF.exec(iface.name);
  if (!m || iface.kind !== "macvlan") return false;
  const bytes = m[1].match(/../g)!.join(":");
  return iface.mac === `${MAC_PREFIX}:${bytes}`;
}

interface RawAddr {
  family?: unknown;
  local?: unknown;
  prefixlen?: unknown;
  label?: unknown;
}

interface RawLink {
  ifname?: unknown;
  address?: unknown;
  link?: unknown;
  linkinfo?: { info_kind?: unknown };
  addr_info?: unknown;
}

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

/** Parses `ip -j [-d] addr show` output: every interface, with its IPv4 addresses (IPv6 is left out). */
export function parseIpAddrShow(output: string): HostInterface[] {
  let raw: unknown;
  try {
    raw = JSON.parse(output);
  } catch (error) {
    throw new Error(`Cannot parse the output of "ip -j addr show": ${(error as Error).message}`);
  }
  if (!Array.isArray(raw)) throw new Error(`Cannot parse the output of "ip -j addr show": not a JSON array`);
  return (raw as RawLink[]).filter((l) => text(l?.ifname) !== "").map((l) => {
    const name = text(l.ifname);
    const addrs = Array.isArray(l.addr_info) ? l.addr_info as RawAddr[] : [];
    return {
      name,
      mac: text(l.address).toLowerCase(),
      kind: text(l.linkinfo?.info_kind),
      lower: text(l.link),
      addresses: addrs
        .filter((a) => a?.family === "inet" && isIPv4(text(a.local)) && Number.isInteger(a.prefixlen))
        .map((a) => ({ ip: text(a.local), prefix: a.prefixlen as number, label: text(a.label) || name })),
    };
  });
}

/** Every IPv4 address of the host with its interface, prefix and label. */
export function ipv4Addresses(
  interfaces: readonly HostInterface[],
): { ip: string; prefix: number; interface: string; label: string }[] {
  return interfaces.flatMap((i) => i.addresses.map((a) => ({ ...a, interface: i.name })));
}

/** What this daemon tagged among the host's interfaces (labelled addresses and `fip...` macvlans). */
export function taggedAddresses(interfaces: readonly HostInterface[]): TaggedAddress[] {
  const tagged: TaggedAddress[] = [];
  for (const iface of interfaces) {
    if (isOurVirtualIf(iface)) {
      const own = iface.addresses.find((a) => virtualIfName(a.ip) === iface.name);
      tagged.push({
        mode: "VirtualIF",
        nic: iface.lower,
        device: iface.name,
        ip: own?.ip ?? null,
        prefix: own?.prefix ?? null,
      });
      continue;
    }
    const label = multiIpLabel(iface.name);
    for (const a of iface.addresses) {
      if (label !== null && a.label === label) {
        tagged.push({ mode: "MultiIP", nic: iface.name, device: iface.name, ip: a.ip, prefix: a.prefix });
      }
    }
  }
  return tagged;
}

function sameAddress(t: TaggedAddress, f: FloatingAddress): boolean {
  return t.mode === f.mode && t.ip === f.ip && t.prefix === f.prefix && t.nic === f.nic;
}

/** What to remove: everything tagged that does not match, exactly, an address this node is entitled to. */
export function tagsToRemove(
  tagged: readonly TaggedAddress[],
  entitled: readonly FloatingAddress[],
): TaggedAddress[] {
  return tagged.filter((t) => !entitled.some((f) => sameAddress(t, f)));
}

/** Whether `tagged` already holds `wanted` as it should be. */
export function holds(tagged: readonly TaggedAddress[], wanted: FloatingAddress): boolean {
  return tagged.some((t) => sameAddress(t, wanted));
}

/** The cause of a bad floating address (IPv4, prefix 0..32, a NIC name that `ip` takes), or null when it is fine. */
export function invalidFloatingAddress(f: FloatingAddress): string | null {
  if (!isIPv4(f.ip)) return `address "${f.ip}" is not IPv4`;
  if (!Number.isInteger(f.prefix) || f.prefix < 0 || f.prefix > 32) return `mask ${f.prefix} is not 0..32`;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}$/.test(f.nic)) return `NIC name "${f.nic}" is not an interface name`;
  if (f.mode !== "MultiIP" && f.mode !== "VirtualIF") return `mode "${f.mode}" is neither MultiIP nor VirtualIF`;
  if (f.mode === "MultiIP" && multiIpLabel(f.nic) === null) {
    return `NIC name "${f.nic}" is too long for the label that tags a MultiIP address: use VirtualIF`;
  }
  return null;
}

function firstLine(s: string): string {
  return s.trim().split("\n")[0]?.trim().slice(0, 200) ?? "";
}

async function runOrThrow(
  runCommand: CommandRunner,
  argv: readonly string[],
  { options, what }: { options: IpOptions; what: string },
): Promise<void> {
  const r = await runCommand(argv, options);
  if (r.timedOut) throw new Error(`${what}: "${argv.join(" ")}" gave no answer within ${options.timeoutMs} ms`);
  if (r.code !== 0) {
    const cause = firstLine(r.stderr) || firstLine(r.stdout) || `exit status ${r.code}`;
    throw new Error(`${what}: ${cause}`);
  }
}

/** Lists the host's interfaces with `ip -j -d addr show`. */
export async function listInterfaces(runCommand: CommandRunner, options: IpOptions): Promise<HostInterface[]> {
  const r = await runCommand(IP_ADDR_SHOW, options);
  if (r.timedOut) throw new Error(`Cannot list addresses: "ip" gave no answer within ${options.timeoutMs} ms`);
  if (r.code !== 0) throw new Error(`Cannot list addresses: ${firstLine(r.stderr) || `exit status ${r.code}`}`);
  return parseIpAddrShow(r.stdout);
}

/**
 * The sysctls a macvlan needs beside its NIC. Without them the NIC answers ARP for the macvlan's address with its
 * own MAC, and sends ARP requests from that address with its own MAC (both measured), so clients learn the wrong
 * MAC: arp_ignore=1 answers only for addresses on the receiving interface, arp_announce=2 takes the ARP source
 * from the sending interface. Left set on the NIC after removal: they change nothing for its own addresses.
 */
export function virtualIfSysctls(nic: string, device: string): string[] {
  return [nic, device].flatMap((d) => [`net/ipv4/conf/${d}/arp_ignore=1`, `net/ipv4/conf/${d}/arp_announce=2`]);
}

/** The commands that put a floating address on the host (see `addFloatingAddress`). */
export function addCommands(f: FloatingAddress): string[][] {
  const cidr = `${f.ip}/${f.prefix}`;
  if (f.mode === "MultiIP") return [["ip", "addr", "add", cidr, "dev", f.nic, "label", multiIpLabel(f.nic)!]];
  const device = virtualIfName(f.ip);
  return [
    [
      "ip",
      "link",
      "add",
      "link",
      f.nic,
      "name",
      device,
      "address",
      virtualIfMac(f.ip),
      "type",
      "macvlan",
      "mode",
      "bridge",
    ],
    ["sysctl", "-q", "-w", ...virtualIfSysctls(f.nic, device)],
    ["ip", "addr", "add", cidr, "dev", device],
    ["ip", "link", "set", device, "up"],
  ];
}

/** The commands that remove something tagged: the labelled address, or the whole macvlan. */
export function removeCommands(t: TaggedAddress): string[][] {
  if (t.mode === "VirtualIF") return [["ip", "link", "del", t.device]];
  return [
    // Deleting the first address of a subnet deletes the others of that subnet too, unless they are promoted.
    ["sysctl", "-q", "-w", `net/ipv4/conf/${t.device}/promote_secondaries=1`],
    // With the label, the kernel itself deletes only an address that carries it.
    ["ip", "addr", "del", `${t.ip}/${t.prefix}`, "dev", t.device, "label", multiIpLabel(t.device)!],
  ];
}

/**
 * Adds a floating address. MultiIP: `ip addr add IP/mask dev <nic> label <nic>:fip`. VirtualIF: a macvlan in bridge
 * mode with the derived MAC, its ARP sysctls, the address, then up; when a step fails the macvlan is deleted again,
 * so a failed add leaves nothing behind. Throws with the cause.
 */
export async function addFloatingAddress(
  runCommand: CommandRunner,
  f: FloatingAddress,
  options: IpOptions,
): Promise<void> {
  const what = `Cannot add floating IP ${f.ip}/${f.prefix} (${f.mode}) on "${f.nic}"`;
  const invalid = invalidFloatingAddress(f);
  if (invalid) throw new Error(`${what}: ${invalid}`);
  const [first, ...rest] = addCommands(f);
  await runOrThrow(runCommand, first, { options, what });
  try {
    for (const argv of rest) await runOrThrow(runCommand, argv, { options, what });
  } catch (error) {
    await runCommand(["ip", "link", "del", virtualIfName(f.ip)], options).catch(() => undefined);
    throw error;
  }
}

/** Removes one tagged thing; refuses anything whose tag does not hold, so it never removes another's address. */
export async function removeTagged(runCommand: CommandRunner, t: TaggedAddress, options: IpOptions): Promise<void> {
  const what = `Cannot remove floating IP ${t.ip ?? "(none)"} (${t.mode}) from "${t.device}"`;
  if (t.mode === "VirtualIF" && !VIRTUAL_IF.test(t.device)) throw new Error(`${what}: not a fip... interface`);
  if (t.mode === "MultiIP" && (t.ip === null || t.prefix === null || multiIpLabel(t.device) === null)) {
    throw new Error(`${what}: no tagged address`);
  }
  for (const argv of removeCommands(t)) await runOrThrow(runCommand, argv, { options, what });
}
