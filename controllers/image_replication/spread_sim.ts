/**
 * A pure simulation of one version spreading from one host to many, with a bandwidth model: every host has the same
 * up and down link, a source shares its uplink between its streams, a receiver takes one stream at a time. Receivers
 * pick their source with `rankPeers` (fewest transfers in progress). `tree`: a host that has finished serves too;
 * `star`: only the first host serves.
 */
import { rankPeers } from "./plan.ts";

/** The simulation's input. */
export interface SpreadModel {
  /** Hosts to copy to (the source not counted). */
  readonly receivers: number;
  /** Bytes of the version. */
  readonly bytes: number;
  /** Each host's link, up and down, in bytes per second. */
  readonly linkBytesPerSecond: number;
  /** Streams a source serves at once (`--image-export-concurrency`). */
  readonly exportConcurrency: number;
  /** `tree` (finished hosts serve) or `star` (one source). */
  readonly strategy: "tree" | "star";
}

/** What the simulation found. */
export interface SpreadResult {
  /** Seconds until the last host has the version. */
  readonly seconds: number;
  /** Waves: the distinct instants at which copies finished. */
  readonly rounds: number;
  /** The longest chain of hops from the first host. */
  readonly depth: number;
  /** Copies each source served, most first (the first host's load shows the star). */
  readonly busiestSourceCopies: number;
}

interface Transfer {
  readonly source: string;
  readonly receiver: string;
  remaining: number;
}

/** Runs the simulation to the end. */
export function simulateSpread(model: SpreadModel): SpreadResult {
  const names = Array.from({ length: model.receivers }, (_, i) => `host-${String(i + 1).padStart(4, "0")}`);
  const origin = "host-0000";
  const holders: string[] = [origin];
  const depth = new Map<string, number>([[origin, 0]]);
  const served = new Map<string, number>();
  const waiting = [...names];
  const active: Transfer[] = [];
  const load = new Map<string, number>([[origin, 0]]);
  let now = 0;
  let rounds = 0;
  const limit = Math.max(1, model.exportConcurrency);
  while (waiting.length > 0 || active.length > 0) {
    // Receivers start in name order while some source has a free stream.
    while (waiting.length > 0) {
      const sources = (model.strategy === "star" ? [origin] : holders).filter((h) => (load.get(h) ?? 0) < limit);
      if (sources.length === 0) break;
      const receiver = waiting.shift()!;
      const source = rankPeers(sources, receiver, { load })[0];
      load.set(source, (load.get(source) ?? 0) + 1);
      active.push({ source, receiver, remaining: model.bytes });
    }
    const rate = (t: Transfer) => model.linkBytesPerSecond / load.get(t.source)!;
    const step = Math.min(...active.map((t) => t.remaining / rate(t)));
    for (const t of active) t.remaining -= rate(t) * step;
    now += step;
    rounds++;
    // Relative tolerance: equal transfers finish together despite rounding.
    for (const t of active.filter((t) => t.remaining <= model.bytes * 1e-9)) {
      active.splice(active.indexOf(t), 1);
      load.set(t.source, load.get(t.source)! - 1);
      served.set(t.source, (served.get(t.source) ?? 0) + 1);
      holders.push(t.receiver);
      load.set(t.receiver, 0);
      depth.set(t.receiver, depth.get(t.source)! + 1);
    }
  }
  return {
    seconds: now,
    rounds,
    depth: Math.max(...depth.values()),
    busiestSourceCopies: Math.max(0, ...served.values()),
  };
}
