/** The probe on a real interface: a veth pair named bond1 in a network namespace made by the test. */
import { assertEquals } from "../support/assert.ts";
import type { NetProbe } from "../../host/net_probe.ts";
import { probeInterface } from "../../host/net_probe.ts";
import { addVeth, canMakeNetns, createNetns, type NetNs } from "../support/netns.ts";
import { skipUnless } from "../support/prereq.ts";

const CLI = new URL("../support/node_network_probe_cli.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * Runs the probe in the namespace, which has no route out: from the project's folder, with its lockfile and the
 * cache that `deno install` filled (`--cached-only`), so nothing is resolved from a registry.
 */
async function probeIn(ns: NetNs, nic: string): Promise<NetProbe> {
  const argv = ns.wrap([Deno.execPath(), "run", "-A", "--cached-only", CLI, nic]);
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  assertEquals(out.code, 0, decoder.decode(out.stderr));
  return JSON.parse(decoder.decode(out.stdout));
}

Deno.test({
  name: "probe follows a real veth named bond1: up, down, peer down, address change, deleted",
  ignore: skipUnless(canMakeNetns(), "network namespaces need root and iproute2 (ip)"),
  async fn() {
    const ns = await createNetns();
    try {
      assertEquals(
        { ...(await probeIn(ns, "bond1")), link: null },
        { nic: "bond1", state: "UNKNOWN", link: null, ipv4: null },
        "no such interface yet",
      );
      await addVeth(ns, { nic: "bond1", peer: "bond1p", cidr: "192.0.2.10/24" });
      let p = await probeIn(ns, "bond1");
      assertEquals(p.state, "UP");
      assertEquals(p.link?.operstate, "up");
      assertEquals(p.ipv4, "192.0.2.10");

      await ns.ip("link", "set", "bond1p", "down");
      p = await probeIn(ns, "bond1");
      assertEquals([p.state, p.link?.operstate, p.link?.carrier], ["DOWN", "lowerlayerdown", 0]);
      assertEquals(p.ipv4, "192.0.2.10", "an address stays while the link is down");

      await ns.ip("link", "set", "bond1p", "up");
      await ns.ip("link", "set", "bond1", "down");
      p = await probeIn(ns, "bond1");
      assertEquals([p.state, p.link?.operstate, p.link?.carrier], ["DOWN", "down", null]);

      await ns.ip("link", "set", "bond1", "up");
      await ns.ip("addr", "add", "198.51.100.7/24", "dev", "bond1");
      await ns.ip("addr", "del", "192.0.2.10/24", "dev", "bond1");
      p = await probeIn(ns, "bond1");
      assertEquals([p.state, p.ipv4], ["UP", "198.51.100.7"]);

      await ns.ip("addr", "del", "198.51.100.7/24", "dev", "bond1");
      p = await probeIn(ns, "bond1");
      assertEquals([p.state, p.ipv4], ["UP", null], "up without an IPv4 address");

      await ns.ip("link", "del", "bond1");
      p = await probeIn(ns, "bond1");
      assertEquals(p, { nic: "bond1", state: "UNKNOWN", link: null, ipv4: null });

      // loopback says operstate "unknown" while up: decided by IFF_UP and carrier
      p = await probeIn(ns, "lo");
      assertEquals([p.link?.operstate, p.state, p.ipv4], ["unknown", "UP", "127.0.0.1"]);
    } finally {
      await ns.remove();
    }
  },
});

async function fakeSysfs(links: Record<string, Record<string, string>>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "psd-sysfs-" });
  for (const [nic, files] of Object.entries(links)) {
    await Deno.mkdir(`${root}/${nic}`);
    for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(`${root}/${nic}/${name}`, text);
  }
  return root;
}

Deno.test("probe reads odd states from an injected sysfs root (unknown operstate, unreadable carrier)", async () => {
  const root = await fakeSysfs({
    bond1: { operstate: "unknown\n", flags: "0x1003\n", carrier: "1\n" },
    bond2: { operstate: "unknown\n", flags: "0x1002\n", carrier: "1\n" },
    bond3: { operstate: "dormant\n", flags: "0x1003\n", carrier: "1\n" },
    bond4: { operstate: "unknown\n", flags: "0x1003\n" },
  });
  const interfaces = () => [
    { name: "bond1", family: "IPv6" as const, address: "fe80::1" },
    { name: "bond1", family: "IPv4" as const, address: "192.0.2.44" },
    { name: "bond2", family: "IPv4" as const, address: "192.0.2.45" },
  ];
  try {
    const states = [];
    for (const nic of ["bond1", "bond2", "bond3", "bond4", "bond5", "../x"]) {
      const p = await probeInterface(nic, { sysfsRoot: root, interfaces });
      states.push([nic, p.state, p.ipv4]);
    }
    assertEquals(states, [
      ["bond1", "UP", "192.0.2.44"],
      ["bond2", "DOWN", "192.0.2.45"],
      ["bond3", "DOWN", null],
      ["bond4", "DOWN", null],
      ["bond5", "UNKNOWN", null],
      ["../x", "UNKNOWN", null],
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
