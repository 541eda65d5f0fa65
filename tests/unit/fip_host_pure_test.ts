/** Pure rules of the floating-address host code: tags, derived names and MACs, what to remove, arping's output. */
import { assertEquals, assertThrows } from "../support/assert.ts";
import {
  addCommands,
  type FloatingAddress,
  holds,
  type HostInterface,
  invalidFloatingAddress,
  isOurVirtualIf,
  multiIpLabel,
  parseIpAddrShow,
  removeCommands,
  type TaggedAddress,
  taggedAddresses,
  tagsToRemove,
  virtualIfMac,
  virtualIfName,
} from "../../host/ip_addr.ts";
import { announceCommands, parseArpingOutput, probeCommand } from "../../host/arping.ts";

Deno.test("the MultiIP label is <nic>:fip cut to 15 characters, refused when less than ':f' fits", () => {
  assertEquals(multiIpLabel("bond1"), "bond1:fip");
  assertEquals(multiIpLabel("enp129s0f0n"), "enp129s0f0n:fip"); // 11 + 4 = 15
  assertEquals(multiIpLabel("enp129s0f0np"), "enp129s0f0np:fi");
  assertEquals(multiIpLabel("enp129s0f0np1"), "enp129s0f0np1:f");
  assertEquals(multiIpLabel("enp129s0f0np1x"), null);
  assertEquals(multiIpLabel("enp129s0f0np1xy"), null);
  for (const nic of ["a", "bond1", "enp129s0f0n", "enp129s0f0np1"]) {
    const label = multiIpLabel(nic)!;
    assertEquals(label.length <= 15 && label.startsWith(`${nic}:f`), true, label);
  }
});

Deno.test("a VirtualIF name and MAC spell the address: stable, distinct, locally administered unicast", () => {
  assertEquals(virtualIfName("192.0.2.50"), "fipc0000232");
  assertEquals(virtualIfMac("192.0.2.50"), "02:50:c0:00:02:32");
  assertEquals(virtualIfName("10.0.0.1"), "fip0a000001");
  assertEquals(virtualIfMac("255.255.255.255"), "02:50:ff:ff:ff:ff");
  const first = parseInt(virtualIfMac("10.0.0.1").slice(0, 2), 16);
  assertEquals([first & 1, first & 2], [0, 2]); // unicast, locally administered
  assertEquals(new Set(["10.0.0.1", "10.0.1.0", "1.0.0.10"].map(virtualIfName)).size, 3);
});

function iface(partial: Partial<HostInterface> & { name: string }): HostInterface {
  return { mac: "", kind: "", lower: "", addresses: [], ...partial };
}

Deno.test("an interface is ours only with a fip name, kind macvlan and the MAC its name spells", () => {
  const ours = iface({ name: "fipc0000232", kind: "macvlan", mac: "02:50:c0:00:02:32", lower: "bond1" });
  assertEquals(isOurVirtualIf(ours), true);
  assertEquals(isOurVirtualIf({ ...ours, mac: "02:50:c0:00:02:33" }), false);
  assertEquals(isOurVirtualIf({ ...ours, kind: "veth" }), false);
  assertEquals(isOurVirtualIf({ ...ours, name: "fipC0000232" }), false);
  assertEquals(isOurVirtualIf({ ...ours, name: "fipc000023" }), false);
});

Deno.test("tagged: labelled addresses and our macvlans (with or without their address), nothing else", () => {
  const interfaces: HostInterface[] = [
    iface({
      name: "bond1",
      kind: "bond",
      addresses: [
        { ip: "192.0.2.1", prefix: 24, label: "bond1" },
        { ip: "192.0.2.50", prefix: 24, label: "bond1:fip" },
        { ip: "192.0.2.51", prefix: 24, label: "bond1:fipx" },
      ],
    }),
    iface({
      name: "fipc000023c",
      kind: "macvlan",
      mac: "02:50:c0:00:02:3c",
      lower: "bond1",
      addresses: [{ ip: "192.0.2.60", prefix: 24, label: "fipc000023c" }],
    }),
    iface({ name: "fipc000023d", kind: "macvlan", mac: "02:50:c0:00:02:3d", lower: "bond1" }),
    iface({ name: "fipc000023e", kind: "macvlan", mac: "aa:bb:cc:dd:ee:ff", lower: "bond1" }),
    iface({ name: "eth0", addresses: [{ ip: "192.0.2.52", prefix: 24, label: "bond1:fip" }] }),
  ];
  assertEquals(taggedAddresses(interfaces), [
    { mode: "MultiIP", nic: "bond1", device: "bond1", ip: "192.0.2.50", prefix: 24 },
    { mode: "VirtualIF", nic: "bond1", device: "fipc000023c", ip: "192.0.2.60", prefix: 24 },
    { mode: "VirtualIF", nic: "bond1", device: "fipc000023d", ip: null, prefix: null },
  ]);
});

