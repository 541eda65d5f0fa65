/** Pure rules of the node-network job: interface state, first IPv4, conditions, the patch plan, ipmitool parsing. */
import { assert, assertEquals } from "../support/assert.ts";
import {
  clientNetworkEvent,
  type DesiredCondition,
  knownAddress,
  type NodeCondition,
  stampConditions,
} from "../../controllers/node_network/conditions.ts";
import {
  desiredConditions,
  type NodeNetworkObserved,
  planConditionPatch,
  planNodeNetwork,
} from "../../controllers/node_network/plan.ts";
import {
  afterOobAnswer,
  OOB_UNCHECKED,
  oobCheckDue,
  oobSwitchedOff,
} from "../../controllers/node_network/oob_schedule.ts";
import { kubeTime, parseLenientBool } from "../../k8s/values.ts";
import { parseIpmiLanPrint } from "../../host/ipmi.ts";
import { firstIPv4, type InterfaceState, interfaceState, isInterfaceName } from "../../host/net_probe.ts";

Deno.test("interfaceState: every operstate, IFF_UP and carrier combination", () => {
  const table: Array<[string, number, number | null, InterfaceState]> = [
    ["up", 0x1003, 1, "UP"],
    ["up", 0x1002, 0, "UP"],
    ["UP\n", 0x1003, 1, "UP"],
    ["down", 0x1003, 1, "DOWN"],
    ["down", 0x1002, null, "DOWN"],
    ["lowerlayerdown", 0x1003, 0, "DOWN"],
    ["dormant", 0x1003, 1, "DOWN"],
    ["notpresent", 0x1003, 1, "DOWN"],
    ["unknown", 0x9, 1, "UP"],
    ["unknown", 0x1003, 1, "UP"],
    ["unknown", 0x1002, 1, "DOWN"],
    ["unknown", 0x1003, 0, "DOWN"],
    ["unknown", 0x1003, null, "DOWN"],
    ["unknown", 0x0, null, "DOWN"],
    ["testing", 0x1003, 1, "UP"],
    ["testing", 0x1003, 0, "DOWN"],
  ];
  for (const [operstate, flags, carrier, want] of table) {
    assertEquals(interfaceState({ operstate, flags, carrier }), want, `${operstate} ${flags} ${carrier}`);
  }
  assertEquals(interfaceState(null), "UNKNOWN");
});

Deno.test("firstIPv4: first address if IPv4, else the next IPv4 one, else null", () => {
  const v4 = (address: string) => ({ family: "IPv4" as const, address });
  const v6 = (address: string) => ({ family: "IPv6" as const, address });
  assertEquals(firstIPv4([v4("192.0.2.10"), v4("192.0.2.11")]), "192.0.2.10");
  assertEquals(firstIPv4([v6("fe80::1"), v4("192.0.2.11")]), "192.0.2.11");
  assertEquals(firstIPv4([v6("fe80::1"), v6("2001:db8::1"), v4("198.51.100.7")]), "198.51.100.7");
  assertEquals(firstIPv4([v6("fe80::1")]), null);
  assertEquals(firstIPv4([]), null);
});

Deno.test("isInterfaceName refuses path tricks and over-long names", () => {
  for (const ok of ["bond1", "eth0.100", "veth@if3", "br-x_1"]) assert(isInterfaceName(ok), ok);
  for (const bad of ["", ".", "..", "../etc", "a/b", "sixteen-chars-xx", "bond 1"]) {
    assert(!isInterfaceName(bad), bad);
  }
});

Deno.test("knownAddress and the lenient isCheckOObIP boolean (default true)", () => {
  assertEquals(knownAddress("192.0.2.1"), "192.0.2.1");
  assertEquals(knownAddress("0.0.0.0"), null);
  assertEquals(knownAddress(""), null);
  assertEquals(knownAddress(undefined), null);
  for (const t of ["true", "1", "t", "TRUE", "True", " true ", "yes", "garbage", ""]) {
    assertEquals(parseLenientBool(t, true), true, t);
  }
  for (const f of ["false", "0", "f", "F", "FALSE", "False"]) assertEquals(parseLenientBool(f, true), false, f);
});

