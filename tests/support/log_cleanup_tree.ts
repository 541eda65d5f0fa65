/** Test trees for the log-cleanup job: real files with real mtimes, and GNU find as the referee. */
import { getLogger } from "@logtape/logtape";
import { defaultConfig } from "../../config/config.ts";
import type { JobDeps } from "../../controllers/deps.ts";
import type { LogCleanupOptions } from "../../controllers/log_cleanup/job.ts";
import { INSTANCE_LABEL } from "../../controllers/log_cleanup/plan.ts";
import type { Clock, EventSink } from "../../core/types.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { logCleanupOptions } from "../../job_options.ts";
import { type FakeCluster, startFakeCluster } from "./fake_cluster.ts";
import { jobDeps } from "./job_deps.ts";

/** One day in ms. */
export const DAY = 86_400_000;

/** A temporary directory holding a root (`<tmp>/root`) and an outside area (`<tmp>/outside`). */
export interface TestTree {
  /** The temporary directory. */
  readonly base: string;
  /** The log root (resolved, no trailing slash). */
  readonly root: string;
  /** A folder outside the root, for link targets. */
  readonly outside: string;
  /** Removes everything. */
  cleanup(): Promise<void>;
}

/** Creates an empty tree in a new temporary directory. */
export async function makeTree(): Promise<TestTree> {
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "log_cleanup_" }));
  const root = `${base}/root`;
  const outside = `${base}/outside`;
  await Deno.mkdir(root);
  await Deno.mkdir(outside);
  return { base, root, outside, cleanup: () => Deno.remove(base, { recursive: true }) };
}

/** Writes a file (creating its parents) whose mtime is `ageMs` before `nowMs`. */
export async function file(path: string, ageMs: number, nowMs: number, content = "x"): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, content);
  await age(path, ageMs, nowMs);
}

/** Makes a directory (and its parents) whose mtime is `ageMs` before `nowMs`. */
export async function dir(path: string, ageMs: number, nowMs: number): Promise<void> {
  await Deno.mkdir(path, { recursive: true });
  await age(path, ageMs, nowMs);
}

/** Sets the mtime of a file or directory (follows links: use `linkAge` for a link itself). */
export async function age(path: string, ageMs: number, nowMs: number): Promise<void> {
  const t = (nowMs - ageMs) / 1000;
  await Deno.utime(path, t, t);
}

/** Creates a symbolic link whose own mtime is `ageMs` before `nowMs` (`touch -h`: utime follows links). */
export async function link(target: string, path: string, ageMs: number, nowMs: number): Promise<void> {
  await Deno.symlink(target, path);
  await linkAge(path, ageMs, nowMs);
}

/** Sets a link's own mtime with `touch -h -d @seconds`. */
export async function linkAge(path: string, ageMs: number, nowMs: number): Promise<void> {
  const seconds = ((nowMs - ageMs) / 1000).toFixed(3);
  await run(["touch", "-h", "-d", `@${seconds}`, path]);
}

/** Runs a command (argument array, no shell) and returns its stdout bytes; throws on failure. */
export async function run(argv: string[]): Promise<Uint8Array> {
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${argv.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

/** Runs GNU find with `-print0` and returns the paths, sorted (bytes that are not UTF-8 become U+FFFD). */
export async function find(args: string[]): Promise<string[]> {
  const out = new TextDecoder().decode(await run(["find", ...args, "-print0"]));
  return out.split("\0").filter((p) => p !== "").sort();
}

/**
 * Makes an entry `<parent>/<prefix>\xff\xfe` (a directory) or `<parent>/<prefix>\xff.log` (a file): names that
 * are not UTF-8. Deno's file APIs and Deno.Command's args take only strings, so this calls libc through FFI.
 */
export function nonUtf8(parent: string, kind: "dir" | "file", prefix: string): void {
  const libc = Deno.dlopen("libc.so.6", {
    mkdir: { parameters: ["buffer", "u32"], result: "i32" },
    creat: { parameters: ["buffer", "u32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
  });
  try {
    const text = new TextEncoder().encode(`${parent}/${prefix}`);
    const tail = kind === "dir" ? [0xff, 0xfe] : [0xff, 0x2e, 0x6c, 0x6f, 0x67];
    const path = new Uint8Array([...text, ...tail, 0]);
    if (kind === "dir") {
      if (libc.symbols.mkdir(path, 0o755) !== 0) throw new Error(`Cannot make a directory in "${parent}"`);
    } else {
      const fd = libc.symbols.creat(path, 0o644);
      if (fd < 0) throw new Error(`Cannot make a file in "${parent}"`);
      libc.symbols.close(fd);
    }
  } finally {
    libc.close();
  }
}

/** JobDeps and options for the log-cleanup controller in a test, built from a config as the daemon does. */
export function cleanupDeps(options: {
  root: string;
  kube: KubeClient | null;
  nowMs?: number;
  days?: number;
  maxFolders?: number;
  events?: EventSink;
}): { deps: JobDeps; options: LogCleanupOptions } {
  const clock: Clock = { now: () => new Date(options.nowMs ?? Date.now()) };
  const config = defaultConfig({
    dbclusterLogDir: options.root,
    insFolderOverdueDays: options.days ?? 3,
    logCleanupMaxFolders: options.maxFolders ?? 20,
  });
  const deps = jobDeps({
    kube: options.kube,
    clock,
    ...(options.events ? { events: options.events } : {}),
    log: getLogger(["polarstack-daemon", "test", "log-cleanup"]),
  });
  return { deps, options: logCleanupOptions(config) };
}

/** A Pod object for seeding the fake API server. */
export function pod(namespace: string, name: string, labels: Record<string, string>): object {
  return { apiVersion: "v1", kind: "Pod", metadata: { namespace, name, labels }, spec: { containers: [] } };
}

/** A fake cluster holding one pod per ins_id value; close it when done. */
export function podsServer(insIds: string[]): Promise<FakeCluster> {
  return startFakeCluster({
    seed: insIds.map((id, i) => pod("default", `pod-${i}`, { [INSTANCE_LABEL]: id })),
    client: { retries: 0, qps: 1000, burst: 1000 },
  });
}

/** Whether a path exists (without following a final link). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
