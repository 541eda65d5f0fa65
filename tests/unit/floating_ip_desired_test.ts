/** The desired floating IP of one MPDCluster: which address, which shape, which node, or why none. */
import { assert, assertEquals } from "../support/assert.ts";
import { type DesiredFloatingIp, desiredFloatingIp } from "../../controllers/floating_ip/desired.ts";

const NIC = { clientNic: "bond1" };

/** An MPDCluster with the leader on h1 (both fields agreeing) and the given floating IP parts. */
function cluster(parts: { spec?: unknown; status?: Record<string, unknown> } = {}): Record<string, unknown> {
  return {
    apiVersion: "mpd.polardb.aliyun.com/v1",
    kind: "MPDCluster",
    metadata: { namespace: "db", name: "pg1", resourceVersion: "7" },
    spec: { netCfg: { leaderFloatingIP: parts.spec } },
    status: {
      leaderInstanceHost: "h1",
      leaderInstanceId: "ins-rw",
      dbInstanceStatus: {
        "ins-rw": { nodeName: "h1", role: "leader", insType: "rw" },
        "ins-ro": { nodeName: "h2", role: "follower", insType: "ro" },
      },
      ...parts.status,
    },
  };
}

function summary(d: DesiredFloatingIp): string {
  if (d.kind === "refuse") return `refuse ${d.reason} leader=${d.leader}`;
  const ip =
    `${d.ip.address}/${d.ip.mask} ${d.ip.mode} ${d.ip.nic} ${d.ip.cfgType} gw=${d.ip.gateway} from ${d.ip.source}`;
  return d.kind === "assign" ? `assign ${ip} to ${d.leader}` : `keep ${ip} ${d.reason}`;
}

const MANUAL = { ipAddressCfgType: "manual", ipAddress: "192.0.2.50", mask: 24 };

