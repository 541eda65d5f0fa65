/**
 * Mounts below the root are never entered, bind mounts of the same file system included (they share the device
 * number), whichever of the kernel's means is there: openat2, statx mount ids, or only /proc/self/mountinfo. The
 * cleanup runs inside a private mount namespace that the test makes; the mounts exist only there.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { stopChild } from "../support/child.ts";
import { waitFor } from "../support/daemon_process.ts";
import { DAY, exists, file, makeTree } from "../support/log_cleanup_tree.ts";
import { hasCommand, isRoot, skipUnless } from "../support/prereq.ts";

const ignore = skipUnless(
  isRoot() && hasCommand("unshare") && hasCommand("nsenter") && hasCommand("mount"),
  "the mount tests need root and util-linux unshare, nsenter and mount",
);
const OLD = 9 * DAY;
const CLI = new URL("../support/log_cleanup_cli.ts", import.meta.url).pathname;

async function run(argv: string[]): Promise<{ ok: boolean; out: string; err: string }> {
  const output = await new Deno.Command(argv[0], { args: argv.slice(1), stdout: "piped", stderr: "piped" }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { ok: output.success, out: decode(output.stdout), err: decode(output.stderr) };
}

/** A process in a private mount namespace of its own; commands run in it through nsenter. */
async function mountNamespace(): Promise<{ exec(argv: string[]): ReturnType<typeof run>; close(): Promise<void> }> {
  const holder = new Deno.Command("unshare", {
    args: ["-m", "--propagation", "private", "--", "sleep", "600"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const ours = Deno.readLinkSync("/proc/self/ns/mnt");
  await waitFor(() => Deno.readLinkSync(`/proc/${holder.pid}/ns/mnt`) !== ours, { what: "the new mount namespace" });
  return {
    exec: (argv) => run(["nsenter", "-t", String(holder.pid), "-m", "--", ...argv]),
    close: async () => void await stopChild(holder, { killAfterMs: 1000 }),
  };
}

for (
  const mode of [
    { name: "openat2", openat2: true, mountIds: true },
    { name: "openat and statx mount ids", openat2: false, mountIds: true },
    { name: "openat and mountinfo only", openat2: false, mountIds: false },
  ]
) {
  Deno.test({
    name: `${mode.name}: a bind mount of the same file system below the root is not entered`,
    ignore,
    async fn() {
      const tree = await makeTree();
      const ns = await mountNamespace();
      try {
        const now = Date.now();
        const { root, outside } = tree;
        for (let i = 0; i < 5; i++) await file(`${outside}/data/keep-${i}`, OLD, now, "victim");
        for (let i = 0; i < 5; i++) await file(`${outside}/logs/postgresql-${i}.log`, OLD, now, "victim");
        await file(`${root}/ins1/young.log`, 0, now);
        await file(`${root}/ins1/rm_data_x/f`, OLD, now);
        await Deno.mkdir(`${root}/ins1/rm_data_x/sub`);
        await Deno.mkdir(`${root}/ins1/log`);
        const t = (now - OLD) / 1000;
        await Deno.utime(`${root}/ins1/rm_data_x`, t, t);
        for (const [from, to] of [[`${outside}/data`, "ins1/rm_data_x/sub"], [`${outside}/logs`, "ins1/log"]]) {
          const mounted = await ns.exec(["mount", "--bind", from, `${root}/${to}`]);
          assert(mounted.ok, mounted.err);
        }
        const cli = await ns.exec([
          Deno.execPath(),
          "run",
          "-A",
          "--cached-only",
          CLI,
          JSON.stringify({ root, ...mode }),
        ]);
        assert(cli.ok, cli.err);
        const result = JSON.parse(cli.out);
        for (let i = 0; i < 5; i++) {
          assertEquals(await Deno.readTextFile(`${outside}/data/keep-${i}`), "victim");
          assertEquals(await Deno.readTextFile(`${outside}/logs/postgresql-${i}.log`), "victim");
        }
        assertEquals(result.logFiles, []);
        assertEquals(result.removedDataDirs, [], JSON.stringify(result.errors));
        assert(!await exists(`${root}/ins1/rm_data_x/f`), "what is beside the mount goes");
        assert(
          result.errors.some((line: string) => line.includes(`${root}/ins1/rm_data_x/sub`) && line.includes("mount")),
          JSON.stringify(result.errors),
        );
        assert(
          result.skipped.some((line: string) => line.includes(`${root}/ins1/log`) && line.includes("mount")),
          JSON.stringify(result.skipped),
        );
      } finally {
        await ns.close();
        await tree.cleanup();
      }
    },
  });
}

Deno.test({
  name: "without FFI the cleanup refuses and removes nothing (no path-based fallback)",
  async fn() {
    const tree = await makeTree();
    try {
      const now = Date.now();
      await file(`${tree.root}/ins1/postgresql-1.log`, OLD, now);
      const cli = await run([
        Deno.execPath(),
        "run",
        "--no-prompt",
        "--cached-only",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        CLI,
        JSON.stringify({ root: tree.root }),
      ]);
      assert(cli.ok, cli.err);
      const { error } = JSON.parse(cli.out);
      assert(error.startsWith(`Cannot clean logs in "${tree.root}": Cannot load the directory-fd file calls`), error);
      assert(error.endsWith("nothing is removed without them"), error);
      assert(await exists(`${tree.root}/ins1/postgresql-1.log`));
    } finally {
      await tree.cleanup();
    }
  },
});
