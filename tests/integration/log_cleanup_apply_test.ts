/** The log-cleanup job removing real files: what goes, what stays, and every safety net. */
import { createLogCleanupController, type LogCleanupResult } from "../../controllers/log_cleanup/job.ts";
import type { RunOutcome } from "../../core/types.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { assert, assertEquals } from "../support/assert.ts";
import {
  age,
  cleanupDeps,
  DAY,
  dir,
  exists,
  file,
  link,
  makeTree,
  nonUtf8,
  podsServer,
  type TestTree,
} from "../support/log_cleanup_tree.ts";
import { recordingSink } from "../support/job_deps.ts";

const OLD = 9 * DAY;

function run(
  tree: TestTree,
  kube: KubeClient | null,
  options: { dryRun?: boolean; maxFolders?: number; beforeRemove?: () => Promise<void> } = {},
) {
  const sink = recordingSink();
  const { deps, options: jobOptions } = cleanupDeps({
    root: tree.root + "/",
    kube,
    events: sink,
    maxFolders: options.maxFolders,
  });
  const controller = createLogCleanupController(deps, jobOptions, { beforeRemove: options.beforeRemove });
  const outcome: Promise<RunOutcome<LogCleanupResult>> = controller.run({
    signal: new AbortController().signal,
    dryRun: options.dryRun ?? false,
  });
  return { outcome, events: sink.events };
}

async function standardTree(tree: TestTree, now: number): Promise<void> {
  const { root, outside } = tree;
  await file(`${outside}/target.log`, OLD, now, "target");
  await file(`${outside}/dir/keep.txt`, OLD, now, "outside");
  // An inactive overdue instance with links inside: removed whole, links as links.
  await file(`${root}/gone/x.log`, OLD, now, "12345");
  await file(`${root}/gone/sub/postgresql-1.log`, OLD, now, "123");
  await link(`${outside}/dir`, `${root}/gone/linked`, OLD, now);
  await link(`${outside}/target.log`, `${root}/gone/postgresql-9.log`, OLD, now);
  await age(`${root}/gone/sub`, OLD, now);
  await age(`${root}/gone`, OLD, now);
  // An active instance whose logs are all old: the folder stays, its old postgresql logs and data go.
  await file(`${root}/live/x.log`, OLD, now, "keep");
  await file(`${root}/live/postgresql-1.log`, OLD, now, "1234567");
  await file(`${root}/live/postgresql-2.log`, 3 * DAY, now, "young");
  await file(`${root}/live/rm_data_1/base/f`, OLD, now, "1234567890");
  await age(`${root}/live/rm_data_1/base`, OLD, now);
  await age(`${root}/live/rm_data_1`, OLD, now);
  await dir(`${root}/live/rm_data_2`, DAY, now);
  // A link named like an old log at the top, pointing outside.
  await link(`${outside}/target.log`, `${root}/postgresql-1.log`, OLD, now);
  // Hostile names, and a canary the names must not touch.
  await file(`${root}/x`, 0, now, "canary");
  for (const name of ["a; rm -rf x", "-rf", "with space", "new\nline"]) {
    await file(`${root}/${name}/old.log`, OLD, now, "ab");
    await age(`${root}/${name}`, OLD, now);
  }
  await age(root, 0, now);
}

