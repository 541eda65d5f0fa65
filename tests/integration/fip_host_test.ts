/**
 * Floating addresses on real interfaces: hosts h1 and h2 and a client c, each joined by a veth `bond1` to a bridge in
 * a "switch" namespace. host/ip_addr.ts and host/arping.ts run on h1 and h2 through the real command runner
 * (prefix `ip netns exec <ns>`); the client's kernel (its neighbour table, a TCP connect) is the referee.
 */
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { type CommandRunner, createCommandRunner } from "../../host/command.ts";
import {
  addFloatingAddress,
  type FloatingAddress,
  type HostInterface,
  ipv4Addresses,
  listInterfaces,
  removeTagged,
  taggedAddresses,
  tagsToRemove,
  virtualIfMac,
  virtualIfName,
} from "../../host/ip_addr.ts";
import { announceAddress, probeAddress } from "../../host/arping.ts";
import { canMakeNetns, createNetns, type NetNs, type NsProcess, startIn } from "../support/netns.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";
import { waitFor } from "../support/daemon_process.ts";

const OPTS = { timeoutMs: 10_000 };
const MULTI: FloatingAddress = { ip: "192.0.2.50", prefix: 24, nic: "bond1", mode: "MultiIP" };
const VIRTUAL: FloatingAddress = { ip: "192.0.2.60", prefix: 24, nic: "bond1", mode: "VirtualIF" };
const WRONG_MAC = "02:00:00:00:00:99";

interface Lan {
  sw: NetNs;
  h1: NetNs;
  h2: NetNs;
  c: NetNs;
  all: NetNs[];
}

/** Three namespaces, each with a veth `bond1` whose peer is a port of bridge br0 in the switch namespace. */
async function makeLan(): Promise<Lan> {
  const all: NetNs[] = [];
  try {
    const sw = await createNetns();
    all.push(sw);
    await sw.ip("link", "add", "br0", "type", "bridge");
    await sw.ip("link", "set", "br0", "up");
    const hosts: NetNs[] = [];
    for (const [i, n] of [1, 2, 3].entries()) {
      const ns = await createNetns();
      all.push(ns);
      hosts.push(ns);
      const port = `port${i}`;
      await ns.ip("link", "add", "bond1", "type", "veth", "peer", "name", port, "netns", sw.name);
      await sw.ip("link", "set", port, "master", "br0");
      await sw.ip("link", "set", port, "up");
      await ns.ip("addr", "add", `192.0.2.${n}/24`, "dev", "bond1");
      await ns.ip("link", "set", "bond1", "up");
    }
    return { sw, h1: hosts[0], h2: hosts[1], c: hosts[2], all };
  } catch (error) {
    for (const ns of all) await ns.remove();
    throw error;
  }
}

function runnerIn(ns: NetNs): CommandRunner {
  return createCommandRunner({ prefix: ["ip", "netns", "exec", ns.name] });
}

async function neighbourMac(ns: NetNs, ip: string): Promise<string | null> {
  const r = await ns.exec(["ip", "-j", "neigh", "show", ip, "dev", "bond1"]);
  assertEquals(r.code, 0, r.stderr);
  const entries = JSON.parse(r.stdout) as { dst: string; lladdr?: string }[];
  return entries.find((e) => e.dst === ip)?.lladdr ?? null;
}

async function plantNeighbour(ns: NetNs, ip: string, mac: string): Promise<void> {
  await ns.ip("neigh", "replace", ip, "lladdr", mac, "dev", "bond1", "nud", "stale");
  assertEquals(await neighbourMac(ns, ip), mac);
}

/** A TCP connect from `ns` to ip:port; resolves to what the listener wrote, or the error. */
async function tcpConnect(ns: NetNs, ip: string, port: number): Promise<string> {
  const script = `setTimeout(() => { console.log("timeout"); Deno.exit(3); }, 3000);
    try {
      const c = await Deno.connect({ hostname: "${ip}", port: ${port} });
      const b = new Uint8Array(64);
      const n = await c.read(b);
      console.log(new TextDecoder().decode(b.subarray(0, n ?? 0)));
    } catch (e) { console.log(e.name); }
    Deno.exit(0);`;
  const r = await ns.exec([Deno.execPath(), "eval", script]);
  return r.stdout.trim();
}

