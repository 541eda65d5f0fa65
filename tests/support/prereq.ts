/** Test prerequisites: a test may skip with a visible reason, but under CI=true a missing prerequisite fails. */

/** Whether a command can be found on PATH. */
export function hasCommand(name: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return true;
    } catch {
      // not in this folder
    }
  }
  return false;
}

/** Whether this process runs as root. */
export function isRoot(): boolean {
  return Deno.uid() === 0;
}

/**
 * Returns the `ignore` flag for `Deno.test`: true (skip, with the reason printed) when the
 * prerequisite is missing, except under CI=true, where it returns false so the test runs and fails.
 */
export function skipUnless(ok: boolean, reason: string): boolean {
  if (ok) return false;
  if (Deno.env.get("CI") === "true") {
    console.error(`Prerequisite missing under CI=true, the test will fail: ${reason}`);
    return false;
  }
  console.error(`Skipping: ${reason}`);
  return true;
}