Deno.test("a run removes the overdue inactive folders, old logs and data directories, and nothing else", async () => {
  const { kube, server } = await podsServer(["live", "other"]);
  const tree = await makeTree();
  try {
    const now = Date.now();
    await standardTree(tree, now);
    const { root, outside } = tree;
    const dry = await run(tree, kube, { dryRun: true }).outcome;
    assert(await exists(`${root}/gone/x.log`), "a dry run removes nothing");

    const { outcome, events } = run(tree, kube);
    const { result } = await outcome;
    const hostile = ["a; rm -rf x", "-rf", "with space", "new\nline"].map((n) => `${root}/${n}`);
    assertEquals(result.root, root);
    assertEquals(result.days, 3);
    assertEquals(result.activeInstances, ["live", "other"]);
    assertEquals([...result.instanceFolders].sort(), [`${root}/gone`, ...hostile].sort());
    assertEquals(result.logFiles.sort(), [`${root}/live/postgresql-1.log`, `${root}/postgresql-1.log`].sort());
    assertEquals(result.removedDataDirs, [`${root}/live/rm_data_1`]);
    assertEquals(result.errors, []);
    // What the dry run announced is what the run did.
    assertEquals(dry.result.instanceFolders.sort(), result.instanceFolders.sort());
    assertEquals(dry.result.logFiles.sort(), result.logFiles);
    assertEquals(dry.result.removedDataDirs, result.removedDataDirs);
    assertEquals(dry.result.bytes, result.bytes);

    // The bytes of the files and links removed, as lstat sizes.
    const linkSize = (target: string) => target.length;
    const expectedBytes = 5 + 3 + linkSize(`${outside}/dir`) + linkSize(`${outside}/target.log`) + 4 * 2 + 7 + 10 +
      linkSize(`${outside}/target.log`);
    assertEquals(result.bytes, expectedBytes);
    assertEquals(result.counts.instanceFolders, 5);
    assertEquals(result.counts.filesRemoved, 4 + 4 + 2 + 1);

    for (const path of [...hostile, `${root}/gone`, `${root}/live/postgresql-1.log`, `${root}/live/rm_data_1`]) {
      assert(!await exists(path), `${JSON.stringify(path)} is gone`);
    }
    for (const path of [`${root}/live/x.log`, `${root}/live/postgresql-2.log`, `${root}/live/rm_data_2`]) {
      assert(await exists(path), `${path} stays`);
    }
    assertEquals(await Deno.readTextFile(`${root}/x`), "canary");
    assertEquals(await Deno.readTextFile(`${outside}/target.log`), "target");
    assertEquals(await Deno.readTextFile(`${outside}/dir/keep.txt`), "outside");
    assert(await exists(root), "the root stays");

    assertEquals(events.length, 1);
    assertEquals(events[0].type, "Normal");
    assert(events[0].message.includes("5 instance folders, 2 log files and 1 data directories"), events[0].message);
  } finally {
    await tree.cleanup();
    await server.close();
  }
});

Deno.test("no instance folder is removed in local mode, when pods cannot be listed, or when none has the label", async () => {
  const cases: { insIds: string[] | null; listingFails?: boolean; reason: RegExp }[] = [
    { insIds: null, reason: /local mode/ },
    // The pods exist: only the failed listing keeps the folders.
    {
      insIds: ["live", "other"],
      listingFails: true,
      reason: /^Cannot list pods with label apsara\.metric\.ins_id: .*: 500 Internal Server Error/,
    },
    { insIds: [], reason: /no pod has label apsara\.metric\.ins_id/ },
  ];
  for (const { insIds, listingFails, reason } of cases) {
    const pods = insIds === null ? null : await podsServer(insIds);
    if (listingFails) pods?.server.injectFault({ method: "GET", pathPrefix: "/api/v1/pods", count: 1, status: 500 });
    const tree = await makeTree();
    try {
      const now = Date.now();
      await standardTree(tree, now);
      const { result } = await run(tree, pods?.kube ?? null).outcome;
      assertEquals(result.instanceFolders, [], String(reason));
      assert(await exists(`${tree.root}/gone/x.log`));
      assert(result.skipped.some((line) => reason.test(line)), result.skipped.join("\n"));
      assertEquals(result.activeInstances, pods === null || listingFails ? null : []);
      const { root } = tree;
      assertEquals(result.logFiles.sort(), [
        `${root}/gone/postgresql-9.log`,
        `${root}/gone/sub/postgresql-1.log`,
        `${root}/live/postgresql-1.log`,
        `${root}/postgresql-1.log`,
      ], "old logs still go, also those in the folders kept");
      assertEquals(await Deno.readTextFile(`${tree.outside}/target.log`), "target");
    } finally {
      await tree.cleanup();
      await pods?.server.close();
    }
  }
});

Deno.test("a run that would remove more folders than the limit removes none and says so", async () => {
  const { kube, server } = await podsServer(["x"]);
  const tree = await makeTree();
  try {
    const now = Date.now();
    for (const name of ["a", "b", "c"]) await file(`${tree.root}/${name}/old.log`, OLD, now);
    await file(`${tree.root}/keep/postgresql-1.log`, OLD, now);
    await file(`${tree.root}/keep/young.log`, 0, now);
    const { outcome, events } = run(tree, kube, { maxFolders: 2 });
    const { result } = await outcome;
    assertEquals(result.instanceFolders, []);
    assertEquals(result.counts.folderLimitExceeded, 1);
    assertEquals(result.counts.overdueKept, 3);
    for (const name of ["a", "b", "c"]) assert(await exists(`${tree.root}/${name}/old.log`));
    assertEquals(result.logFiles, [`${tree.root}/keep/postgresql-1.log`]);
    const warning = events.find((e) => e.reason === "LogCleanupTooManyFolders");
    assert(warning && warning.type === "Warning", JSON.stringify(events));
    assert(warning.message.includes("--log-cleanup-max-folders=2"));

    const again = await run(tree, kube, { maxFolders: 3 }).outcome;
    assertEquals(again.result.instanceFolders.length, 3);
  } finally {
    await tree.cleanup();
    await server.close();
  }
});