async function linkMac(ns: NetNs, dev: string): Promise<string> {
  const r = await ns.exec(["ip", "-j", "link", "show", dev]);
  assertEquals(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { address: string }[])[0].address;
}

/** Starts a TCP listener on all addresses of `ns` that writes `greeting` to every connection; returns its port. */
async function listen(ns: NetNs, greeting: string, processes: NsProcess[]): Promise<number> {
  const listener = await startIn(ns, [
    Deno.execPath(),
    "eval",
    `const l = Deno.listen({ hostname: "0.0.0.0", port: 0 });
     console.log("listening " + l.addr.port);
     for await (const c of l) { await c.write(new TextEncoder().encode("${greeting}")); c.close(); }`,
  ], { ready: /listening (\d+)/ });
  processes.push(listener.process);
  return Number(listener.match![1]);
}

function names(interfaces: readonly HostInterface[]): string[] {
  return interfaces.map((i) => i.name).sort();
}

Deno.test({
  name: "floating addresses on real interfaces: add, tag, announce, probe, remove only what is tagged",
  ignore: skipUnless(
    canMakeNetns() && hasCommand("arping") && hasCommand("sysctl"),
    "needs root, iproute2 (ip), iputils-arping and procps (sysctl)",
  ),
  sanitizeResources: false,
  async fn(t) {
    const lan = await makeLan();
    const processes: NsProcess[] = [];
    const h1 = runnerIn(lan.h1);
    const h2 = runnerIn(lan.h2);
    try {
      const h1Mac = await linkMac(lan.h1, "bond1");

      await t.step("a fresh host: the kernel's listing parsed, nothing tagged", async () => {
        const interfaces = await listInterfaces(h1, OPTS);
        assertEquals(names(interfaces), ["bond1", "lo"]);
        assertEquals(ipv4Addresses(interfaces).sort((a, b) => a.ip.localeCompare(b.ip)), [
          { ip: "127.0.0.1", prefix: 8, label: "lo", interface: "lo" },
          { ip: "192.0.2.1", prefix: 24, label: "bond1", interface: "bond1" },
        ]);
        const bond1 = interfaces.find((i) => i.name === "bond1")!;
        assertEquals([bond1.mac, bond1.kind], [h1Mac, "veth"]);
        assertEquals(taggedAddresses(interfaces), []);
      });

      await t.step("the probe from h2 finds both addresses free before anyone holds them", async () => {
        assertEquals(await probeAddress(h2, { nic: "bond1", ip: MULTI.ip }, OPTS), { state: "free" });
        assertEquals(await probeAddress(h2, { nic: "bond1", ip: VIRTUAL.ip }, OPTS), { state: "free" });
      });

      // What someone else put on h1: an address on bond1, one with a label of its own, and a fip-named macvlan whose
      // MAC does not follow the rule.
      await lan.h1.ip("addr", "add", "192.0.2.70/24", "dev", "bond1");
      await lan.h1.ip("addr", "add", "192.0.2.71/24", "dev", "bond1", "label", "bond1:x");
      const foreign = virtualIfName("192.0.2.72");
      await lan.h1.ip("link", "add", "link", "bond1", "name", foreign, "type", "macvlan", "mode", "bridge");
      await lan.h1.ip("addr", "add", "192.0.2.72/24", "dev", foreign);

      await t.step("add MultiIP and VirtualIF on h1: listed, tagged, and the listing is idempotent", async () => {
        await addFloatingAddress(h1, MULTI, OPTS);
        await addFloatingAddress(h1, VIRTUAL, OPTS);
        const first = await listInterfaces(h1, OPTS);
        const device = virtualIfName(VIRTUAL.ip);
        assertEquals(device, "fipc000023c");
        const fip = first.find((i) => i.name === device)!;
        assertEquals([fip.kind, fip.lower, fip.mac], ["macvlan", "bond1", virtualIfMac(VIRTUAL.ip)]);
        assertEquals(fip.mac, "02:50:c0:00:02:3c");
        const listed = ipv4Addresses(first);
        assert(
          listed.some((a) => a.ip === MULTI.ip && a.label === "bond1:fip" && a.interface === "bond1"),
          JSON.stringify(listed),
        );
        assertEquals(taggedAddresses(first), [
          { mode: "MultiIP", nic: "bond1", device: "bond1", ip: MULTI.ip, prefix: 24 },
          { mode: "VirtualIF", nic: "bond1", device, ip: VIRTUAL.ip, prefix: 24 },
        ]);
        const second = await listInterfaces(h1, OPTS);
        assertEquals(second, first);
      });

      await t.step("the announcement corrects a client's stale neighbour entries", async () => {
        await plantNeighbour(lan.c, MULTI.ip, WRONG_MAC);
        await plantNeighbour(lan.c, VIRTUAL.ip, WRONG_MAC);
        await announceAddress(h1, { device: "bond1", ip: MULTI.ip }, OPTS);
        await announceAddress(h1, { device: virtualIfName(VIRTUAL.ip), ip: VIRTUAL.ip }, OPTS);
        await waitFor(async () => (await neighbourMac(lan.c, MULTI.ip)) === h1Mac, { what: "MultiIP entry" });
        await waitFor(async () => (await neighbourMac(lan.c, VIRTUAL.ip)) === virtualIfMac(VIRTUAL.ip), {
          what: "VirtualIF entry at the derived MAC",
        });
      });

      await t.step(
        "the client connects over TCP and resolves the VirtualIF address afresh to the derived MAC",
        async () => {
          const port = await listen(lan.h1, "h1", processes);
          await lan.c.ip("neigh", "flush", "dev", "bond1");
          assertEquals(await tcpConnect(lan.c, MULTI.ip, port), "h1");
          assertEquals(await tcpConnect(lan.c, VIRTUAL.ip, port), "h1");
          // Without arp_ignore/arp_announce on bond1, bond1 answers for the macvlan's address with its own MAC.
          assertEquals(await neighbourMac(lan.c, VIRTUAL.ip), virtualIfMac(VIRTUAL.ip));
          assertEquals(await neighbourMac(lan.c, MULTI.ip), h1Mac);
        },
      );

      await t.step("the probe from h2 reports a conflict while h1 holds the addresses", async () => {
        assertEquals(await probeAddress(h2, { nic: "bond1", ip: MULTI.ip }, OPTS), {
          state: "conflict",
          replies: [{ ip: MULTI.ip, mac: h1Mac }],
        });
        assertEquals(await probeAddress(h2, { nic: "bond1", ip: VIRTUAL.ip }, OPTS), {
          state: "conflict",
          replies: [{ ip: VIRTUAL.ip, mac: virtualIfMac(VIRTUAL.ip) }],
        });
      });

      await t.step("a restart entitled to MultiIP only removes the VirtualIF and nothing else", async () => {
        const before = await listInterfaces(h1, OPTS);
        const remove = tagsToRemove(taggedAddresses(before), [MULTI]);
        assertEquals(remove.map((r) => r.ip), [VIRTUAL.ip]);
        for (const r of remove) await removeTagged(h1, r, OPTS);
        const after = await listInterfaces(h1, OPTS);
        assertEquals(taggedAddresses(after), [
          { mode: "MultiIP", nic: "bond1", device: "bond1", ip: MULTI.ip, prefix: 24 },
        ]);
        assertEquals(names(after), ["bond1", foreign, "lo"]);
      });

      await t.step(
        "removing everything tagged leaves the others' addresses, and the probe finds them free",
        async () => {
          for (const r of tagsToRemove(taggedAddresses(await listInterfaces(h1, OPTS)), [])) {
            await removeTagged(h1, r, OPTS);
          }
          const after = await listInterfaces(h1, OPTS);
          assertEquals(taggedAddresses(after), []);
          assertEquals(ipv4Addresses(after).map((a) => `${a.interface} ${a.ip}/${a.prefix} ${a.label}`).sort(), [
            "bond1 192.0.2.1/24 bond1",
            "bond1 192.0.2.70/24 bond1",
            "bond1 192.0.2.71/24 bond1:x",
            `${foreign} 192.0.2.72/24 ${foreign}`,
            "lo 127.0.0.1/8 lo",
          ]);
          assertEquals(await probeAddress(h2, { nic: "bond1", ip: MULTI.ip }, OPTS), { state: "free" });
          assertEquals(await probeAddress(h2, { nic: "bond1", ip: VIRTUAL.ip }, OPTS), { state: "free" });
        },
      );

      await t.step(
        "removing a floating IP that is first in its subnet keeps a hand-added address of that subnet",
        async () => {
          const other: FloatingAddress = { ip: "198.51.100.5", prefix: 24, nic: "bond1", mode: "MultiIP" };
          await addFloatingAddress(h1, other, OPTS);
          await lan.h1.ip("addr", "add", "198.51.100.6/24", "dev", "bond1");
          const tagged = taggedAddresses(await listInterfaces(h1, OPTS));
          assertEquals(tagged.map((x) => x.ip), [other.ip]);
          await removeTagged(h1, tagged[0], OPTS);
          const left = ipv4Addresses(await listInterfaces(h1, OPTS)).map((a) => a.ip);
          assert(left.includes("198.51.100.6") && !left.includes(other.ip), JSON.stringify(left));
          await lan.h1.ip("addr", "del", "198.51.100.6/24", "dev", "bond1");
        },
      );

      await t.step("the kernel refuses to delete an address whose label is not ours", async () => {
        await assertRejects(
          () =>
            removeTagged(h1, { mode: "MultiIP", nic: "bond1", device: "bond1", ip: "192.0.2.70", prefix: 24 }, OPTS),
          Error,
          'Cannot remove floating IP 192.0.2.70 (MultiIP) from "bond1"',
        );
        assert(ipv4Addresses(await listInterfaces(h1, OPTS)).some((a) => a.ip === "192.0.2.70"));
      });

      await t.step("failures name the cause; a failed VirtualIF add leaves no interface behind", async () => {
        await assertRejects(
          () => addFloatingAddress(h1, { ...MULTI, nic: "bond9" }, OPTS),
          Error,
          'Cannot add floating IP 192.0.2.50/24 (MultiIP) on "bond9": Cannot find device "bond9"',
        );
        // The real runner, except that `ip addr add` fails: the macvlan is made, then the third step fails.
        const failingAdd: CommandRunner = (argv, options) =>
          argv[1] === "addr" && argv[2] === "add"
            ? Promise.resolve({ code: 2, stdout: "", stderr: "Error: planted failure\n", timedOut: false })
            : h1(argv, options);
        await assertRejects(
          () => addFloatingAddress(failingAdd, VIRTUAL, OPTS),
          Error,
          'Cannot add floating IP 192.0.2.60/24 (VirtualIF) on "bond1": Error: planted failure',
        );
        const left = await listInterfaces(h1, OPTS);
        assertEquals(names(left), ["bond1", foreign, "lo"]);
        await assertRejects(
          () => probeAddress(h2, { nic: "bond9", ip: MULTI.ip }, OPTS),
          Error,
          'Cannot probe 192.0.2.50 on "bond9": arping: Device bond9 not available.',
        );
        await assertRejects(
          () => announceAddress(h2, { device: "bond9", ip: MULTI.ip }, OPTS),
          Error,
          'Cannot announce 192.0.2.50 on "bond9" with arping -U',
        );
      });

      await t.step(
        "a VirtualIF move: h2 derives the same MAC, the client's entry stays valid, TCP reaches h2",
        async () => {
          await addFloatingAddress(h1, VIRTUAL, OPTS);
          const port1 = await listen(lan.h1, "h1", processes);
          await lan.c.ip("neigh", "flush", "dev", "bond1");
          assertEquals(await tcpConnect(lan.c, VIRTUAL.ip, port1), "h1");
          for (const r of taggedAddresses(await listInterfaces(h1, OPTS))) await removeTagged(h1, r, OPTS);
          await addFloatingAddress(h2, VIRTUAL, OPTS);
          assertEquals(await linkMac(lan.h2, virtualIfName(VIRTUAL.ip)), virtualIfMac(VIRTUAL.ip));
          await announceAddress(h2, { device: virtualIfName(VIRTUAL.ip), ip: VIRTUAL.ip }, OPTS);
          const port2 = await listen(lan.h2, "h2", processes);
          assertEquals(await tcpConnect(lan.c, VIRTUAL.ip, port2), "h2");
          assertEquals(await neighbourMac(lan.c, VIRTUAL.ip), virtualIfMac(VIRTUAL.ip));
          for (const r of taggedAddresses(await listInterfaces(h2, OPTS))) await removeTagged(h2, r, OPTS);
          assertEquals(taggedAddresses(await listInterfaces(h2, OPTS)), []);
        },
      );
    } finally {
      for (const p of processes) await p.stop();
      for (const ns of lan.all) await ns.remove();
    }
  },
});
