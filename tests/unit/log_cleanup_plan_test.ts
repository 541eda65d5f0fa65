/** The pure decision of the log-cleanup job: GNU find's -mtime rounding, the rules, the safety nets. */
import {
  isDataDirName,
  isLogName,
  isPostgresLogName,
  mtimeMinus,
  mtimePlus,
} from "../../controllers/log_cleanup/find_rules.ts";
import {
  type LogCleanupObserved,
  type LogCleanupPlan,
  type LogCleanupRules,
  planLogCleanup,
} from "../../controllers/log_cleanup/plan.ts";
import type { EntryKind, WalkEntry } from "../../host/log_walk.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { DAY } from "../support/log_cleanup_tree.ts";

const NOW = Date.UTC(2026, 0, 10, 12, 0, 0);
const ROOT = "/r";

function entry(rel: string, kind: EntryKind, ageMs: number | null, problem: string | null = null): WalkEntry {
  const parts = rel.split("/");
  return {
    path: `${ROOT}/${rel}`,
    name: parts[parts.length - 1],
    depth: parts.length,
    top: parts[0],
    kind,
    mtimeMs: ageMs === null ? null : NOW - ageMs,
    size: ageMs === null ? null : 10,
    problem,
  };
}

/** The plan of the entries with one live instance, N = 3 and a limit of 20, unless overridden. */
function planOf(entries: WalkEntry[], overrides: Partial<LogCleanupObserved & LogCleanupRules> = {}): LogCleanupPlan {
  const { activeInstances, nowMs, days, maxFolders } = {
    activeInstances: ["live"],
    nowMs: NOW,
    days: 3,
    maxFolders: 20,
    ...overrides,
  };
  return planLogCleanup(entries, { activeInstances, nowMs }, { days, maxFolders });
}

Deno.test("-mtime -N matches up to N days and one second, as GNU find's reference time has it", () => {
  assert(mtimeMinus(NOW - 3 * DAY + 60_000, NOW, 3));
  assert(mtimeMinus(NOW - 3 * DAY, NOW, 3), "an age of exactly N days still matches -N");
  assert(mtimeMinus(NOW - 3 * DAY - 999, NOW, 3));
  assert(!mtimeMinus(NOW - 3 * DAY - 1000, NOW, 3));
  assert(!mtimeMinus(NOW - 3 * DAY - 60_000, NOW, 3));
  assert(mtimeMinus(NOW + DAY, NOW, 3), "a future mtime is young");
});

Deno.test("-mtime +N needs more than N+1 days", () => {
  assert(!mtimePlus(NOW - 4 * DAY + 60_000, NOW, 3));
  assert(!mtimePlus(NOW - 4 * DAY, NOW, 3));
  assert(mtimePlus(NOW - 4 * DAY - 1, NOW, 3));
  assert(!mtimePlus(NOW - 3 * DAY - 60_000, NOW, 3), "3 days and a minute is not +3");
});

Deno.test("names follow find's -name patterns", () => {
  assert(isLogName("a.log") && isLogName(".log") && !isLogName("a.log.1") && !isLogName("a.LOG"));
  assert(isPostgresLogName("postgresql.log") && isPostgresLogName("postgresql-2026-01-01.log"));
  assert(
    !isPostgresLogName("postgresql") && !isPostgresLogName("xpostgresql.log") && !isPostgresLogName("postgresql.lo"),
  );
  assert(
    isDataDirName("rm_data_") && isDataDirName("rm_data_1") && !isDataDirName("rm_data") && !isDataDirName("xrm_data_"),
  );
});

Deno.test("an inactive folder with only old logs goes; a young log anywhere below keeps it", () => {
  const plan = planOf([
    entry("old", "dir", 9 * DAY),
    entry("old/a/x.log", "file", 3 * DAY + 60_000),
    entry("young", "dir", 9 * DAY),
    entry("young/a", "dir", 9 * DAY),
    entry("young/a/b/deep.log", "file", 3 * DAY - 60_000),
    entry("nologs", "dir", 0),
    entry("live", "dir", 9 * DAY),
    entry("live/x.log", "file", 9 * DAY),
    entry("file.txt", "file", null),
    entry("link", "symlink", 9 * DAY),
  ]);
  assertEquals(plan.folders.map((f) => f.name), ["old", "nologs"]);
  assertEquals(plan.overdue.map((f) => f.name), ["old", "nologs", "live"]);
  assertEquals(plan.folders[0].newestLogMs, NOW - 3 * DAY - 60_000);
});