const base: NodeNetworkObserved = {
  nic: "bond1",
  state: "UP",
  ipv4: "192.0.2.10",
  lastIp: null,
  checkOob: true,
  oob: { ok: true, ip: "198.51.100.5" },
  lastOobIp: null,
};

function byType(conditions: DesiredCondition[]): Record<string, DesiredCondition> {
  return Object.fromEntries(conditions.map((c) => [c.type, c]));
}

Deno.test("desiredConditions: NodeClientNetworkUnavailable per state", () => {
  const table: Array<[InterfaceState, string, string]> = [
    ["UP", "False", "StateUP"],
    ["DOWN", "True", "StateDown"],
    ["UNKNOWN", "True", "StateUnKnown"],
  ];
  for (const [state, status, reason] of table) {
    const c = byType(desiredConditions({ ...base, nic: "eth9", state })).NodeClientNetworkUnavailable;
    assertEquals(c, { type: "NodeClientNetworkUnavailable", status, reason, message: `eth9 ${reason}` });
  }
});

Deno.test("desiredConditions: NodeClientIP with an address, and the last known one on failure", () => {
  const table: Array<[string | null, string | null, string, string]> = [
    ["192.0.2.10", null, "True", "192.0.2.10"],
    ["192.0.2.10", "192.0.2.99", "True", "192.0.2.10"],
    [null, "192.0.2.99", "False", "192.0.2.99"],
    [null, "0.0.0.0", "False", "0.0.0.0"],
    [null, null, "False", "0.0.0.0"],
    [null, "", "False", "0.0.0.0"],
  ];
  for (const [ipv4, lastIp, status, message] of table) {
    const c = byType(desiredConditions({ ...base, ipv4, lastIp })).NodeClientIP;
    assertEquals(c, { type: "NodeClientIP", status, reason: "bond1", message }, `${ipv4} ${lastIp}`);
  }
});

Deno.test("desiredConditions: NodeOobIP answers, errors, pending and not checked", () => {
  const ok = byType(desiredConditions(base)).NodeOobIP;
  assertEquals(ok, { type: "NodeOobIP", status: "True", reason: "PowerOn", message: "198.51.100.5" });
  const failed = (lastOobIp: string | null) =>
    byType(desiredConditions({ ...base, oob: { ok: false, error: "ipmitool not found" }, lastOobIp })).NodeOobIP;
  assertEquals(failed("198.51.100.5"), {
    type: "NodeOobIP",
    status: "False",
    reason: "error: ipmitool not found",
    message: "198.51.100.5",
  });
  assertEquals(failed(null).message, "0.0.0.0");
  assertEquals(failed("0.0.0.0").message, "0.0.0.0");
  assertEquals(byType(desiredConditions({ ...base, oob: null })).NodeOobIP, undefined, "pending: left out");
  assertEquals(byType(desiredConditions({ ...base, checkOob: false })).NodeOobIP, undefined, "not checked");
});

Deno.test("desiredConditions: NodeRefreshFlag and the order of the conditions", () => {
  const all = desiredConditions(base);
  assertEquals(all.map((c) => c.type), [
    "NodeClientNetworkUnavailable",
    "NodeClientIP",
    "NodeOobIP",
    "NodeRefreshFlag",
  ]);
  assertEquals(all[3], { type: "NodeRefreshFlag", status: "True", reason: "Refresh", message: "Refresh" });
});

const T0 = new Date("2026-01-01T00:00:00.400Z");
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

function written(desired: DesiredCondition[], when: Date): NodeCondition[] {
  return stampConditions({ current: [], desired, now: when });
}

Deno.test("kubeTime writes whole seconds", () => {
  assertEquals(kubeTime(T0), "2026-01-01T00:00:00Z");
});

