/** A bounded list of readable lines, so a huge tree cannot grow a run's result. */

/** How many lines (skipped reasons, errors, replaced paths) a result keeps. */
export const LIST_LIMIT = 100;

/** Lines kept up to the limit, the rest counted. */
export interface BoundedList {
  /** Adds a line, or counts it once the list is full. */
  push(line: string): void;
  /** The kept lines, and `... and N more` when some were left out. */
  lines(): string[];
}

/** A list that keeps the first 100 lines and counts the rest. */
export function createBoundedList(): BoundedList {
  const kept: string[] = [];
  let more = 0;
  return {
    push(line) {
      if (kept.length < LIST_LIMIT) kept.push(line);
      else more++;
    },
    lines: () => (more > 0 ? [...kept, `... and ${more} more`] : [...kept]),
  };
}