Deno.test("a *.log of any type counts as recent, like find -name '*.log' without -type", () => {
  const plan = planOf([
    entry("a", "dir", 9 * DAY),
    entry("a/link.log", "symlink", DAY),
    entry("b", "dir", 9 * DAY),
    entry("b/dir.log", "dir", DAY),
    entry("c.log", "dir", DAY),
  ]);
  assertEquals(plan.folders, []);
});

Deno.test("postgresql*.log entries and rm_data_* directories older than +N go, also in active folders", () => {
  const plan = planOf([
    entry("live", "dir", 0),
    entry("live/postgresql-1.log", "file", 4 * DAY + 60_000),
    entry("live/postgresql-2.log", "file", 4 * DAY - 60_000),
    entry("live/postgresql-link.log", "symlink", 5 * DAY),
    entry("live/postgresql-dir.log", "dir", 5 * DAY),
    entry("live/other.log", "file", 9 * DAY),
    entry("live/rm_data_1", "dir", 5 * DAY),
    entry("live/rm_data_1/postgresql-9.log", "file", 9 * DAY),
    entry("live/rm_data_1/rm_data_2", "dir", 9 * DAY),
    entry("live/rm_data_1/rm_data_2/f", "file", 9 * DAY),
    entry("live/rm_data_young", "dir", 4 * DAY - 60_000),
    entry("live/rm_data_file", "file", 9 * DAY),
    entry("live/rm_data_link", "symlink", 9 * DAY),
    entry("live/young.log", "file", 0),
    entry("postgresql-top.log", "file", 9 * DAY),
  ]);
  assertEquals(plan.folders, []);
  assertEquals(plan.logFiles.map((f) => f.path), [
    "/r/live/postgresql-1.log",
    "/r/live/postgresql-link.log",
    "/r/postgresql-top.log",
  ]);
  assertEquals(plan.dataDirs.map((d) => d.path), ["/r/live/rm_data_1"]);
  assertEquals(plan.dataDirs[0].bytes, 20, "the sizes of the files below the directory");
});

Deno.test("what is inside a removed folder is not listed again", () => {
  const plan = planOf([
    entry("gone", "dir", 9 * DAY),
    entry("gone/postgresql-1.log", "file", 9 * DAY),
    entry("gone/rm_data_1", "dir", 9 * DAY),
  ]);
  assertEquals(plan.folders.map((f) => f.name), ["gone"]);
  assertEquals(plan.logFiles, []);
  assertEquals(plan.dataDirs, []);
});

Deno.test("no folder goes when the active instances are unknown or none has the label, but old logs still go", () => {
  const tree = [entry("gone", "dir", 9 * DAY), entry("gone/postgresql-1.log", "file", 9 * DAY)];
  for (const activeInstances of [null, []]) {
    const plan = planOf(tree, { activeInstances });
    assertEquals(plan.folders, []);
    assertEquals(plan.overdueKept, 1);
    assertEquals(plan.logFiles.map((f) => f.path), ["/r/gone/postgresql-1.log"]);
    assert(plan.skipped.some((line) => line.startsWith("No instance folder removed")), plan.skipped.join("\n"));
  }
});

Deno.test("more overdue folders than the limit: none goes", () => {
  const tree = ["a", "b", "c"].map((name) => entry(name, "dir", 9 * DAY));
  const over = planOf(tree, { maxFolders: 2 });
  assertEquals(over.folders, []);
  assert(over.folderLimitExceeded);
  assertEquals(over.overdueKept, 3);
  const at = planOf(tree, { maxFolders: 3 });
  assertEquals(at.folders.length, 3);
  assert(!at.folderLimitExceeded);
});

Deno.test("a folder that could not be seen whole is kept", () => {
  const plan = planOf([
    entry("a", "dir", 9 * DAY),
    entry("a/\uFFFD.log", "file", null, "its name is not valid UTF-8 and cannot be addressed"),
    entry("b", "dir", 9 * DAY),
    entry("b/mnt", "dir", 9 * DAY, "it is on another file system: not entered"),
    entry("c", "dir", 9 * DAY, "cannot be listed: Permission denied"),
    entry("d", "dir", 9 * DAY),
  ]);
  assertEquals(plan.folders.map((f) => f.name), ["d"]);
  assertEquals(plan.skipped.filter((line) => line.startsWith("Instance folder kept")).length, 3);
});

Deno.test("a log whose mtime is unknown counts as recent", () => {
  const plan = planOf([entry("a", "dir", 9 * DAY), entry("a/x.log", "file", null)]);
  assertEquals(plan.folders, []);
});
