/**
 * ARP on the wire with iputils' `arping`, run through the command runner: the duplicate-address probe of RFC 5227
 * before a floating IP is added, and the announcement after.
 *
 * iputils-arping (20221126, measured here): with `-D` it sends its probes from 0.0.0.0, stops at the first reply
 * and exits 0 when no one answered (the address is free), 1 when someone did (a conflict), 2 when it could not
 * run (e.g. `Device bond1 not available.` on stderr). With `-U` or `-A` it never waits for answers and exits 0
 * once it has sent its packets, 2 on the same errors.
 */
import type { CommandRunner } from "./command.ts";

/** One reply (or request) line of arping: who answered for, or claimed, the address. */
export interface ArpReply {
  /** The address that was answered for. */
  readonly ip: string;
  /** The MAC that answered, in lower case. */
  readonly mac: string;
}

/** What arping printed: its replies and its counters. */
export interface ArpingOutput {
  /** Each reply, in order. */
  readonly replies: readonly ArpReply[];
  /** Packets sent (`Sent N probes`), or null when the line is missing. */
  readonly sent: number | null;
  /** Replies counted (`Received N response(s)`), or null when the line is missing. */
  readonly received: number | null;
}

/** The answer of a duplicate-address probe. */
export type ProbeAnswer =
  | { readonly state: "free" }
  | { readonly state: "conflict"; readonly replies: readonly ArpReply[] };

/** Options of one arping run. */
export interface ArpingOptions {
  /** Kill arping after this many milliseconds (above its own `-w`). */
  readonly timeoutMs: number;
  /** Aborts it early (daemon shutdown). */
  readonly signal?: AbortSignal;
}

/** Parses arping's output: `Unicast reply from IP [MAC]` (and `... request from ...`) lines and the counters. */
export function parseArpingOutput(output: string): ArpingOutput {
  const replies: ArpReply[] = [];
  // A request for the address heard while probing is a claim too (another host probing or announcing it).
  for (const m of output.matchAll(/^(?:Unicast|Broadcast) (?:reply|request) from (\S+) \[([0-9A-Fa-f:]+)\]/gm)) {
    replies.push({ ip: m[1], mac: m[2].toLowerCase() });
  }
  const sent = /^Sent (\d+) probe/m.exec(output);
  const received = /^Received (\d+) response/m.exec(output);
  return {
    replies,
    sent: sent ? Number(sent[1]) : null,
    received: received ? Number(received[1]) : null,
  };
}

/**
 * The duplicate-address probe: one probe from 0.0.0.0, waiting 1 s for an answer. A holder answers within
 * milliseconds on a LAN; the second, later probe of RFC 5227 would double the time a move takes (arping's interval
 * is whole seconds).
 */
export function probeCommand(nic: string, ip: string): string[] {
  return ["arping", "-D", "-c", "1", "-w", "1", "-I", nic, ip];
}

/** The announcement: gratuitous ARP requests (`-U`), then replies (`-A`), 3 of each, from the holding interface. */
export function announceCommands(device: string, ip: string): string[][] {
  return [
    ["arping", "-U", "-c", "3", "-I", device, ip],
    ["arping", "-A", "-c", "3", "-I", device, ip],
  ];
}

function cause(stderr: string, stdout: string, code: number | null): string {
  const line = (stderr.trim() || stdout.trim()).split("\n")[0]?.trim().slice(0, 200);
  return line || (code === null ? "killed" : `exit status ${code}`);
}

/** Probes the wire for `ip` from `nic` (RFC 5227): free when no one answers; throws when arping cannot run. */
export async function probeAddress(
  runCommand: CommandRunner,
  { nic, ip }: { nic: string; ip: string },
  options: ArpingOptions,
): Promise<ProbeAnswer> {
  const what = `Cannot probe ${ip} on "${nic}"`;
  const r = await runCommand(probeCommand(nic, ip), options);
  if (r.timedOut) throw new Error(`${what}: arping gave no answer within ${options.timeoutMs} ms`);
  if (r.code === 0) return { state: "free" };
  const parsed = parseArpingOutput(r.stdout);
  if (r.code === 1 && parsed.replies.length > 0) return { state: "conflict", replies: parsed.replies };
  throw new Error(`${what}: ${cause(r.stderr, r.stdout, r.code)}`);
}

/** Announces `ip` from `device`, the interface that holds it; throws when arping cannot run or sent nothing. */
export async function announceAddress(
  runCommand: CommandRunner,
  { device, ip }: { device: string; ip: string },
  options: ArpingOptions,
): Promise<void> {
  for (const argv of announceCommands(device, ip)) {
    // stopped (the address is being removed): arping exits 0 on SIGTERM, so the next one must not start
    if (options.signal?.aborted) return;
    const what = `Cannot announce ${ip} on "${device}" with arping ${argv[1]}`;
    const r = await runCommand(argv, options);
    if (r.timedOut) throw new Error(`${what}: no answer within ${options.timeoutMs} ms`);
    if (r.code !== 0) throw new Error(`${what}: ${cause(r.stderr, r.stdout, r.code)}`);
    const sent = parseArpingOutput(r.stdout).sent;
    if (sent === null || sent === 0) throw new Error(`${what}: it sent no packet`);
  }
}
