/**
 * The DaemonSet's capabilities suffice, and each is needed: the host actions run as root under exactly the set in
 * manifests/daemon_set.yaml (util-linux `setpriv`: bounding set = that set, nothing inheritable or ambient, so the
 * root process's permitted and effective sets are that set), and fail when one capability is taken away.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { loadAll } from "js-yaml";
import { waitFor } from "../support/daemon_process.ts";
import { stopChild } from "../support/child.ts";
import { addVeth, createNetns, type NetNs, run } from "../support/netns.ts";
import { hasCommand, isRoot, skipUnless } from "../support/prereq.ts";

// deno-lint-ignore no-explicit-any
const daemonSet = (loadAll(Deno.readTextFileSync(new URL("../../manifests/daemon_set.yaml", import.meta.url))) as any[])
  .find((d) => d?.kind === "DaemonSet");
const CAPS: string[] = daemonSet.spec.template.spec.containers[0].securityContext.capabilities.add
  .map((c: string) => `cap_${c.toLowerCase()}`);
const NOBODY = 65534;
// Bit numbers from linux/capability.h, to read back what the process really holds.
const BITS: Record<string, number> = {
  cap_chown: 0,
  cap_dac_override: 1,
  cap_dac_read_search: 2,
  cap_fowner: 3,
  cap_net_admin: 12,
  cap_net_raw: 13,
  cap_sys_chroot: 18,
  cap_sys_ptrace: 19,
  cap_sys_admin: 21,
};

const ready = isRoot() && ["setpriv", "nsenter", "unshare", "ip", "arping", "sleep", "rm"].every(hasCommand);
const ignore = skipUnless(ready, "needs root and util-linux (setpriv, nsenter, unshare), iproute2 and arping");

/** `argv` as root holding exactly `caps`. */
function underCaps(caps: readonly string[], argv: readonly string[]): string[] {
  const bounding = ["-all", ...caps.map((c) => `+${c.replace(/^cap_/, "")}`)].join(",");
  return ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", `--bounding-set=${bounding}`, "--", ...argv];
}

function without(cap: string): string[] {
  return CAPS.filter((c) => c !== cap);
}

/** A process in a mount namespace of its own, as PID 1 is to the container. */
async function mountNamespaceHolder(): Promise<{ pid: number; stop: () => Promise<void> }> {
  const child = new Deno.Command("unshare", { args: ["-m", "--", "sleep", "600"], stdin: "null" }).spawn();
  const own = Deno.readLinkSync("/proc/self/ns/mnt");
  await waitFor(() => Deno.readLinkSync(`/proc/${child.pid}/ns/mnt`) !== own, { what: "unshare -m" });
  return { pid: child.pid, stop: async () => void await stopChild(child, { killAfterMs: 2000 }) };
}

