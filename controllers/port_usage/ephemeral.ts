/**
 * The port-usage job's check of the kernel's ephemeral range: which scanned ports an outgoing connection may take,
 * said once per change, and with `--reserve-port-ranges` the ranges added to `ip_local_reserved_ports`.
 */
import { JOBS } from "../../core/jobs.ts";
import type { EventSink, Logger } from "../../core/types.ts";
import { formatPortList, readEphemeralPorts, writeReservedPorts } from "../../host/sysctl_ports.ts";
import { ephemeralOverlap, planReservation, type PortRange, rangeSize } from "./ranges.ts";
import type { PortUsageState } from "./state.ts";

/** How many overlapping ranges the overlap Event names; the rest are counted. */
const REPORTED_OVERLAP = 10;

/** Options of `kernelOverlap`. */
export interface EphemeralOptions {
  /** Where `ip_local_port_range` and `ip_local_reserved_ports` are read. */
  readonly sysctlDir: string;
  /** `--reserve-port-ranges`: add the ranges to `ip_local_reserved_ports`. */
  readonly reserve: boolean;
  /** Computes everything and changes nothing, reports nothing. */
  readonly dryRun: boolean;
  /** Where the reservation and the overlap are said. */
  readonly log: Logger;
  /** Where the overlap is recorded. */
  readonly events: EventSink;
}

/** The ephemeral overlap of the ranges, after reserving them if asked to; [] when the sysctls cannot be read. */
export async function kernelOverlap(
  ranges: readonly PortRange[],
  state: PortUsageState,
  options: EphemeralOptions,
): Promise<PortRange[]> {
  const { sysctlDir, log } = options;
  try {
    let kernel = await readEphemeralPorts(sysctlDir);
    if (options.reserve && await reserve(ranges, kernel.reserved, options)) {
      // Read back what the kernel kept: it is the truth about which ports it hands out.
      kernel = await readEphemeralPorts(sysctlDir);
    }
    state.reported.sysctlError = "";
    const overlap = ephemeralOverlap(ranges, kernel);
    if (!options.dryRun) reportOverlap({ overlap, ephemeral: kernel.range }, state, options);
    return overlap;
  } catch (error) {
    const cause = (error as Error).message;
    if (cause !== state.reported.sysctlError) log.warn("{cause}: the ephemeral overlap is not reported", { cause });
    state.reported.sysctlError = cause;
    return [];
  }
}

/** Adds the ranges to `ip_local_reserved_ports` when it changes the list; whether it was written. */
async function reserve(
  ranges: readonly PortRange[],
  reserved: readonly PortRange[],
  options: EphemeralOptions,
): Promise<boolean> {
  const { log } = options;
  const plan = planReservation(reserved, ranges);
  if (!plan.changed) return false;
  const fields = { added: formatPortList(plan.added), list: formatPortList(plan.reserved) };
  if (options.dryRun) {
    log.info("Dry run: would add {added} to net.ipv4.ip_local_reserved_ports, making it {list}", fields);
    return false;
  }
  try {
    await writeReservedPorts(plan.reserved, options.sysctlDir);
  } catch (error) {
    log.warn("{cause}: outgoing connections can still take ports {added}", {
      cause: (error as Error).message,
      added: fields.added,
    });
    return false;
  }
  log.info("Added {added} to net.ipv4.ip_local_reserved_ports, which is now {list}", fields);
  return true;
}

/** Warns, in the log and an Event, when the overlap differs from the last one reported. */
function reportOverlap(
  found: { readonly overlap: readonly PortRange[]; readonly ephemeral: PortRange },
  state: PortUsageState,
  options: EphemeralOptions,
): void {
  const { overlap, ephemeral } = found;
  const fingerprint = overlap.length === 0 ? "" : JSON.stringify([overlap, ephemeral]);
  if (fingerprint === state.reported.overlap) return;
  state.reported.overlap = fingerprint;
  if (overlap.length === 0) return;
  const shown = formatPortList(overlap.slice(0, REPORTED_OVERLAP)) +
    (overlap.length > REPORTED_OVERLAP ? ` and ${overlap.length - REPORTED_OVERLAP} more ranges` : "");
  const count = rangeSize(overlap);
  const message = `Ports ${shown} (${count} ports) of the scanned ranges are in net.ipv4.ip_local_port_range ` +
    `(${ephemeral[0]}-${ephemeral[1]}) and not in net.ipv4.ip_local_reserved_ports: an outgoing connection can ` +
    `take one before a database listens on it; add them to sysctl net.ipv4.ip_local_reserved_ports ` +
    `(or run the daemon with --reserve-port-ranges)`;
  options.log.warn("{message}", { message });
  options.events.record({ job: JOBS.portUsage.name, type: "Warning", reason: "EphemeralPortOverlap", message });
}
