/** The walk and the decision on real trees, with GNU find as the referee for the same rules on the same tree. */
import { createLogCleanupPlanner } from "../../controllers/log_cleanup/plan.ts";
import { resolveLogRoot, walkLogTree } from "../../host/log_walk.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { DAY, dir, file, link, makeTree, nonUtf8, run } from "../support/log_cleanup_tree.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";

const N = 3;
const noFind = skipUnless(hasCommand("find"), "GNU find is needed as the referee");

/** One find process (one start time) for the three searches of the original and the list of top-level folders. */
async function referee(root: string): Promise<{ young: string[]; logs: string[]; data: string[]; top: string[] }> {
  const out = new TextDecoder().decode(
    await run([
      "find",
      root,
      "-mindepth",
      "1",
      "(",
      "-name",
      "*.log",
      "-mtime",
      `-${N}`,
      "-printf",
      "young\t%p\\0",
      ")",
      ",",
      "(",
      "-name",
      "postgresql*.log",
      "-mtime",
      `+${N}`,
      "-printf",
      "log\t%y\t%p\\0",
      ")",
      ",",
      "(",
      "-name",
      "rm_data_*",
      "-type",
      "d",
      "-mtime",
      `+${N}`,
      "-printf",
      "data\t%p\\0",
      ")",
      ",",
      "(",
      "-type",
      "d",
      "!",
      "-path",
      `${root}/*/*`,
      "-printf",
      "top\t%p\\0",
      ")",
    ]),
  );
  const result = { young: [] as string[], logs: [] as string[], data: [] as string[], top: [] as string[] };
  for (const record of out.split("\0").filter(Boolean)) {
    const [kind, ...rest] = record.split("\t");
    if (kind === "young") result.young.push(rest.join("\t"));
    // `rm` (no -r) on a directory fails: the original never removed a directory named postgresql*.log.
    if (kind === "log" && rest[0] !== "d") result.logs.push(rest.slice(1).join("\t"));
    if (kind === "data") result.data.push(rest.join("\t"));
    if (kind === "top") result.top.push(rest.join("\t"));
  }
  return result;
}