Deno.test("stampConditions: transition time kept while the status stays, new when it changes", () => {
  const up = desiredConditions(base);
  const first = written(up, T0);
  for (const c of first) {
    assertEquals(c.lastTransitionTime, "2026-01-01T00:00:00Z");
    assertEquals(c.lastHeartbeatTime, "2026-01-01T00:00:00Z");
  }
  const down = desiredConditions({ ...base, state: "DOWN", ipv4: null, lastIp: "192.0.2.10" });
  const later = byTypeN(stampConditions({ current: first, desired: down, now: at(30) }));
  assertEquals(later.NodeClientNetworkUnavailable.lastTransitionTime, "2026-01-01T00:00:30Z");
  assertEquals(later.NodeClientIP.lastTransitionTime, "2026-01-01T00:00:30Z");
  assertEquals(later.NodeRefreshFlag.lastTransitionTime, "2026-01-01T00:00:00Z", "unchanged status");
  assertEquals(later.NodeOobIP.lastTransitionTime, "2026-01-01T00:00:00Z");
  for (const c of Object.values(later)) assertEquals(c.lastHeartbeatTime, "2026-01-01T00:00:30Z");
  // a reason/message change with the same status keeps the transition time
  const moved = byTypeN(
    stampConditions({ current: first, desired: desiredConditions({ ...base, ipv4: "192.0.2.20" }), now: at(40) }),
  );
  assertEquals(moved.NodeClientIP.lastTransitionTime, "2026-01-01T00:00:00Z");
  assertEquals(moved.NodeClientIP.message, "192.0.2.20");
  // an existing condition without a transition time gets one
  const bare = stampConditions({ current: [{ type: "NodeRefreshFlag", status: "True" }], desired: up, now: at(5) });
  assertEquals(byTypeN(bare).NodeRefreshFlag.lastTransitionTime, "2026-01-01T00:00:05Z");
});

function byTypeN(conditions: NodeCondition[]): Record<string, NodeCondition> {
  return Object.fromEntries(conditions.map((c) => [c.type, c]));
}

Deno.test("planConditionPatch: first write carries all four", () => {
  const patch = planConditionPatch({
    current: [],
    desired: desiredConditions(base),
    now: T0,
    reportFrequencyMs: 60_000,
  });
  assertEquals(patch?.status.conditions.map((c) => c.type), [
    "NodeClientNetworkUnavailable",
    "NodeClientIP",
    "NodeOobIP",
    "NodeRefreshFlag",
  ]);
});

Deno.test("planConditionPatch: nothing changed and no heartbeat due -> null; heartbeat due -> all, times right", () => {
  const desired = desiredConditions(base);
  const current = written(desired, T0);
  for (const s of [1, 3, 30, 59]) {
    assertEquals(planConditionPatch({ current, desired, now: at(s), reportFrequencyMs: 60_000 }), null, `${s} s`);
  }
  for (const s of [60, 61, 600]) {
    const patch = planConditionPatch({ current, desired, now: at(s), reportFrequencyMs: 60_000 });
    assertEquals(patch?.status.conditions.length, 4, `${s} s`);
    for (const c of patch!.status.conditions) {
      assertEquals(c.lastHeartbeatTime, kubeTime(at(s)));
      assertEquals(c.lastTransitionTime, "2026-01-01T00:00:00Z", "transition kept across heartbeats");
    }
  }
});

Deno.test("planConditionPatch: a change carries only the changed conditions, before the heartbeat", () => {
  const desired = desiredConditions(base);
  const current = written(desired, T0);
  const table: Array<[Partial<NodeNetworkObserved>, string[]]> = [
    [{ state: "DOWN" }, ["NodeClientNetworkUnavailable"]],
    [{ state: "UNKNOWN", ipv4: null, lastIp: "192.0.2.10" }, ["NodeClientNetworkUnavailable", "NodeClientIP"]],
    [{ ipv4: "192.0.2.20" }, ["NodeClientIP"]],
    [{ nic: "eth1" }, ["NodeClientNetworkUnavailable", "NodeClientIP"]],
    [{ oob: { ok: false, error: "x" }, lastOobIp: "198.51.100.5" }, ["NodeOobIP"]],
    [{ oob: { ok: true, ip: "198.51.100.6" } }, ["NodeOobIP"]],
    [{ oob: null }, []],
    [{ checkOob: false }, []],
  ];
  for (const [change, types] of table) {
    const patch = planConditionPatch({
      current,
      desired: desiredConditions({ ...base, ...change }),
      now: at(10),
      reportFrequencyMs: 60_000,
    });
    assertEquals(patch?.status.conditions.map((c) => c.type) ?? [], types, JSON.stringify(change));
  }
});

