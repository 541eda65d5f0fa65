/**
 * The floating IP one MPDCluster asks for, pure: the object as the API returned it (untyped JSON, validated here,
 * never trusted) -> the address, its shape and the node that should hold it, or the reason why none.
 *
 * Rules: `status.floatingIP` wins over `spec.netCfg.leaderFloatingIP` when it carries an address (the operator fills
 * it for `auto`), field by field, so a field the status leaves out comes from the spec. With `auto` and no address
 * in the status there is nothing to do (`AutoNotAssigned`). The mask is a JSON integer 1..32: the operator's typed
 * reader fails on a string such as `"24"`, so this does not accept one either. The leader is
 * `status.leaderInstanceHost` only when the `rw` entry of `status.dbInstanceStatus` names the same node; otherwise
 * the current state is kept (`LeaderUnknown`, `LeaderDisagrees`).
 */
import { isIPv4, nodeKey } from "../../core/addresses.ts";
import { isInterfaceName } from "../../host/net_probe.ts";

/** How the address is put on the host: a macvlan interface of its own, or a second address on the NIC. */
export type IpMode = "VirtualIF" | "MultiIP";

/** The cluster an answer is about. */
export interface ClusterRef {
  /** Its namespace. */
  readonly namespace: string;
  /** Its name. */
  readonly name: string;
}

/** A valid floating IP, as the host is to carry it. */
export interface FloatingIpSpec {
  /** The IPv4 address. */
  readonly address: string;
  /** The prefix length, 1..32. */
  readonly mask: number;
  /** The physical NIC it goes on. */
  readonly nic: string;
  /** How it goes on the NIC. */
  readonly mode: IpMode;
  /** `manual` or `auto`. */
  readonly cfgType: "manual" | "auto";
  /** The gateway, recorded and shown, never routed (null when absent or not an IPv4 address). */
  readonly gateway: string | null;
  /** Where the address came from. */
  readonly source: "spec" | "status";
}

/** Why a cluster's floating IP cannot be placed at all. */
export type DesiredRefusal =
  | "InvalidObject"
  | "NotConfigured"
  | "InvalidAddress"
  | "InvalidMask"
  | "InvalidInterface"
  | "InvalidMode"
  | "InvalidConfigType"
  | "AutoNotAssigned";

/** Why the holder is not known, so the current state is kept. */
export type LeaderProblem = "LeaderUnknown" | "LeaderDisagrees";

/** What one cluster asks for. */
export type DesiredFloatingIp =
  | {
    /** The address goes on the leader's node. */
    readonly kind: "assign";
    readonly cluster: ClusterRef;
    readonly ip: FloatingIpSpec;
    /** The leader's node name, in lower case. */
    readonly leader: string;
  }
  | {
    /** The address is valid but its holder unknown: whoever holds it keeps it, nobody else takes it. */
    readonly kind: "keep";
    readonly cluster: ClusterRef;
    readonly ip: FloatingIpSpec;
    readonly reason: LeaderProblem;
    readonly message: string;
  }
  | {
    /** No address can be placed. */
    readonly kind: "refuse";
    /** Null when the object has no usable namespace and name. */
    readonly cluster: ClusterRef | null;
    readonly reason: DesiredRefusal;
    readonly message: string;
    /** The leader's node name when it is known, so that node reports the refusal. */
    readonly leader: string | null;
  };

/** What desiredFloatingIp needs besides the object. */
export interface DesiredOptions {
  /** The client NIC (`NET_CARD_NAME`), the default of `basedNetIf`. */
  readonly clientNic: string;
}

type Json = Record<string, unknown>;

function record(value: unknown): Json | null {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? value as Json : null;
}

function text(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value);
  try {
    return String(JSON.stringify(value)).slice(0, 64);
  } catch {
    return typeof value;
  }
}