Deno.test("desiredFloatingIp: the address, its shape and its source, case by case", () => {
  const table: Array<[string, unknown, string]> = [
    [
      "manual, defaults",
      cluster({ spec: MANUAL }),
      "assign 192.0.2.50/24 VirtualIF bond1 manual gw=null from spec to h1",
    ],
    [
      "every field",
      cluster({ spec: { ...MANUAL, gateWay: "192.0.2.1", basedNetIf: "eth7", ipMode: "MultiIP" } }),
      "assign 192.0.2.50/24 MultiIP eth7 manual gw=192.0.2.1 from spec to h1",
    ],
    [
      "no cfgType means manual",
      cluster({ spec: { ipAddress: "10.1.2.3", mask: 16 } }),
      "assign 10.1.2.3/16 VirtualIF bond1 manual gw=null from spec to h1",
    ],
    [
      "empty basedNetIf and ipMode take the defaults",
      cluster({ spec: { ...MANUAL, basedNetIf: "", ipMode: "" } }),
      "assign 192.0.2.50/24 VirtualIF bond1 manual gw=null from spec to h1",
    ],
    [
      "gateway that is not IPv4 is not recorded",
      cluster({ spec: { ...MANUAL, gateWay: "router" } }),
      "assign 192.0.2.50/24 VirtualIF bond1 manual gw=null from spec to h1",
    ],
    [
      "mask 32 is a host address",
      cluster({ spec: { ...MANUAL, mask: 32 } }),
      "assign 192.0.2.50/32 VirtualIF bond1 manual gw=null from spec to h1",
    ],
    [
      "mask 1",
      cluster({ spec: { ...MANUAL, ipAddress: "10.0.0.9", mask: 1 } }),
      "assign 10.0.0.9/1 VirtualIF bond1 manual gw=null from spec to h1",
    ],
    [
      "status wins when it has an address",
      cluster({ spec: MANUAL, status: { floatingIP: { ...MANUAL, ipAddress: "192.0.2.77", mask: 25 } } }),
      "assign 192.0.2.77/25 VirtualIF bond1 manual gw=null from status to h1",
    ],
    [
      "auto with the operator's status address",
      cluster({
        spec: { ipAddressCfgType: "auto", basedNetIf: "eth1" },
        status: { floatingIP: { ipAddressCfgType: "auto", ipAddress: "198.51.100.9", mask: 24, ipMode: "MultiIP" } },
      }),
      "assign 198.51.100.9/24 MultiIP eth1 auto gw=null from status to h1",
    ],
    [
      "a status without an address does not win",
      cluster({ spec: MANUAL, status: { floatingIP: { ipAddress: "", mask: 8 } } }),
      "assign 192.0.2.50/24 VirtualIF bond1 manual gw=null from spec to h1",
    ],
    [
      "only the status (no spec)",
      cluster({ status: { floatingIP: { ipAddress: "192.0.2.8", mask: 24 } } }),
      "assign 192.0.2.8/24 VirtualIF bond1 manual gw=null from status to h1",
    ],
    [
      "auto without a status address",
      cluster({ spec: { ipAddressCfgType: "auto", ipAddress: "192.0.2.50", mask: 24 } }),
      "refuse AutoNotAssigned leader=h1",
    ],
    [
      "auto with a status floatingIP of null",
      cluster({ spec: { ipAddressCfgType: "auto" }, status: { floatingIP: null } }),
      "refuse AutoNotAssigned leader=h1",
    ],
    ["no leaderFloatingIP", cluster(), "refuse NotConfigured leader=h1"],
    ["leaderFloatingIP is a string", cluster({ spec: "192.0.2.50" }), "refuse NotConfigured leader=h1"],
    [
      "unknown cfgType",
      cluster({ spec: { ...MANUAL, ipAddressCfgType: "dhcp" } }),
      "refuse InvalidConfigType leader=h1",
    ],
    ["IPv6", cluster({ spec: { ...MANUAL, ipAddress: "2001:db8::5" } }), "refuse InvalidAddress leader=h1"],
    ["leading zero", cluster({ spec: { ...MANUAL, ipAddress: "192.0.2.050" } }), "refuse InvalidAddress leader=h1"],
    [
      "address with a prefix",
      cluster({ spec: { ...MANUAL, ipAddress: "192.0.2.5/24" } }),
      "refuse InvalidAddress leader=h1",
    ],
    ["spaces", cluster({ spec: { ...MANUAL, ipAddress: " 192.0.2.5" } }), "refuse InvalidAddress leader=h1"],
    ["number", cluster({ spec: { ...MANUAL, ipAddress: 3221226034 } }), "refuse InvalidAddress leader=h1"],
    ["missing", cluster({ spec: { mask: 24 } }), "refuse InvalidAddress leader=h1"],
    ["0.0.0.0", cluster({ spec: { ...MANUAL, ipAddress: "0.0.0.0" } }), "refuse InvalidAddress leader=h1"],
    ["loopback", cluster({ spec: { ...MANUAL, ipAddress: "127.0.0.5" } }), "refuse InvalidAddress leader=h1"],
    ["multicast", cluster({ spec: { ...MANUAL, ipAddress: "224.0.0.18" } }), "refuse InvalidAddress leader=h1"],
    ["broadcast", cluster({ spec: { ...MANUAL, ipAddress: "255.255.255.255" } }), "refuse InvalidAddress leader=h1"],
    ["subnet's network", cluster({ spec: { ...MANUAL, ipAddress: "192.0.2.0" } }), "refuse InvalidAddress leader=h1"],
    [
      "subnet's broadcast",
      cluster({ spec: { ...MANUAL, ipAddress: "192.0.2.255" } }),
      "refuse InvalidAddress leader=h1",
    ],
    ["mask 33", cluster({ spec: { ...MANUAL, mask: 33 } }), "refuse InvalidMask leader=h1"],
    ["mask 0", cluster({ spec: { ...MANUAL, mask: 0 } }), "refuse InvalidMask leader=h1"],
    ["mask -8", cluster({ spec: { ...MANUAL, mask: -8 } }), "refuse InvalidMask leader=h1"],
    ["mask 24.5", cluster({ spec: { ...MANUAL, mask: 24.5 } }), "refuse InvalidMask leader=h1"],
    ['mask "24" (a string)', cluster({ spec: { ...MANUAL, mask: "24" } }), "refuse InvalidMask leader=h1"],
    ["mask missing", cluster({ spec: { ipAddress: "192.0.2.50" } }), "refuse InvalidMask leader=h1"],
    ["mask as a netmask", cluster({ spec: { ...MANUAL, mask: "255.255.255.0" } }), "refuse InvalidMask leader=h1"],
    ["NIC with a slash", cluster({ spec: { ...MANUAL, basedNetIf: "../eth0" } }), "refuse InvalidInterface leader=h1"],
    ["NIC too long", cluster({ spec: { ...MANUAL, basedNetIf: "a".repeat(16) } }), "refuse InvalidInterface leader=h1"],
    ["NIC a number", cluster({ spec: { ...MANUAL, basedNetIf: 1 } }), "refuse InvalidInterface leader=h1"],
    ["unknown mode", cluster({ spec: { ...MANUAL, ipMode: "virtualif" } }), "refuse InvalidMode leader=h1"],
  ];
  for (const [name, object, want] of table) {
    assertEquals(summary(desiredFloatingIp(object, NIC)), want, name);
  }
});

