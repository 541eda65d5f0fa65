/** Pure range rules of the port-usage job: the annotations' ranges, and where they meet the kernel's ephemeral range. */

/** An inclusive port range `[start, end]`, 1 <= start <= end <= 65535. */
export type PortRange = readonly [number, number];

/** An annotation whose value looks like a port range but is not a valid one. */
export interface InvalidRange {
  /** The annotation key. */
  readonly key: string;
  /** Its value. */
  readonly value: string;
  /** Why it was skipped. */
  readonly reason: string;
}

/** Ranges read from the annotations of the ranges ConfigMap. */
export interface ParsedRanges {
  /** Valid ranges, sorted, overlapping and adjacent ones merged. */
  readonly ranges: PortRange[];
  /** Range-like values that were skipped, with the reason. */
  readonly invalid: InvalidRange[];
}

function bound(text: string): number {
  const s = text.trim();
  if (!/^\d+$/.test(s)) throw new Error(`"${s}" is not a port number`);
  const n = Number(s);
  if (n < 1 || n > 65535) throw new Error(`${n} is outside 1..65535`);
  return n;
}

/**
 * Parses one range with the original's rules: `N`, `A-B` (empty parts dropped, so `-9-32` is 9..32,
 * reversed bounds swapped, leading zeros allowed) and the port allocator's `A+K` (A..A+K). Throws with the reason.
 */
export function parsePortRange(value: string): PortRange {
  const text = value.trim();
  if (text === "") throw new Error("empty range");
  if (text.includes("+")) {
    const parts = text.split("+");
    if (parts.length !== 2) throw new Error("more than one +");
    const start = bound(parts[0]);
    const count = parts[1].trim();
    if (!/^\d+$/.test(count)) throw new Error(`"${count}" is not a port count`);
    const end = start + Number(count);
    if (end > 65535) throw new Error(`${start}+${Number(count)} ends at ${end}, outside 1..65535`);
    return [start, end];
  }
  const parts = text.split("-").filter((part) => part.trim() !== "");
  if (parts.length === 0) throw new Error("no port number");
  if (parts.length > 2) throw new Error("more than two bounds");
  const a = bound(parts[0]);
  const b = parts.length === 2 ? bound(parts[1]) : a;
  return a <= b ? [a, b] : [b, a];
}

/** Sorts ranges and merges overlapping and adjacent ones. */
export function mergeRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  const merged: [number, number][] = [];
  for (const [start, end] of sorted) {
    const last = merged[merged.length - 1];
    if (last && start <= last[1] + 1) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  return merged;
}

/** Parses a comma-separated list of ranges (`--port-ranges`, e.g. `5400-5800,30000-39999`); throws naming the bad one. */
export function parseRangeList(flagText: string): PortRange[] {
  const ranges: PortRange[] = [];
  for (const item of flagText.split(",")) {
    if (item.trim() === "") continue;
    try {
      ranges.push(parsePortRange(item));
    } catch (error) {
      throw new Error(`Invalid port range "${item.trim()}" in "${flagText}": ${(error as Error).message}`);
    }
  }
  if (ranges.length === 0) throw new Error(`Invalid port range list "${flagText}": no range`);
  return mergeRanges(ranges);
}

/** Whether a value is meant as a port range (starts with a digit, maybe after `-`); other values are skipped quietly. */
function looksLikeRange(value: string): boolean {
  return /^\s*-?\s*\d/.test(value);
}

/**
 * Reads the ranges from the annotations of the ranges ConfigMap: every value is one range (or a
 * comma-separated list, as the allocator's `polarbox.mpd.reserved.port.ranges`). Values that are not
 * ranges at all (JSON, empty, words) are skipped quietly; range-like values that do not parse are listed in `invalid`.
 */
export function parsePortRanges(annotations: Readonly<Record<string, string>> | undefined): ParsedRanges {
  const ranges: PortRange[] = [];
  const invalid: InvalidRange[] = [];
  for (const key of Object.keys(annotations ?? {}).sort()) {
    const value = annotations![key] ?? "";
    if (!looksLikeRange(value)) continue;
    try {
      ranges.push(...value.split(",").filter((item) => item.trim() !== "").map(parsePortRange));
    } catch (error) {
      invalid.push({ key, value, reason: (error as Error).message });
    }
  }
  return { ranges: mergeRanges(ranges), invalid };
}

/** The used ports inside the (sorted, merged) ranges, sorted. */
export function usedPortsInRanges(found: Set<number> | Uint8Array, ranges: readonly PortRange[]): number[] {
  const used: number[] = [];
  const has = found instanceof Uint8Array ? (p: number) => found[p] === 1 : (p: number) => found.has(p);
  for (const [start, end] of ranges) {
    for (let port = start; port <= end; port++) if (has(port)) used.push(port);
  }
  return used;
}

/** The number of ports in ranges that do not overlap. */
export function rangeSize(ranges: readonly PortRange[]): number {
  return ranges.reduce((sum, [start, end]) => sum + end - start + 1, 0);
}

/**
 * The ports of `ranges` (sorted, merged) that the kernel may give an outgoing connection: inside the ephemeral range
 * and not reserved.
 */
export function ephemeralOverlap(
  ranges: readonly PortRange[],
  kernel: { readonly range: PortRange; readonly reserved: readonly PortRange[] },
): PortRange[] {
  const [low, high] = kernel.range;
  const reserved = mergeRanges(kernel.reserved);
  const overlap: PortRange[] = [];
  for (const [start, end] of ranges) {
    let from = Math.max(start, low);
    const to = Math.min(end, high);
    for (const [rStart, rEnd] of reserved) {
      if (from > to) break;
      if (rEnd < from || rStart > to) continue;
      if (rStart > from) overlap.push([from, rStart - 1]);
      from = rEnd + 1;
    }
    if (from <= to) overlap.push([from, to]);
  }
  return overlap;
}

/** The reserved list with `ranges` added, and whether that changes it (then it is written). */
export function planReservation(
  reserved: readonly PortRange[],
  ranges: readonly PortRange[],
): { readonly reserved: PortRange[]; readonly added: PortRange[]; readonly changed: boolean } {
  const before = mergeRanges(reserved);
  const after = mergeRanges([...reserved, ...ranges]);
  const added = ephemeralOverlap(ranges, { range: [1, 65535], reserved: before });
  return { reserved: after, added, changed: added.length > 0 };
}