Deno.test("planConditionPatch: status change sets a new transition time only on that condition", () => {
  const desired = desiredConditions(base);
  const current = written(desired, T0);
  const down = desiredConditions({ ...base, state: "DOWN" });
  const patch = planConditionPatch({ current, desired: down, now: at(10), reportFrequencyMs: 60_000 })!;
  assertEquals(patch.status.conditions, [{
    type: "NodeClientNetworkUnavailable",
    status: "True",
    reason: "StateDown",
    message: "bond1 StateDown",
    lastHeartbeatTime: "2026-01-01T00:00:10Z",
    lastTransitionTime: "2026-01-01T00:00:10Z",
  }]);
});

Deno.test("planConditionPatch: any of ours due -> all of ours; a future heartbeat (clock went back) -> write", () => {
  const desired = desiredConditions(base);
  const old = written(desired, T0);
  const mixed = old.map((c) => c.type === "NodeOobIP" ? c : { ...c, lastHeartbeatTime: kubeTime(at(50)) });
  assertEquals(
    planConditionPatch({ current: mixed, desired, now: at(61), reportFrequencyMs: 60_000 })?.status
      .conditions.length,
    4,
  );
  const future = written(desired, at(7200));
  assertEquals(
    planConditionPatch({ current: future, desired, now: T0, reportFrequencyMs: 60_000 })?.status
      .conditions.length,
    4,
  );
  const missingTime = old.map((c) => c.type === "NodeRefreshFlag" ? { ...c, lastHeartbeatTime: undefined } : c);
  assertEquals(
    planConditionPatch({ current: missingTime, desired, now: at(1), reportFrequencyMs: 60_000 })?.status
      .conditions.length,
    4,
  );
});

Deno.test("planConditionPatch: other components' conditions are never sent", () => {
  const desired = desiredConditions(base);
  const current = [...written(desired, T0), {
    type: "Ready",
    status: "True",
    reason: "KubeletReady",
    message: "kubelet is posting ready status",
    lastHeartbeatTime: kubeTime(T0),
    lastTransitionTime: kubeTime(T0),
  }];
  const patch = planConditionPatch({ current, desired, now: at(120), reportFrequencyMs: 60_000 });
  assert(patch!.status.conditions.every((c) => c.type !== "Ready"));
});

Deno.test("planNodeNetwork: the stamped conditions, the patch, and whether anything changed", () => {
  const first = planNodeNetwork(base, { current: [], now: T0, reportFrequencyMs: 60_000 });
  assertEquals(first.conditions, written(desiredConditions(base), T0));
  assertEquals(first.patch?.status.conditions, first.conditions);
  assertEquals(first.changed, true, "nothing of ours on the Node yet");
  const steady = planNodeNetwork(base, { current: first.conditions, now: at(3), reportFrequencyMs: 60_000 });
  assertEquals([steady.patch, steady.changed], [null, false]);
  const beat = planNodeNetwork(base, { current: first.conditions, now: at(60), reportFrequencyMs: 60_000 });
  assertEquals([beat.patch?.status.conditions.length, beat.changed], [4, false], "a heartbeat is routine");
  const down = planNodeNetwork({ ...base, state: "DOWN" }, {
    current: first.conditions,
    now: at(3),
    reportFrequencyMs: 60_000,
  });
  assertEquals([down.patch?.status.conditions.map((c) => c.type), down.changed], [
    ["NodeClientNetworkUnavailable"],
    true,
  ]);
});

