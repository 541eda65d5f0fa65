/**
 * Log cleanup: our dry run (one walk, plan, bytes) against GNU find doing the original's three searches, on
 * a tree of 1,000 instance folders x 100 entries, in the same run; and the peak memory of a process that does
 * only the dry run. The pods come from the fake API server through the real client, as in the tests.
 * Run: `deno run -A bench/log_cleanup_bench.ts [--keep]`.
 */
import { getLogger } from "@logtape/logtape";
import { defaultConfig } from "../config/config.ts";
import { createLogCleanupController } from "../controllers/log_cleanup/job.ts";
import type { JobDeps } from "../controllers/deps.ts";
import { nullEventSink, systemClock } from "../core/types.ts";
import { createKubeClient, type KubeClient } from "../k8s/client.ts";
import { loadConnection } from "../k8s/kube_config.ts";
import { logCleanupOptions } from "../job_options.ts";
import { podsServer } from "../tests/support/log_cleanup_tree.ts";

const FOLDERS = 1000;
const PER_FOLDER = 100;
const DAYS = 3;
const RUNS = 7;
const DAY = 86_400_000;

/** Every 100th folder is dead (all old, inactive); the rest belong to active instances. */
function isDead(i: number): boolean {
  return i % 100 === 0;
}

async function buildTree(root: string): Promise<void> {
  const marker = `${root}/.built`;
  try {
    await Deno.lstat(marker);
    return;
  } catch {
    // not built yet
  }
  await Deno.mkdir(root, { recursive: true });
  const now = Date.now();
  for (let i = 0; i < FOLDERS; i++) {
    const folder = `${root}/ins${String(i).padStart(4, "0")}`;
    await Deno.mkdir(`${folder}/log`, { recursive: true });
    for (let j = 0; j < PER_FOLDER; j++) {
      // 30 postgresql logs, 20 other logs, 40 data files, 10 rm_data_ directories (each holding one file).
      const kind = j % 10;
      const path = kind < 3
        ? `${folder}/log/postgresql-${j}.log`
        : kind < 5
        ? `${folder}/log/audit-${j}.log`
        : kind < 9
        ? `${folder}/data-${j}.bin`
        : `${folder}/rm_data_${j}`;
      if (kind === 9) {
        await Deno.mkdir(path);
        Deno.writeTextFileSync(`${path}/f`, "x".repeat(100));
      } else {
        Deno.writeTextFileSync(path, "x".repeat(j * 10));
      }
      const ageDays = isDead(i) ? 5 + (j % 5) : (i * 7 + j * 3) % 9;
      const t = (now - ageDays * DAY - (j % 7) * 3_600_000) / 1000;
      Deno.utimeSync(path, t, t);
    }
  }
  await Deno.writeTextFile(marker, "");
}

function activeInstances(): string[] {
  const ids: string[] = [];
  for (let i = 0; i < FOLDERS; i++) if (!isDead(i)) ids.push(`ins${String(i).padStart(4, "0")}`);
  return ids;
}

async function dryRun(root: string, kube: KubeClient) {
  const config = defaultConfig({ dbclusterLogDir: root, insFolderOverdueDays: DAYS });
  const deps: JobDeps = {
    kube,
    clock: systemClock,
    events: nullEventSink,
    log: getLogger(["bench"]),
    runCommand: () => Promise.reject(new Error("Not used")),
  };
  const started = performance.now();
  const { result } = await createLogCleanupController(deps, logCleanupOptions(config)).run({
    signal: new AbortController().signal,
    dryRun: true,
  });
  // A failed pod listing keeps every folder, so the run would time a different plan: stop instead.
  if (result.activeInstances === null) {
    throw new Error(`Cannot list the active instances: ${result.skipped.join("; ")}`);
  }
  return { ms: performance.now() - started, result };
}

