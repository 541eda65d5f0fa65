/** GNU find's rules as the original's cleanup used them: `-mtime -N`, `-mtime +N` and the `-name` patterns. */

/** One day in ms. */
export const DAY_MS = 86_400_000;

/**
 * GNU find's `-mtime -N`: modified less than N days ago. find compares with `now - N days - 1 s` (its
 * reference for `-N` starts one second before the day), so an age of exactly N days still matches.
 */
export function mtimeMinus(mtimeMs: number, nowMs: number, days: number): boolean {
  return mtimeMs > nowMs - days * DAY_MS - 1000;
}

/** GNU find's `-mtime +N`: modified more than N whole days ago, i.e. more than (N+1) x 24 hours ago. */
export function mtimePlus(mtimeMs: number, nowMs: number, days: number): boolean {
  return mtimeMs < nowMs - (days + 1) * DAY_MS;
}

/** find's `-name '*.log'`. */
export function isLogName(name: string): boolean {
  return name.endsWith(".log");
}

/** find's `-name 'postgresql*.log'`. */
export function isPostgresLogName(name: string): boolean {
  return name.length >= "postgresql.log".length && name.startsWith("postgresql") && name.endsWith(".log");
}

/** find's `-name 'rm_data_*'`. */
export function isDataDirName(name: string): boolean {
  return name.startsWith("rm_data_");
}