Deno.test("to remove: every tag that does not match an entitled address in mode, address, prefix and NIC", () => {
  const multi: TaggedAddress = { mode: "MultiIP", nic: "bond1", device: "bond1", ip: "192.0.2.50", prefix: 24 };
  const virtual: TaggedAddress = {
    mode: "VirtualIF",
    nic: "bond1",
    device: "fipc000023c",
    ip: "192.0.2.60",
    prefix: 24,
  };
  const orphan: TaggedAddress = { mode: "VirtualIF", nic: "bond1", device: "fipc000023d", ip: null, prefix: null };
  const tagged = [multi, virtual, orphan];
  const entitled: FloatingAddress[] = [
    { ip: "192.0.2.50", prefix: 24, nic: "bond1", mode: "MultiIP" },
    { ip: "192.0.2.60", prefix: 24, nic: "bond1", mode: "VirtualIF" },
  ];
  assertEquals(tagsToRemove(tagged, entitled), [orphan]);
  assertEquals(tagsToRemove(tagged, []), tagged);
  assertEquals(tagsToRemove(tagged, [{ ...entitled[0], prefix: 25 }, { ...entitled[1], mode: "MultiIP" }]), tagged);
  assertEquals(tagsToRemove(tagged, [{ ...entitled[0], nic: "bond2" }, entitled[1]]), [multi, orphan]);
  assertEquals(tagsToRemove([], entitled), []);
  assertEquals(entitled.map((f) => holds(tagged, f)), [true, true]);
  assertEquals(holds([orphan], { ip: "192.0.2.61", prefix: 24, nic: "bond1", mode: "VirtualIF" }), false);
  assertEquals(holds(tagged, { ...entitled[1], prefix: 32 }), false);
});

Deno.test("the add and remove commands: argument arrays, the label on delete, the whole macvlan removed", () => {
  assertEquals(addCommands({ ip: "192.0.2.50", prefix: 24, nic: "bond1", mode: "MultiIP" }), [
    ["ip", "addr", "add", "192.0.2.50/24", "dev", "bond1", "label", "bond1:fip"],
  ]);
  assertEquals(addCommands({ ip: "192.0.2.60", prefix: 24, nic: "bond1", mode: "VirtualIF" }), [
    [
      "ip",
      "link",
      "add",
      "link",
      "bond1",
      "name",
      "fipc000023c",
      "address",
      "02:50:c0:00:02:3c",
      "type",
      "macvlan",
      "mode",
      "bridge",
    ],
    [
      "sysctl",
      "-q",
      "-w",
      "net/ipv4/conf/bond1/arp_ignore=1",
      "net/ipv4/conf/bond1/arp_announce=2",
      "net/ipv4/conf/fipc000023c/arp_ignore=1",
      "net/ipv4/conf/fipc000023c/arp_announce=2",
    ],
    ["ip", "addr", "add", "192.0.2.60/24", "dev", "fipc000023c"],
    ["ip", "link", "set", "fipc000023c", "up"],
  ]);
  assertEquals(
    removeCommands({ mode: "MultiIP", nic: "bond1", device: "bond1", ip: "192.0.2.50", prefix: 24 }),
    [
      ["sysctl", "-q", "-w", "net/ipv4/conf/bond1/promote_secondaries=1"],
      ["ip", "addr", "del", "192.0.2.50/24", "dev", "bond1", "label", "bond1:fip"],
    ],
  );
  assertEquals(
    removeCommands({ mode: "VirtualIF", nic: "bond1", device: "fipc000023c", ip: null, prefix: null }),
    [["ip", "link", "del", "fipc000023c"]],
  );
});