function ipv4Number(address: string): number {
  return address.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

/** Why an IPv4 address cannot be a floating IP (null when it can). */
function addressProblem(address: string, mask: number): string | null {
  const first = Number(address.split(".")[0]);
  if (first === 0) return "is in 0.0.0.0/8";
  if (first === 127) return "is a loopback address";
  if (first >= 224) return "is multicast, reserved or broadcast";
  if (mask <= 30) {
    const host = ipv4Number(address) % 2 ** (32 - mask);
    if (host === 0) return `is the network address of its /${mask}`;
    if (host === 2 ** (32 - mask) - 1) return `is the broadcast address of its /${mask}`;
  }
  return null;
}

/** The leader's node, when `leaderInstanceHost` and the `rw` entry of `dbInstanceStatus` agree. */
function leaderOf(status: Json | null): { leader: string } | { problem: LeaderProblem; message: string } {
  const host = text(status?.leaderInstanceHost);
  const entries = status?.dbInstanceStatus;
  const rwNodes = new Set<string>();
  const list = Array.isArray(entries) ? entries : Object.values(record(entries) ?? {});
  for (const entry of list) {
    const ins = record(entry);
    const node = text(ins?.nodeName);
    if (ins?.insType === "rw" && node !== null) rwNodes.add(nodeKey(node));
  }
  if (host === null) return { problem: "LeaderUnknown", message: "status.leaderInstanceHost is not set" };
  if (rwNodes.size === 0) {
    return { problem: "LeaderUnknown", message: "status.dbInstanceStatus has no rw instance with a nodeName" };
  }
  if (rwNodes.size > 1) {
    return {
      problem: "LeaderDisagrees",
      message: `status.dbInstanceStatus has rw instances on ${[...rwNodes].sort().join(", ")}`,
    };
  }
  const [rw] = rwNodes;
  if (rw !== nodeKey(host)) {
    return {
      problem: "LeaderDisagrees",
      message: `status.leaderInstanceHost is ${describe(host)} but the rw instance is on ${describe(rw)}`,
    };
  }
  return { leader: rw };
}

/** Decides what one MPDCluster asks for; any input, however malformed, gives an answer and never throws. */
export function desiredFloatingIp(object: unknown, options: DesiredOptions): DesiredFloatingIp {
  const root = record(object);
  const metadata = record(root?.metadata);
  const namespace = text(metadata?.namespace);
  const name = text(metadata?.name);
  const status = record(root?.status);
  const found = leaderOf(status);
  const leader = "leader" in found ? found.leader : null;
  if (namespace === null || name === null) {
    return {
      kind: "refuse",
      cluster: null,
      reason: "InvalidObject",
      message: "metadata has no namespace and name",
      leader,
    };
  }
  const cluster = { namespace, name };
  const refuse = (reason: DesiredRefusal, message: string): DesiredFloatingIp => ({
    kind: "refuse",
    cluster,
    reason,
    message,
    leader,
  });

  const fromSpec = record(record(record(root?.spec)?.netCfg)?.leaderFloatingIP);
  const fromStatus = record(status?.floatingIP);
  const statusWins = fromStatus !== null && text(fromStatus.ipAddress) !== null;
  if (fromSpec === null && !statusWins) {
    return refuse("NotConfigured", "spec.netCfg.leaderFloatingIP is not set");
  }
  const field = (key: string): unknown =>
    statusWins && fromStatus[key] !== undefined ? fromStatus[key] : fromSpec?.[key];
  const where = (key: string) =>
    statusWins && fromStatus[key] !== undefined ? "status.floatingIP" : "spec.netCfg.leaderFloatingIP";

  const cfgType = field("ipAddressCfgType") ?? "manual";
  if (cfgType !== "manual" && cfgType !== "auto") {
    return refuse(
      "InvalidConfigType",
      `${where("ipAddressCfgType")}.ipAddressCfgType ${describe(cfgType)} is not manual or auto`,
    );
  }
  if (cfgType === "auto" && !statusWins) {
    return refuse("AutoNotAssigned", "ipAddressCfgType is auto and status.floatingIP has no address yet");
  }
  const address = field("ipAddress");
  if (typeof address !== "string" || !isIPv4(address)) {
    return refuse("InvalidAddress", `${where("ipAddress")}.ipAddress ${describe(address)} is not an IPv4 address`);
  }
  const mask = field("mask");
  if (typeof mask !== "number" || !Number.isInteger(mask) || mask < 1 || mask > 32) {
    return refuse("InvalidMask", `${where("mask")}.mask ${describe(mask)} is not an integer prefix length 1..32`);
  }
  const problem = addressProblem(address, mask);
  if (problem !== null) return refuse("InvalidAddress", `${where("ipAddress")}.ipAddress ${address} ${problem}`);
  const nic = field("basedNetIf") === undefined || field("basedNetIf") === "" ? options.clientNic : field("basedNetIf");
  if (typeof nic !== "string" || !isInterfaceName(nic)) {
    return refuse("InvalidInterface", `${where("basedNetIf")}.basedNetIf ${describe(nic)} is not an interface name`);
  }
  const mode = field("ipMode") === undefined || field("ipMode") === "" ? "VirtualIF" : field("ipMode");
  if (mode !== "VirtualIF" && mode !== "MultiIP") {
    return refuse("InvalidMode", `${where("ipMode")}.ipMode ${describe(mode)} is not VirtualIF or MultiIP`);
  }
  const gateway = field("gateWay");
  const ip: FloatingIpSpec = {
    address,
    mask,
    nic,
    mode,
    cfgType,
    gateway: typeof gateway === "string" && isIPv4(gateway) ? gateway : null,
    source: statusWins ? "status" : "spec",
  };
  if (leader === null) {
    const { problem: reason, message } = found as { problem: LeaderProblem; message: string };
    return { kind: "keep", cluster, ip, reason, message };
  }
  return { kind: "assign", cluster, ip, leader };
}