/** Builds the tree; returns a function that sets the ages that sit near a day boundary, just before find runs. */
async function build(root: string, outside: string, now: number): Promise<(now: number) => Promise<void>> {
  const s = 1000;
  // Ages on both sides of each boundary: -N ends at N days + 1 s (GNU's reference), +N starts after N+1 days.
  const youngEdge = N * DAY + s;
  const oldEdge = (N + 1) * DAY;
  const ages: Record<string, number> = {
    "m60": youngEdge - 60 * s,
    "m2": youngEdge - 2 * s,
    "exactN": N * DAY + s / 2,
    "p-half": youngEdge + s / 2,
    "p2": youngEdge + 2 * s,
    "p60": youngEdge + 60 * s,
    "o-60": oldEdge - 60 * s,
    "o-2": oldEdge - 2 * s,
    "o-half": oldEdge - s / 2,
    "o+half": oldEdge + s / 2,
    "o+2": oldEdge + 2 * s,
    "o+60": oldEdge + 60 * s,
    "week": 7 * DAY,
  };
  for (const [label, age] of Object.entries(ages)) {
    // One folder per age whose only *.log has that age, deep down.
    await file(`${root}/ins-${label}/a/b/x.log`, age, now);
    await file(`${root}/logs/postgresql-${label}.log`, age, now);
    await dir(`${root}/data/rm_data_${label}`, age, now);
  }
  // A young log keeps these two folders, so what is in them is decided by the +N rules.
  await file(`${root}/data/keep.log`, 0, now);
  await file(`${root}/logs/keep.log`, 0, now);
  const setBoundaries = async (at: number) => {
    for (const [label, age] of Object.entries(ages)) {
      for (const path of [`${root}/ins-${label}/a/b/x.log`, `${root}/logs/postgresql-${label}.log`]) {
        await Deno.utime(path, (at - age) / 1000, (at - age) / 1000);
      }
      await Deno.utime(`${root}/data/rm_data_${label}`, (at - age) / 1000, (at - age) / 1000);
    }
  };
  await file(`${root}/ins-mixed/old.log`, 9 * DAY, now);
  await file(`${root}/ins-mixed/deep/er/new.log`, DAY, now);
  await file(`${root}/ins-mixed/postgresql-old.log`, 9 * DAY, now);
  await dir(`${root}/ins-nolog`, 9 * DAY, now);
  await file(`${root}/ins-nolog/data.bin`, 9 * DAY, now);
  await file(`${root}/ins-notlog/x.log.1`, 0, now);
  // Hostile names are names.
  for (const name of ["a; rm -rf x", "-rf", "with space", "new\nline", "$(touch pwned)", "*"]) {
    await file(`${root}/${name}/postgresql-${name.replace("/", "")}.log`, 9 * DAY, now);
    await dir(`${root}/${name}/rm_data_${name}`, 9 * DAY, now);
    await dir(`${root}/${name}`, 9 * DAY, now);
  }
  // Links: a link named like an old log pointing outside; a linked directory holding a young log.
  await file(`${outside}/target.log`, 0, now);
  await file(`${outside}/dir/young.log`, 0, now);
  await dir(`${root}/ins-links`, 9 * DAY, now);
  await link(`${outside}/target.log`, `${root}/ins-links/postgresql-1.log`, 9 * DAY, now);
  await link(`${outside}/dir`, `${root}/ins-links/linked`, 9 * DAY, now);
  await link(`${outside}/dir`, `${root}/ins-links/rm_data_link`, 9 * DAY, now);
  await link(`${outside}/target.log`, `${root}/ins-links/fresh.log`, 9 * DAY, now);
  await link(`${outside}/dir`, `${root}/top-link`, 9 * DAY, now);
  // Odd types named like matches: a directory named postgresql*.log, a file named rm_data_*.
  await dir(`${root}/odd/postgresql-dir.log`, 9 * DAY, now);
  await file(`${root}/odd/rm_data_file`, 9 * DAY, now);
  // Nested data directories: the outer one takes the inner one and the old log in it.
  await file(`${root}/nest/rm_data_outer/rm_data_inner/postgresql-in.log`, 9 * DAY, now);
  await dir(`${root}/nest/rm_data_outer/rm_data_inner`, 9 * DAY, now);
  await dir(`${root}/nest/rm_data_outer`, 9 * DAY, now);
  return setBoundaries;
}

function under(paths: string[], path: string): boolean {
  return paths.some((p) => path.startsWith(p + "/"));
}

Deno.test({
  name: "the walk and plan select exactly what GNU find selects, on both sides of each day boundary",
  ignore: noFind,
  async fn() {
    const tree = await makeTree();
    try {
      const setBoundaries = await build(tree.root, tree.outside, Date.now());
      const setAt = Date.now();
      await setBoundaries(setAt);
      const started = Date.now();
      const found = await referee(tree.root);
      const ended = Date.now();
      assert(ended - setAt < 400, `Setting ages and find took ${ended - setAt} ms: the 0.5 s margins are too thin`);
      // Our clock is the moment find started: both count the same ages.
      const root = await resolveLogRoot(tree.root);
      const planner = createLogCleanupPlanner({ activeInstances: ["none"], nowMs: started }, {
        days: N,
        maxFolders: 1000,
      });
      await walkLogTree(root, { wants: planner.wants, onEntry: planner.visit });
      const plan = planner.finish();

      const overdueByFind = found.top.filter((top) =>
        !found.young.some((young) => young === top || young.startsWith(top + "/"))
      ).sort();
      assertEquals(plan.overdue.map((f) => f.path).sort(), overdueByFind);
      assert(overdueByFind.includes(`${tree.root}/ins-p-half`), "an age of N days + 1.5 s is overdue");
      assert(!overdueByFind.includes(`${tree.root}/ins-exactN`), "N days + 0.5 s is still -N for find");
      assert(overdueByFind.includes(`${tree.root}/ins-links`), "the young log behind a linked directory is not seen");

      const removedFolders = new Set(plan.folders.map((f) => f.path));
      const expectedLogs = found.logs.filter((p) =>
        !under(found.data, p) && ![...removedFolders].some((f) => p.startsWith(f + "/"))
      ).sort();
      assertEquals(plan.logFiles.map((f) => f.path).sort(), expectedLogs);
      assert(expectedLogs.includes(`${tree.root}/logs/postgresql-o+2.log`));
      assert(expectedLogs.includes(`${tree.root}/logs/postgresql-o+half.log`));
      assert(!expectedLogs.includes(`${tree.root}/logs/postgresql-o-half.log`));

      const expectedData = found.data.filter((p) =>
        !under(found.data, p) && ![...removedFolders].some((f) => p.startsWith(f + "/"))
      ).sort();
      assertEquals(plan.dataDirs.map((d) => d.path).sort(), expectedData);
      assert(expectedData.includes(`${tree.root}/data/rm_data_o+2`));
      for (const hostile of ["a; rm -rf x", "-rf", "with space", "new\nline", "$(touch pwned)", "*"]) {
        assert(removedFolders.has(`${tree.root}/${hostile}`), `folder ${JSON.stringify(hostile)} is overdue`);
      }
    } finally {
      await tree.cleanup();
    }
  },
});