Deno.test("clientNetworkEvent: a Warning when the network goes, a Normal one when it is back, else none", () => {
  const up = written(desiredConditions(base), T0);
  const down = written(desiredConditions({ ...base, state: "DOWN" }), at(3));
  assertEquals(clientNetworkEvent("node-1", { before: up, written: down }), {
    job: "node-network",
    type: "Warning",
    reason: "ClientNetworkUnavailable",
    message: 'Client network of Node "node-1": bond1 StateDown',
  });
  assertEquals(clientNetworkEvent("node-1", { before: [], written: down })?.type, "Warning", "first write down");
  assertEquals(clientNetworkEvent("node-1", { before: down, written: up }), {
    job: "node-network",
    type: "Normal",
    reason: "ClientNetworkAvailable",
    message: 'Client network of Node "node-1": bond1 StateUP',
  });
  assertEquals(clientNetworkEvent("node-1", { before: [], written: up }), null, "first write up: no event");
  assertEquals(clientNetworkEvent("node-1", { before: down, written: down }), null, "still down");
  assertEquals(clientNetworkEvent("node-1", { before: up, written: up.slice(1) }), null, "not among the written");
});

Deno.test("OOB schedule: an answer sets the next check, keeps the last address; switching off keeps it too", () => {
  const timing = { firstRetryMs: 60_000, holdMs: 3_600_000 };
  assertEquals(oobCheckDue(OOB_UNCHECKED, 0), true);
  const ok = afterOobAnswer(OOB_UNCHECKED, { ok: true, ip: "198.51.100.23" }, { startedAt: 1_000, timing });
  assertEquals(ok, {
    answer: { ok: true, ip: "198.51.100.23" },
    lastIp: "198.51.100.23",
    nextAt: 3_601_000,
    failures: 0,
  });
  assertEquals([oobCheckDue(ok, 3_600_999), oobCheckDue(ok, 3_601_000)], [false, true]);
  const failed = afterOobAnswer(ok, { ok: false, error: "ip is null" }, { startedAt: 5_000_000, timing });
  assertEquals([failed.lastIp, failed.failures, failed.nextAt], ["198.51.100.23", 1, 5_060_000]);
  const again = afterOobAnswer(failed, { ok: false, error: "ip is null" }, { startedAt: 5_060_000, timing });
  assertEquals([again.failures, again.nextAt], [2, 5_180_000]);
  const zero = afterOobAnswer(again, { ok: true, ip: "0.0.0.0" }, { startedAt: 6_000_000, timing });
  assertEquals([zero.lastIp, zero.failures], ["198.51.100.23", 0], "0.0.0.0 is not worth keeping");
  assertEquals(oobSwitchedOff(again), { ...OOB_UNCHECKED, lastIp: "198.51.100.23" });
});

const LAN_PRINT = `Set in Progress         : Set Complete
Auth Type Support       : NONE MD5 PASSWORD
IP Address Source       : Static Address
IP Address              : 198.51.100.23
Subnet Mask             : 255.255.255.0
MAC Address             : 00:11:22:33:44:55
Default Gateway IP      : 198.51.100.1
`;

Deno.test("parseIpmiLanPrint: the IP Address line, not IP Address Source", () => {
  assertEquals(parseIpmiLanPrint(LAN_PRINT), { ok: true, ip: "198.51.100.23" });
  const reversed = LAN_PRINT.split("\n").reverse().join("\n");
  assertEquals(parseIpmiLanPrint(reversed), { ok: true, ip: "198.51.100.23" });
  assertEquals(parseIpmiLanPrint("IP Address : 0.0.0.0\n"), { ok: true, ip: "0.0.0.0" });
  assertEquals(parseIpmiLanPrint("IP Address Source : DHCP\n"), { ok: false, error: "ip is null" });
  assertEquals(parseIpmiLanPrint(""), { ok: false, error: "ip is null" });
  assertEquals(parseIpmiLanPrint("IP Address :\n"), { ok: false, error: "ip is null" });
  assertEquals(parseIpmiLanPrint("IP Address : 999.1.1.1\n"), { ok: false, error: "ip 999.1.1.1 is unavailable" });
  assertEquals(parseIpmiLanPrint("IP Address  : 198.51.100.23\r\n"), { ok: true, ip: "198.51.100.23" });
});