Deno.test("hostile floating addresses are refused with the cause", () => {
  const ok: FloatingAddress = { ip: "192.0.2.50", prefix: 24, nic: "bond1", mode: "VirtualIF" };
  assertEquals(invalidFloatingAddress(ok), null);
  assertEquals(invalidFloatingAddress({ ...ok, ip: "2001:db8::1" }), 'address "2001:db8::1" is not IPv4');
  assertEquals(invalidFloatingAddress({ ...ok, prefix: 33 }), "mask 33 is not 0..32");
  assertEquals(invalidFloatingAddress({ ...ok, prefix: 2.5 }), "mask 2.5 is not 0..32");
  assertEquals(invalidFloatingAddress({ ...ok, nic: "" }), 'NIC name "" is not an interface name');
  assertEquals(invalidFloatingAddress({ ...ok, nic: "-dev" }), 'NIC name "-dev" is not an interface name');
  assertEquals(invalidFloatingAddress({ ...ok, nic: "a/b" }), 'NIC name "a/b" is not an interface name');
  assertEquals(
    invalidFloatingAddress({ ...ok, nic: "abcdefghijklmnop" }),
    'NIC name "abcdefghijklmnop" is not an interface name',
  );
  assertEquals(
    invalidFloatingAddress({ ...ok, mode: "Bogus" as never }),
    'mode "Bogus" is neither MultiIP nor VirtualIF',
  );
  assertEquals(
    invalidFloatingAddress({ ...ok, nic: "enp129s0f0np1x", mode: "MultiIP" }),
    'NIC name "enp129s0f0np1x" is too long for the label that tags a MultiIP address: use VirtualIF',
  );
  assertEquals(invalidFloatingAddress({ ...ok, nic: "enp129s0f0np1x" }), null);
});

Deno.test("ip's JSON: IPv4 only, odd entries skipped, garbage refused with the cause", () => {
  const out = JSON.stringify([
    { ifname: "x", address: "AA:BB:CC:DD:EE:FF", addr_info: [{ family: "inet6", local: "::1", prefixlen: 128 }] },
    { ifname: "y", addr_info: [{ family: "inet", local: "300.1.1.1", prefixlen: 24 }, { family: "inet" }] },
    { ifname: "z", addr_info: [{ family: "inet", local: "10.0.0.1", prefixlen: 8 }] },
    { noname: true },
    null,
  ]);
  assertEquals(parseIpAddrShow(out), [
    { name: "x", mac: "aa:bb:cc:dd:ee:ff", kind: "", lower: "", addresses: [] },
    { name: "y", mac: "", kind: "", lower: "", addresses: [] },
    { name: "z", mac: "", kind: "", lower: "", addresses: [{ ip: "10.0.0.1", prefix: 8, label: "z" }] },
  ]);
  assertThrows(() => parseIpAddrShow("not json"), Error, 'Cannot parse the output of "ip -j addr show"');
  assertThrows(() => parseIpAddrShow("{}"), Error, "not a JSON array");
});

Deno.test("arping's output: reply lines with their MACs, and the counters", () => {
  assertEquals(
    parseArpingOutput(
      "ARPING 192.0.2.50 from 0.0.0.0 bond1\nUnicast reply from 192.0.2.50 [6A:5C:CF:1A:35:09]  0.565ms\n" +
        "Sent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n",
    ),
    { replies: [{ ip: "192.0.2.50", mac: "6a:5c:cf:1a:35:09" }], sent: 1, received: 1 },
  );
  assertEquals(
    parseArpingOutput("ARPING 192.0.2.99 from 0.0.0.0 bond1\nSent 2 probes (2 broadcast(s))\nReceived 0 response(s)\n"),
    { replies: [], sent: 2, received: 0 },
  );
  assertEquals(parseArpingOutput(""), { replies: [], sent: null, received: null });
  // A gratuitous request for the address heard while probing (a host still announcing it) is a claim too.
  assertEquals(
    parseArpingOutput(
      "ARPING 192.0.2.50 from 0.0.0.0 bond1\nBroadcast request from 192.0.2.50 [02:50:C0:00:02:32]  0.611ms\n" +
        "Sent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n",
    ),
    { replies: [{ ip: "192.0.2.50", mac: "02:50:c0:00:02:32" }], sent: 1, received: 1 },
  );
  assertEquals(probeCommand("bond1", "192.0.2.50"), [
    "arping",
    "-D",
    "-c",
    "1",
    "-w",
    "1",
    "-I",
    "bond1",
    "192.0.2.50",
  ]);
  assertEquals(announceCommands("fipc0000232", "192.0.2.50"), [
    ["arping", "-U", "-c", "3", "-I", "fipc0000232", "192.0.2.50"],
    ["arping", "-A", "-c", "3", "-I", "fipc0000232", "192.0.2.50"],
  ]);
});
