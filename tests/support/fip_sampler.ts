/**
 * The "never two holders" referee: reads the addresses of every host of a FipNetwork every 50 ms (the hosts of one
 * sample in parallel) and records every sample in which two or more hosts carry the same floating IP.
 */
import { type FipNetwork, type HostName, HOSTS } from "./fip_network.ts";

/** A sample in which one address was on more than one host. */
export interface DoubleHolder {
  /** When the sample started (ms since the epoch). */
  readonly at: number;
  /** The address. */
  readonly ip: string;
  /** The hosts that carried it. */
  readonly hosts: readonly HostName[];
}

/** What the sampler saw. */
export interface SamplerReport {
  /** How many samples it took. */
  readonly samples: number;
  /** The longest time between the starts of two samples, in ms. */
  readonly maxGapMs: number;
  /** Every sample with a double holder. */
  readonly doubles: readonly DoubleHolder[];
  /** How many samples failed to read a host (a host namespace that went away ends the sampler's use). */
  readonly errors: number;
}

/** A running sampler. */
export interface FipSampler {
  /** What it saw so far. */
  report(): SamplerReport;
  /** The start of the last sample in which `host` carried `ip` (ms since the epoch), or null when none did. */
  lastSeen(ip: string, host: HostName): number | null;
  /** Throws when any sample so far had a double holder, naming the first ones. */
  assertNoDoubles(what: string): void;
  /** Stops sampling; resolves once the sample in flight is done. */
  stop(): Promise<SamplerReport>;
}

/** Starts sampling the addresses that `isFloating` accepts, every `intervalMs` (50 by default). */
export function startFipSampler(
  network: FipNetwork,
  isFloating: (ip: string) => boolean,
  options: { intervalMs?: number } = {},
): FipSampler {
  const intervalMs = options.intervalMs ?? 50;
  const doubles: DoubleHolder[] = [];
  let samples = 0;
  let errors = 0;
  let maxGapMs = 0;
  const seen = new Map<string, number>();
  let stopped = false;
  const report = (): SamplerReport => ({ samples, maxGapMs, doubles: [...doubles], errors });

  const loop = (async () => {
    let last = 0;
    while (!stopped) {
      const at = Date.now();
      if (last > 0) maxGapMs = Math.max(maxGapMs, at - last);
      last = at;
      try {
        const lists = await Promise.all(HOSTS.map((h) => network.addresses(h)));
        const holders = new Map<string, HostName[]>();
        HOSTS.forEach((host, i) => {
          for (const ip of new Set(lists[i].map((a) => a.ip).filter(isFloating))) {
            holders.set(ip, [...(holders.get(ip) ?? []), host]);
            seen.set(`${host} ${ip}`, at);
          }
        });
        for (const [ip, hosts] of holders) if (hosts.length > 1) doubles.push({ at, ip, hosts });
        samples++;
      } catch {
        errors++;
      }
      const wait = at + intervalMs - Date.now();
      if (wait > 0 && !stopped) await new Promise((r) => setTimeout(r, wait));
    }
  })();

  return {
    report,
    lastSeen: (ip, host) => seen.get(`${host} ${ip}`) ?? null,
    assertNoDoubles(what) {
      if (doubles.length === 0) return;
      const first = doubles.slice(0, 5).map((d) => `${new Date(d.at).toISOString()} ${d.ip} on ${d.hosts.join(", ")}`);
      throw new Error(`${what}: ${doubles.length} samples with two holders, first: ${first.join("; ")}`);
    },
    async stop() {
      stopped = true;
      await loop;
      return report();
    },
  };
}