Deno.test({
  name: "names that are not UTF-8 are reported, never guessed at, and keep their instance folder",
  ignore: noFind,
  async fn() {
    const tree = await makeTree();
    try {
      const now = Date.now();
      await dir(`${tree.root}/ins-a`, 9 * DAY, now);
      nonUtf8(`${tree.root}/ins-a`, "file", "postgresql-");
      await file(`${tree.root}/ins-a/old.log`, 9 * DAY, now);
      nonUtf8(tree.root, "dir", "ins-");
      // A name that really holds U+FFFD is valid UTF-8: the raw names tell it from the bytes that are not.
      await file(`${tree.root}/ins-b/real\uFFFD.log`, 9 * DAY, now);
      await file(`${tree.root}/ins-c/old.log`, 9 * DAY, now);
      const byFind = await run(["find", tree.root, "-mindepth", "1", "-print0"]);
      assert(byFind.includes(0xff), "find sees the raw bytes");

      const root = await resolveLogRoot(tree.root);
      const planner = createLogCleanupPlanner({ activeInstances: ["none"], nowMs: now }, { days: N, maxFolders: 1000 });
      await walkLogTree(root, { wants: planner.wants, onEntry: planner.visit });
      const plan = planner.finish();
      assertEquals(plan.folders.map((f) => f.name).sort(), ["ins-b", "ins-c"]);
      assertEquals(plan.logFiles, []);
      const notLooked = plan.skipped.filter((line) => line.includes("not valid UTF-8"));
      // Two entries not looked at, and the two folders they keep (the top-level one is its own folder).
      assertEquals(notLooked.length, 4, plan.skipped.join("\n"));
    } finally {
      await tree.cleanup();
    }
  },
});

Deno.test("the walk stays within the depth limit and keeps the folder it could not see to the bottom", async () => {
  const tree = await makeTree();
  try {
    const now = Date.now();
    await file(`${tree.root}/deep/1/2/3/4/old.log`, 9 * DAY, now);
    await file(`${tree.root}/flat/old.log`, 9 * DAY, now);
    const root = await resolveLogRoot(tree.root);
    const planner = createLogCleanupPlanner({ activeInstances: ["none"], nowMs: now }, { days: N, maxFolders: 1000 });
    await walkLogTree(root, { wants: planner.wants, onEntry: planner.visit, maxDepth: 4 });
    const plan = planner.finish();
    assertEquals(plan.folders.map((f) => f.name), ["flat"]);
    assert(plan.skipped.some((line) => line.includes("deeper than 4 levels")), plan.skipped.join("\n"));
  } finally {
    await tree.cleanup();
  }
});
