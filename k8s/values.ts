/** How values are written in the cluster's objects: times (whole seconds, MicroTime), the original's lenient booleans. */

/** A time as Kubernetes and the original daemon write it: `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds). */
export function kubeTime(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** A MicroTime as the API server parses it: RFC 3339 in UTC with exactly 6 fraction digits. */
export function microTime(date: Date): string {
  return `${date.toISOString().slice(0, 23)}000Z`;
}

const TRUE_WORDS = new Set(["1", "t", "y", "true", "yes"]);
const FALSE_WORDS = new Set(["0", "f", "n", "false", "no"]);

/** The original's lenient boolean for ConfigMap values: `1 t y true yes` / `0 f n false no` (any case, trimmed); anything else is the default. */
export function parseLenientBool(value: string | undefined, defaultValue: boolean): boolean {
  if (value === undefined) return defaultValue;
  const word = value.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  return defaultValue;
}
