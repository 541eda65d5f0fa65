/**
 * A compromised database user (`nobody`, owner of the instance folders) races the root cleanup: it swaps a folder
 * it owns for a link to a root-owned victim folder, either the instant the cleanup starts removing inside it (a
 * watcher) or blindly, back and forth. Not one victim file may go, and a swap that was seen must be reported.
 */
import { createLogCleanupController } from "../../controllers/log_cleanup/job.ts";
import type { ResolveOptions } from "../../host/log_walk.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { waitFor } from "../support/daemon_process.ts";
import { DAY, podsServer } from "../support/log_cleanup_tree.ts";
import { recordingSink } from "../support/job_deps.ts";
import { cleanupDeps } from "../support/log_cleanup_tree.ts";
import { hasCommand, isRoot, skipUnless } from "../support/prereq.ts";

const NOBODY = 65534;
const PYTHON = "/usr/bin/python3";
const RUNS = Number(Deno.env.get("RACE_RUNS") ?? 20);
const VICTIMS = 50;
const ignore = skipUnless(
  isRoot() && hasCommand("setpriv") && existsSync(PYTHON),
  "the race tests need root, util-linux setpriv and Debian's python3 (the attacker runs as nobody)",
);

interface RaceCase {
  /** What is swapped. */
  readonly name: string;
  /** The swapped folder, relative to the root. */
  readonly target: string;
  /** Builds the tree below the root (everything owned by nobody). */
  readonly build: (root: string, now: number) => void;
}

const OLD = 9 * DAY;

function files(folder: string, count: number, name: (i: number) => string, now: number): void {
  Deno.mkdirSync(folder, { recursive: true });
  const t = (now - OLD) / 1000;
  for (let i = 0; i < count; i++) {
    Deno.writeTextFileSync(`${folder}/${name(i)}`, "attacker");
    Deno.utimeSync(`${folder}/${name(i)}`, t, t);
  }
}

function ageSync(path: string, now: number): void {
  const t = (now - OLD) / 1000;
  Deno.utimeSync(path, t, t);
}

const CASES: RaceCase[] = [
  {
    name: "rm_data_* itself",
    target: "ins1/rm_data_x",
    build(root, now) {
      files(`${root}/ins1/rm_data_x`, 1000, (i) => `f-${i}`, now);
      ageSync(`${root}/ins1/rm_data_x`, now);
    },
  },
  {
    name: "a folder inside rm_data_*",
    target: "ins1/rm_data_x/sub",
    build(root, now) {
      files(`${root}/ins1/rm_data_x/sub`, 1000, (i) => `f-${i}`, now);
      ageSync(`${root}/ins1/rm_data_x/sub`, now);
      ageSync(`${root}/ins1/rm_data_x`, now);
    },
  },
  {
    name: "ins1/log",
    target: "ins1/log",
    build(root, now) {
      files(`${root}/ins1/log`, 300, (i) => `postgresql-${i}.log`, now);
    },
  },
  {
    name: "an instance folder",
    target: "ins2",
    build(root, now) {
      files(`${root}/ins2`, 1000, (i) => `f-${i}.log`, now);
      ageSync(`${root}/ins2`, now);
    },
  },
];