/** An instance folder of another user, as the database leaves them: mode 0700, its files 0600. */
async function foreignFolder(root: string): Promise<string> {
  const dir = await Deno.makeTempDir({ dir: root, prefix: "ins-" });
  await Deno.mkdir(`${dir}/pg_log`);
  await Deno.writeTextFile(`${dir}/pg_log/postgresql-1.log`, "old\n");
  for (const path of [`${dir}/pg_log/postgresql-1.log`, `${dir}/pg_log`, dir]) {
    await Deno.chown(path, NOBODY, NOBODY);
    await Deno.chmod(path, path.endsWith(".log") ? 0o600 : 0o700);
  }
  return dir;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Both host actions under `caps`: enter the holder's mount namespace; remove another user's file and folder. */
async function hostActions(caps: readonly string[], where: { pid: number; root: string }) {
  const entered = await run(underCaps(caps, ["nsenter", "-t", String(where.pid), "-m", "--", "true"]));
  const dir = await foreignFolder(where.root);
  const file = await run(underCaps(caps, ["rm", "-f", `${dir}/pg_log/postgresql-1.log`]));
  const folder = await run(underCaps(caps, ["rm", "-r", dir]));
  return {
    enter: entered.code === 0 ? "ok" : entered.stderr.trim(),
    removeFile: file.code === 0 && !exists(`${dir}/pg_log/postgresql-1.log`) ? "ok" : file.stderr.trim(),
    removeFolder: folder.code === 0 && !exists(dir) ? "ok" : folder.stderr.trim(),
  };
}

Deno.test({
  name:
    "the DaemonSet's capabilities: exactly those are held, and they enter a mount namespace and remove others' files",
  ignore,
  async fn() {
    const status = await run(underCaps(CAPS, ["cat", "/proc/self/status"]));
    const held = (field: string) =>
      BigInt(`0x${new RegExp(`^${field}:\\s+([0-9a-f]+)$`, "m").exec(status.stdout)![1]}`);
    const expected = CAPS.reduce((bits, cap) => bits | (1n << BigInt(BITS[cap])), 0n);
    assertEquals([held("CapEff"), held("CapPrm"), held("CapBnd")], [expected, expected, expected]);

    const holder = await mountNamespaceHolder();
    const root = await Deno.makeTempDir({ prefix: "psd-caps-" });
    try {
      assertEquals(await hostActions(CAPS, { pid: holder.pid, root }), {
        enter: "ok",
        removeFile: "ok",
        removeFolder: "ok",
      });
      // Each capability the two actions need: take it away and they fail.
      const needed = CAPS.filter((c) => c !== "cap_net_admin" && c !== "cap_net_raw");
      const failures: Record<string, string[]> = {};
      for (const cap of needed) {
        const outcome = await hostActions(without(cap), { pid: holder.pid, root });
        failures[cap] = Object.entries(outcome).filter(([, v]) => v !== "ok").map(([k]) => k);
        assert(failures[cap].length > 0, `still works without ${cap}: ${JSON.stringify(outcome)}`);
        if (cap === "cap_sys_chroot") {
          assert(
            outcome.enter.includes("reassociate to namespace 'ns/mnt' failed: Operation not permitted"),
            outcome.enter,
          );
        }
      }
      assertEquals(failures, {
        cap_dac_override: ["removeFile", "removeFolder"],
        cap_sys_admin: ["enter"],
        cap_sys_chroot: ["enter"],
        cap_sys_ptrace: ["enter"],
      });
    } finally {
      await holder.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});

async function arpingCopy(dir: string): Promise<string> {
  // A plain copy: the packaged arping may carry file capabilities of its own, which would hide what the set holds.
  const found = (Deno.env.get("PATH") ?? "").split(":").map((d) => `${d}/arping`).find(exists);
  assert(found, "arping is not on PATH");
  const path = `${dir}/arping`;
  await Deno.copyFile(found, path);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test({
  name: "NET_ADMIN adds an address and NET_RAW sends a gratuitous ARP (the floating-IP job); each fails without",
  ignore,
  async fn() {
    let ns: NetNs | null = null;
    const dir = await Deno.makeTempDir({ prefix: "psd-caps-net-" });
    try {
      ns = await createNetns();
      await addVeth(ns, { nic: "fip0", peer: "fip0p", cidr: "192.0.2.1/24" });
      const arping = await arpingCopy(dir);
      const inNs = (argv: string[]) => ["nsenter", `--net=/run/netns/${ns!.name}`, "--", ...argv];
      const addAddress = (caps: string[], ip: string) =>
        run(underCaps(caps, inNs(["ip", "addr", "add", `${ip}/24`, "dev", "fip0"])));
      const announce = (caps: string[]) =>
        run(underCaps(caps, inNs([arping, "-U", "-c", "1", "-w", "1", "-I", "fip0", "192.0.2.7"])));

      const added = await addAddress(CAPS, "192.0.2.7");
      assertEquals(added.code, 0, added.stderr);
      const denied = await addAddress(without("cap_net_admin"), "192.0.2.8");
      assert(denied.code !== 0 && /Operation not permitted/.test(denied.stderr), denied.stderr);

      const sent = await announce(CAPS);
      assertEquals(sent.code, 0, sent.stderr);
      assert(/Sent 1 probe/.test(sent.stdout), sent.stdout);
      const refused = await announce(without("cap_net_raw"));
      assert(refused.code !== 0 && /socket: Operation not permitted/.test(refused.stderr), refused.stderr);
    } finally {
      await ns?.remove();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
