/** Flag values parsed as the original's Go flags parse them: durations, booleans, bounded numbers, choices. */

const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration (`500ms`, `3s`, `1m`, `1h30m`, `1.5h`) into milliseconds; throws on bad input. */
export function parseGoDuration(text: string): number {
  const s = text.trim();
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * UNITS[m[2]];
    matched += m[0].length;
  }
  if (s === "" || matched !== s.length) {
    throw new Error(`"${text}" is not a duration (examples: 500ms, 3s, 1m, 1h30m)`);
  }
  return total;
}

/** Parses a boolean the way Go's strconv.ParseBool does. */
export function parseGoBool(text: string | boolean): boolean {
  if (typeof text === "boolean") return text;
  const s = text.trim();
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  throw new Error(`"${text}" is not a boolean (true or false)`);
}

/** A whole number within `min..max`. */
export function integer(min: number, max: number): (text: string) => number {
  return (text: string): number => {
    const s = text.trim();
    if (!/^[-+]?\d+$/.test(s)) throw new Error(`"${text}" is not a whole number`);
    const n = Number(s);
    if (n < min || n > max) throw new Error(`${n} is out of range ${min}..${max}`);
    return n;
  };
}

/** A number above 0. */
export function positiveNumber(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`"${text}" is not a number above 0`);
  return n;
}

/** A Go duration of at least `min` ms, in ms. */
export function duration(min: number): (text: string) => number {
  return (text: string): number => {
    const ms = parseGoDuration(text);
    if (ms < min) throw new Error(`${text} is shorter than ${min} ms`);
    return ms;
  };
}

/** One of the given words. */
export function oneOf<T extends string>(...values: T[]): (text: string) => T {
  return (text: string): T => {
    if (!values.includes(text as T)) throw new Error(`"${text}" is not one of ${values.join(", ")}`);
    return text as T;
  };
}

/** Any text, as given. */
export function text(s: string): string {
  return s;
}

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  t: 1e12,
  ki: 2 ** 10,
  mi: 2 ** 20,
  gi: 2 ** 30,
};

/** A byte count: `0`, `1500`, `100M` (decimal units k, M, G, T) or `64Mi` (binary Ki, Mi, Gi), an optional `B`. */
export function byteCount(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?$/i.exec(text.trim());
  const unit = BYTE_UNITS[(m?.[2] ?? "").toLowerCase()];
  if (!m || unit === undefined) throw new Error(`"${text}" is not a byte count (examples: 0, 100M, 1G, 64Mi)`);
  return Math.round(Number(m[1]) * unit);
}