async function threeFinds(root: string): Promise<{ ms: number; counts: number[] }> {
  const searches = [
    ["-name", "*.log", "-mtime", `-${DAYS}`],
    ["-name", "postgresql*.log", "-mtime", `+${DAYS}`],
    ["-name", "rm_data_*", "-type", "d", "-mtime", `+${DAYS}`],
  ];
  const started = performance.now();
  const counts: number[] = [];
  for (const search of searches) {
    const out = await new Deno.Command("find", { args: [root, ...search, "-print0"], stdout: "piped" }).output();
    counts.push(out.stdout.filter((b) => b === 0).length);
  }
  return { ms: performance.now() - started, counts };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function highWaterMarkKb(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

/** The child reaches the parent's fake API server through its kubeconfig, as the daemon would. */
async function child(root: string, kubeconfig: string): Promise<void> {
  const connection = loadConnection({ kind: "kubeconfig", path: kubeconfig }, {})!;
  const kube = createKubeClient(connection, { userAgent: "bench", retries: 0, qps: 1000, burst: 1000 });
  const { ms, result } = await dryRun(root, kube);
  console.log(JSON.stringify({ ms, hwmKb: highWaterMarkKb(), logFiles: result.logFiles.length }));
}

async function main(): Promise<void> {
  const root = `${Deno.env.get("TMPDIR") ?? "/tmp"}/polarstack_log_cleanup_bench`;
  const buildStarted = performance.now();
  await buildTree(root);
  console.log(
    `Tree: ${FOLDERS} folders x ${PER_FOLDER} entries under ${root} (${
      (performance.now() - buildStarted).toFixed(0)
    } ms to build or reuse)`,
  );
  const { kube, server } = await podsServer(activeInstances());
  try {
    // Warm the page cache and the JIT once on each side.
    const warm = await dryRun(root, kube);
    await threeFinds(root);
    const ours: number[] = [];
    const theirs: number[] = [];
    let counts: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      ours.push((await dryRun(root, kube)).ms);
      const found = await threeFinds(root);
      theirs.push(found.ms);
      counts = found.counts;
    }
    const r = warm.result;
    console.log(
      `Our dry run: ${r.instanceFolders.length} folders, ${r.logFiles.length} log files, ` +
        `${r.removedDataDirs.length} data directories, ${r.bytes} bytes would go`,
    );
    console.log(`find: ${counts[0]} recent *.log, ${counts[1]} old postgresql*.log, ${counts[2]} old rm_data_*`);
    const oursMs = median(ours);
    const findMs = median(theirs);
    console.log(`Our dry run (one walk): median ${oursMs.toFixed(0)} ms over ${RUNS} runs`);
    console.log(`GNU find, three searches: median ${findMs.toFixed(0)} ms over ${RUNS} runs`);
    console.log(`Ratio ours / find: ${(oursMs / findMs).toFixed(2)} (target <= 1)`);

    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, "--child", root, server.kubeconfigPath],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const measured = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
    const peakMb = measured.hwmKb / 1024;
    console.log(`Peak memory of a process doing only the dry run: ${peakMb.toFixed(1)} MB VmHWM (target < 100 MB)`);
    console.log(
      "RESULT " + JSON.stringify({
        bench: "log_cleanup",
        files: FOLDERS * PER_FOLDER,
        oursMs: Math.round(oursMs),
        findMs: Math.round(findMs),
        ratio: Number((oursMs / findMs).toFixed(2)),
        peakMb: Number(peakMb.toFixed(1)),
        logFiles: r.logFiles.length,
        dataDirs: r.removedDataDirs.length,
        instanceFolders: r.instanceFolders.length,
        findCounts: counts,
      }),
    );
  } finally {
    await server.close();
    if (!Deno.args.includes("--keep")) await Deno.remove(root, { recursive: true });
  }
}

if (Deno.args[0] === "--child") {
  await child(Deno.args[1], Deno.args[2]);
} else {
  await main();
}