Deno.test("desiredFloatingIp: the leader only when leaderInstanceHost and the rw instance agree", () => {
  const rw = (nodeName: unknown, insType: unknown = "rw") => ({ nodeName, role: "leader", insType });
  const table: Array<[string, Record<string, unknown>, string]> = [
    ["agree", { leaderInstanceHost: "h2", dbInstanceStatus: { a: rw("h2"), b: rw("h1", "ro") } }, "assign to h2"],
    ["agree in another case", { leaderInstanceHost: "H2", dbInstanceStatus: { a: rw("h2") } }, "assign to h2"],
    [
      "two rw entries on one node",
      { leaderInstanceHost: "h2", dbInstanceStatus: { a: rw("h2"), b: rw("h2") } },
      "assign to h2",
    ],
    ["as a list", { leaderInstanceHost: "h3", dbInstanceStatus: [rw("h3")] }, "assign to h3"],
    ["disagree", { leaderInstanceHost: "h1", dbInstanceStatus: { a: rw("h2") } }, "keep LeaderDisagrees"],
    [
      "two rw nodes",
      { leaderInstanceHost: "h1", dbInstanceStatus: { a: rw("h1"), b: rw("h2") } },
      "keep LeaderDisagrees",
    ],
    ["no host", { dbInstanceStatus: { a: rw("h2") } }, "keep LeaderUnknown"],
    ["empty host", { leaderInstanceHost: "", dbInstanceStatus: { a: rw("h2") } }, "keep LeaderUnknown"],
    ["host a number", { leaderInstanceHost: 7, dbInstanceStatus: { a: rw("h2") } }, "keep LeaderUnknown"],
    ["no rw entry", { leaderInstanceHost: "h1", dbInstanceStatus: { a: rw("h1", "ro") } }, "keep LeaderUnknown"],
    ["rw without a node", { leaderInstanceHost: "h1", dbInstanceStatus: { a: rw(null) } }, "keep LeaderUnknown"],
    [
      "entries not objects",
      { leaderInstanceHost: "h1", dbInstanceStatus: { a: "rw", b: null, c: 5 } },
      "keep LeaderUnknown",
    ],
    ["dbInstanceStatus a string", { leaderInstanceHost: "h1", dbInstanceStatus: "rw" }, "keep LeaderUnknown"],
    ["no dbInstanceStatus", { leaderInstanceHost: "h1" }, "keep LeaderUnknown"],
  ];
  for (const [name, status, want] of table) {
    const object = {
      metadata: { namespace: "db", name: "pg1" },
      spec: { netCfg: { leaderFloatingIP: MANUAL } },
      status,
    };
    const d = desiredFloatingIp(object, NIC);
    const got = d.kind === "assign" ? `assign to ${d.leader}` : d.kind === "keep" ? `keep ${d.reason}` : d.reason;
    assertEquals(got, want, name);
    if (d.kind === "keep") assert(d.message.length > 0 && !d.message.endsWith("."), name);
  }
});

Deno.test("desiredFloatingIp: a refusal names the leader when it is known, and says what is wrong", () => {
  const known = desiredFloatingIp(cluster({ spec: { ...MANUAL, mask: 33 } }), NIC);
  assertEquals(known, {
    kind: "refuse",
    cluster: { namespace: "db", name: "pg1" },
    reason: "InvalidMask",
    message: "spec.netCfg.leaderFloatingIP.mask 33 is not an integer prefix length 1..32",
    leader: "h1",
  });
  const fromStatus = desiredFloatingIp(
    cluster({ status: { floatingIP: { ipAddress: "192.0.2.9", mask: "24" }, leaderInstanceHost: "h9" } }),
    NIC,
  );
  assertEquals(fromStatus.kind === "refuse" && [fromStatus.reason, fromStatus.message, fromStatus.leader], [
    "InvalidMask",
    'status.floatingIP.mask "24" is not an integer prefix length 1..32',
    null,
  ]);
});

Deno.test("desiredFloatingIp: hostile objects give an answer and never throw", () => {
  const cyclic: Record<string, unknown> = { metadata: { namespace: "db", name: "x" } };
  cyclic.spec = { netCfg: { leaderFloatingIP: { ipAddress: cyclic, mask: 24 } } };
  const objects: unknown[] = [
    null,
    undefined,
    42,
    "MPDCluster",
    [],
    [cluster({ spec: MANUAL })],
    {},
    { metadata: null },
    { metadata: { name: "x" } },
    { metadata: { namespace: "db", name: 5 } },
    { metadata: { namespace: "db", name: "x" }, spec: null, status: null },
    { metadata: { namespace: "db", name: "x" }, spec: { netCfg: [] } },
    { metadata: { namespace: "db", name: "x" }, spec: { netCfg: { leaderFloatingIP: [] } } },
    { metadata: { namespace: "db", name: "x" }, status: { floatingIP: { ipAddress: {} } } },
    { metadata: { namespace: "db", name: "x" }, status: { floatingIP: { ipAddress: "x".repeat(100_000) } } },
    cyclic,
    Object.create(null),
  ];
  for (const [i, object] of objects.entries()) {
    const d = desiredFloatingIp(object, NIC);
    assertEquals(d.kind, "refuse", `object ${i}`);
    if (d.kind === "refuse") assert(d.message.length < 300, d.message.slice(0, 80));
  }
  const nameless = desiredFloatingIp({ metadata: { name: "x" }, spec: { netCfg: { leaderFloatingIP: MANUAL } } }, NIC);
  assertEquals(nameless.kind === "refuse" && [nameless.reason, nameless.cluster], ["InvalidObject", null]);
});
