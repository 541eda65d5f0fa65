/**
 * Mount points from `/proc/self/mountinfo`. Where the kernel has neither openat2 nor statx mount ids, a bind mount
 * of the same file system shares the device number of its parent, so only this list tells it apart.
 */

/** The mount points of one mountinfo text (field 5 of each line, with the kernel's octal escapes undone). */
export function parseMountPoints(text: string): string[] {
  const points: string[] = [];
  for (const line of text.split("\n")) {
    const field = line.split(" ")[4];
    if (field === undefined || field === "") continue;
    points.push(field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
  }
  return points;
}

/** The mount points strictly below `root` (an absolute path without a trailing slash). */
export function mountPointsBelow(points: readonly string[], root: string): Set<string> {
  return new Set(points.filter((point) => point.startsWith(root + "/")));
}

/** Reads this process's mount points strictly below `root`; an unreadable mountinfo gives none. */
export function readMountPointsBelow(root: string, path = "/proc/self/mountinfo"): Set<string> {
  try {
    return mountPointsBelow(parseMountPoints(Deno.readTextFileSync(path)), root);
  } catch {
    return new Set();
  }
}