Deno.test("what changed between the walk and the removal is kept", async () => {
  const { kube, server } = await podsServer(["live"]);
  const tree = await makeTree();
  try {
    const now = Date.now();
    const { root } = tree;
    await file(`${root}/gone/x.log`, OLD, now);
    await file(`${root}/gone2/x.log`, OLD, now);
    await file(`${root}/live/postgresql-1.log`, OLD, now);
    await file(`${root}/live/postgresql-2.log`, OLD, now);
    await dir(`${root}/live/rm_data_1`, OLD, now);
    await dir(`${root}/live/rm_data_2`, OLD, now);
    const { result } = await run(tree, kube, {
      async beforeRemove() {
        // A new log in a folder, a log written to, a data directory changed; a file and a folder made into links.
        await file(`${root}/gone/new.log`, 0, Date.now());
        await age(`${root}/live/postgresql-1.log`, 0, Date.now());
        await age(`${root}/live/rm_data_1`, 0, Date.now());
        await Deno.remove(`${root}/live/rm_data_2`);
        await Deno.symlink(tree.outside, `${root}/live/rm_data_2`);
        await Deno.remove(`${root}/live/postgresql-2.log`);
        await Deno.mkdir(`${root}/live/postgresql-2.log`);
      },
    }).outcome;
    assertEquals(result.instanceFolders, [`${root}/gone2`]);
    assertEquals(result.logFiles, []);
    assertEquals(result.removedDataDirs, []);
    assertEquals(result.skipped.filter((line) => line.includes("changed since the walk")).length, 5);
    assert(await exists(`${root}/gone/x.log`));
    assert(await exists(`${root}/live/postgresql-1.log`));
    assert(await exists(`${root}/live/rm_data_1`));
    assert(await exists(tree.outside));
  } finally {
    await tree.cleanup();
    await server.close();
  }
});

Deno.test("a failure on one path is reported and the rest goes on", async () => {
  const { kube, server } = await podsServer(["live"]);
  const tree = await makeTree();
  try {
    const now = Date.now();
    const { root } = tree;
    // An entry that cannot be addressed inside an old data directory: the directory cannot be emptied.
    await dir(`${root}/live/rm_data_1`, OLD, now);
    nonUtf8(`${root}/live/rm_data_1`, "file", "x");
    await age(`${root}/live/rm_data_1`, OLD, now);
    await file(`${root}/live/postgresql-1.log`, OLD, now);
    await dir(`${root}/live/rm_data_2`, OLD, now);
    const { outcome, events } = run(tree, kube);
    const { result } = await outcome;
    assertEquals(result.logFiles, [`${root}/live/postgresql-1.log`]);
    assertEquals(result.removedDataDirs, [`${root}/live/rm_data_2`]);
    assertEquals(result.errors.length, 2, result.errors.join("\n"));
    assert(result.errors[0].includes("not valid UTF-8"), result.errors[0]);
    assert(result.errors[1].startsWith(`Cannot remove "${root}/live/rm_data_1"`), result.errors[1]);
    assertEquals(events.map((e) => e.type).sort(), ["Normal", "Warning"]);
  } finally {
    await tree.cleanup();
    await server.close();
  }
});

Deno.test("the job refuses a root that is empty, missing, not a directory or /", async () => {
  const { kube, server } = await podsServer(["x"]);
  const tree = await makeTree();
  try {
    await Deno.writeTextFile(`${tree.base}/file`, "x");
    await Deno.symlink("/", `${tree.base}/slash`);
    for (
      const [dirPath, cause] of [
        ["", "is empty"],
        [`${tree.base}/missing`, "does not exist"],
        [`${tree.base}/file`, "not a directory"],
        ["/", "root of the file system"],
        [`${tree.base}/slash`, "root of the file system"],
      ]
    ) {
      const sink = recordingSink();
      const { deps, options } = cleanupDeps({ root: dirPath, kube, events: sink });
      const controller = createLogCleanupController(deps, options);
      let message = "";
      try {
        await controller.run({ signal: new AbortController().signal, dryRun: false });
      } catch (error) {
        message = (error as Error).message;
      }
      assert(message.includes(cause), `${JSON.stringify(dirPath)}: ${message}`);
      assertEquals(sink.events.map((e) => [e.type, e.reason]), [["Warning", "LogCleanupRootInvalid"]]);
    }
  } finally {
    await tree.cleanup();
    await server.close();
  }
});