function existsSync(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function chownTree(path: string): void {
  Deno.chownSync(path, NOBODY, NOBODY);
  if (!Deno.lstatSync(path).isDirectory) return;
  for (const entry of Deno.readDirSync(path)) chownTree(`${path}/${entry.name}`);
}

/** A victim folder outside the root, owned by root, whose files match what the cleanup removes. */
function victimFolder(base: string, now: number): string {
  const victim = `${base}/victim`;
  Deno.mkdirSync(victim);
  const t = (now - OLD) / 1000;
  for (let i = 0; i < VICTIMS; i++) {
    Deno.writeTextFileSync(`${victim}/postgresql-${i}.log`, "victim");
    Deno.utimeSync(`${victim}/postgresql-${i}.log`, t, t);
  }
  return victim;
}

function victimsLeft(victim: string): number {
  let left = 0;
  for (let i = 0; i < VICTIMS; i++) {
    try {
      if (Deno.readTextFileSync(`${victim}/postgresql-${i}.log`) === "victim") left++;
    } catch {
      // gone
    }
  }
  return left;
}

interface RunReport {
  readonly swapped: boolean;
  readonly reported: boolean;
  readonly victimsLeft: number;
  readonly errors: string[];
}

async function raceOnce(
  raceCase: RaceCase,
  mode: "watch" | "toggle",
  options: { kube: Parameters<typeof cleanupDeps>[0]["kube"]; resolve: ResolveOptions },
): Promise<RunReport> {
  const { kube } = options;
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "log_race_" }));
  try {
    Deno.chmodSync(base, 0o755);
    const now = Date.now();
    const root = `${base}/root`;
    const control = `${base}/control`;
    Deno.mkdirSync(root);
    Deno.mkdirSync(control);
    const victim = victimFolder(base, now);
    // ins1 is active and keeps a young log, so only the old entries inside it are due.
    Deno.mkdirSync(`${root}/ins1`);
    Deno.writeTextFileSync(`${root}/ins1/young.log`, "young");
    raceCase.build(root, now);
    chownTree(root);
    chownTree(control);
    // The swapped folder's mtime is set last: making its files moved it.
    if (raceCase.target !== "ins1/log") ageSync(`${root}/${raceCase.target}`, now);
    Deno.copyFileSync(new URL("../support/swap_attacker.py", import.meta.url), `${base}/attacker.py`);
    Deno.chmodSync(`${base}/attacker.py`, 0o644);

    const attacker = new Deno.Command("setpriv", {
      args: [
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        "--clear-groups",
        "--",
        PYTHON,
        `${base}/attacker.py`,
        mode,
        `${root}/${raceCase.target}`,
        victim,
        control,
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    await waitFor(() => existsSync(`${control}/ready`), { timeoutMs: 10_000, what: "the attacker is ready" });

    const events = recordingSink();
    const { deps, options: jobOptions } = cleanupDeps({ root, kube, events, nowMs: now });
    const controller = createLogCleanupController(deps, jobOptions, { resolve: options.resolve });
    let errors: string[] = [];
    try {
      const { result } = await controller.run({ signal: new AbortController().signal, dryRun: false });
      errors = result.errors;
    } finally {
      Deno.writeTextFileSync(`${control}/stop`, "");
    }
    const status = await attacker.output();
    assert(status.success, `the attacker failed: ${new TextDecoder().decode(status.stderr)}`);
    const swapText = existsSync(`${control}/swapped`) ? Deno.readTextFileSync(`${control}/swapped`) : "0";
    const target = `${root}/${raceCase.target}`;
    return {
      swapped: Number(swapText) > 0,
      reported: errors.some((line) => line.includes(target)) &&
        events.events.some((event) => event.reason === "LogCleanupPathReplaced" && event.message.includes(target)),
      victimsLeft: victimsLeft(victim),
      errors,
    };
  } finally {
    await Deno.remove(base, { recursive: true });
  }
}

// The kernels below 5.6 have no openat2: the component-by-component fallback must hold as well.
const KERNELS = [
  { name: "openat2", resolve: {}, runs: RUNS },
  { name: "openat fallback", resolve: { dirFs: { openat2: false, mountIds: false } }, runs: Math.ceil(RUNS / 2) },
];

for (const kernel of KERNELS) {
  for (const mode of ["watch", "toggle"] as const) {
    for (const raceCase of CASES) {
      raceTest(kernel, mode, raceCase);
    }
  }
}

function raceTest(kernel: (typeof KERNELS)[number], mode: "watch" | "toggle", raceCase: RaceCase): void {
  Deno.test({
    name: `${kernel.name}: a ${mode === "watch" ? "swap at the first removal" : "blind toggle"} of ` +
      `${raceCase.name} by nobody never removes a victim file, and is reported (${kernel.runs} runs)`,
    ignore,
    async fn() {
      const { kube, server } = await podsServer(["ins1"]);
      try {
        let swappedRuns = 0;
        let reportedRuns = 0;
        // A blind toggle lands on a look of the cleanup by chance: go on (checking every run) until one did.
        const mustReport = mode === "watch" || raceCase.target !== "ins1/rm_data_x/sub";
        const maxRuns = mode === "toggle" && mustReport ? kernel.runs * 10 : kernel.runs;
        for (let run = 0; run < maxRuns && (run < kernel.runs || reportedRuns === 0); run++) {
          const report = await raceOnce(raceCase, mode, { kube, resolve: kernel.resolve });
          const errors = report.errors.slice(0, 3).join("; ");
          assertEquals(report.victimsLeft, VICTIMS, `run ${run}: victim files lost; errors: ${errors}`);
          if (report.swapped) swappedRuns++;
          if (report.reported) reportedRuns++;
          // The watcher swaps only while the cleanup removes inside the folder: every such swap is seen.
          if (mode === "watch" && report.swapped) {
            assert(report.reported, `run ${run}: the swap was not reported; errors: ${errors}`);
          }
        }
        assert(swappedRuns > 0, "the attacker never swapped: the race was not run");
        // A link met inside a folder that goes whole is removed as a link, like a planted one: a blind toggle
        // of an inner folder is reported only when it lands between a look and an open, so it is not required.
        if (mustReport) assert(reportedRuns > 0, `no run reported the swap (${swappedRuns} runs swapped)`);
      } finally {
        await server.close();
      }
    },
  });
}
