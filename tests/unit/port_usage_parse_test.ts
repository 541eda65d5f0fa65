/** Pure parts of the port-usage job: range rules, the switch, the plan, /proc line parsing. */
import { assert, assertEquals, assertThrows } from "../support/assert.ts";
import {
  ephemeralOverlap,
  mergeRanges,
  parsePortRange,
  parsePortRanges,
  parseRangeList,
  planReservation,
  rangeSize,
  usedPortsInRanges,
} from "../../controllers/port_usage/ranges.ts";
import {
  CONFIGMAP_MAX_BYTES,
  configMapDataSize,
  needsConfirmation,
  planPortUsage,
  PORT_USED_VALUE,
  unionOfScans,
} from "../../controllers/port_usage/plan.ts";
import { kubeTime, parseLenientBool } from "../../k8s/values.ts";
import { localPortOfLine, markLocalPorts } from "../../host/proc_net.ts";
import { formatPortList, parseEphemeralRange, parsePortList } from "../../host/sysctl_ports.ts";
import { dumpRequest, walkMessages } from "../../host/sock_diag.ts";

Deno.test("parsePortRange keeps the original's test cases", () => {
  assertEquals(parsePortRange("1232"), [1232, 1232]);
  assertEquals(parsePortRange("-9-32"), [9, 32]);
  assertEquals(parsePortRange("02000-3000"), [2000, 3000]);
  assertEquals(parsePortRange("32"), [32, 32]);
  assertEquals(parsePortRange("3000-2000"), [2000, 3000]);
  assertThrows(() => parsePortRange("04-abcd"), Error, /"abcd" is not a port number/);
});

Deno.test("parsePortRange: bounds 1..65535, A+K, spaces, malformed values", () => {
  assertEquals(parsePortRange("1-65535"), [1, 65535]);
  assertEquals(parsePortRange(" 5400 - 5800 "), [5400, 5800]);
  assertEquals(parsePortRange("30000+100"), [30000, 30100]);
  assertEquals(parsePortRange("65535+0"), [65535, 65535]);
  assertEquals(parsePortRange("5432-"), [5432, 5432]);
  assertThrows(() => parsePortRange("65535-65536"), Error, /65536 is outside 1\.\.65535/);
  assertThrows(() => parsePortRange("0"), Error, /0 is outside 1\.\.65535/);
  assertThrows(() => parsePortRange("0-10"), Error, /0 is outside/);
  assertThrows(() => parsePortRange("99999999999999999999"), Error, /is outside 1\.\.65535/);
  assertThrows(() => parsePortRange("65500+100"), Error, /ends at 65600, outside 1\.\.65535/);
  assertThrows(() => parsePortRange("1-2-3"), Error, /more than two bounds/);
  assertThrows(() => parsePortRange("1+2+3"), Error, /more than one \+/);
  assertThrows(() => parsePortRange("5+x"), Error, /"x" is not a port count/);
  assertThrows(() => parsePortRange("+5"), Error, /"" is not a port number/);
  assertThrows(() => parsePortRange(""), Error, /empty range/);
  assertThrows(() => parsePortRange("-"), Error, /no port number/);
  assertThrows(() => parsePortRange("1.5"), Error, /"1\.5" is not a port number/);
});

Deno.test("mergeRanges sorts and merges overlapping, contained and adjacent ranges", () => {
  assertEquals(mergeRanges([[30000, 32999], [5400, 5800], [5700, 6000], [36000, 39999], [33000, 33000]]), [
    [5400, 6000],
    [30000, 33000],
    [36000, 39999],
  ]);
  assertEquals(mergeRanges([[1, 100], [5, 6]]), [[1, 100]]);
  assertEquals(mergeRanges([[10, 10], [12, 12]]), [[10, 10], [12, 12]]);
  assertEquals(mergeRanges([]), []);
});

Deno.test("parseRangeList reads --port-ranges and names the bad item", () => {
  assertEquals(parseRangeList("1-65535"), [[1, 65535]]);
  assertEquals(parseRangeList("5400-5800,30000-39999"), [[5400, 5800], [30000, 39999]]);
  assertEquals(parseRangeList(" 5700-6000 , 5400-5800, "), [[5400, 6000]]);
  assertThrows(
    () => parseRangeList("5400-5800,abc"),
    Error,
    /Invalid port range "abc" in "5400-5800,abc": "abc" is not/,
  );
  assertThrows(() => parseRangeList(" , "), Error, /no range/);
  assertThrows(() => parseRangeList("1-70000"), Error, /70000 is outside/);
});

Deno.test("parsePortRanges reads the shipped annotations, skips non-ranges quietly, reports bad ranges", () => {
  const annotations = {
    "polarbox.mpd.engine.port.range": "30000-32999",
    "polarbox.mpd.external.port.range": "36000-39999",
    "polarbox.novip.engine.port.range": "5400-5800",
    "polarbox.mpd.reserved.port.ranges": "",
    "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"v1","kind":"ConfigMap"}',
    "owner": "mpd",
    "flag": "true",
    "typo": "04-abcd",
    "too.high": "65535-65536",
    "allocator": "33000+10",
    "list": "40000,40002-40003",
  };
  const parsed = parsePortRanges(annotations);
  assertEquals(parsed.ranges, [[5400, 5800], [30000, 33010], [36000, 40000], [40002, 40003]]);
  assertEquals(parsed.invalid, [
    { key: "too.high", value: "65535-65536", reason: "65536 is outside 1..65535" },
    { key: "typo", value: "04-abcd", reason: '"abcd" is not a port number' },
  ]);
  assertEquals(parsePortRanges(undefined), { ranges: [], invalid: [] });
  assertEquals(parsePortRanges({ a: "-9-32" }).ranges, [[9, 32]]);
});

Deno.test("parseLenientBool: the original's words, any case, trimmed; anything else is the default", () => {
  for (const word of ["1", "t", "T", "y", "Y", "true", "TRUE", "True", "yes", "YES", " yes "]) {
    assertEquals(parseLenientBool(word, false), true, word);
  }
  for (const word of ["0", "f", "F", "n", "N", "false", "FALSE", "no", "No", "\tno\n"]) {
    assertEquals(parseLenientBool(word, true), false, word);
  }
  for (const word of ["", "on", "off", "enable", "2", "nope"]) {
    assertEquals(parseLenientBool(word, true), true, word);
    assertEquals(parseLenientBool(word, false), false, word);
  }
  assertEquals(parseLenientBool(undefined, true), true);
  assertEquals(parseLenientBool(undefined, false), false);
});

Deno.test("usedPortsInRanges takes a bitmap or a set and keeps inclusive edges", () => {
  const bitmap = new Uint8Array(65536);
  for (const p of [1, 99, 100, 150, 200, 201, 65535]) bitmap[p] = 1;
  const ranges = [[1, 1], [100, 200], [65535, 65535]] as const;
  assertEquals(usedPortsInRanges(bitmap, ranges), [1, 100, 150, 200, 65535]);
  assertEquals(usedPortsInRanges(new Set([1, 99, 100, 150, 200, 201, 65535]), ranges), [1, 100, 150, 200, 65535]);
});

const NOW = new Date("2026-11-25T08:09:10.987Z");

Deno.test("planPortUsage: the original's keys, value and annotation; created when missing", () => {
  const plan = planPortUsage({ node: "n1", used: [22, 5432], existing: null, now: NOW });
  assertEquals(plan.name, "cloud-provider-port-usage-n1");
  assertEquals(plan.changed, true);
  assertEquals(plan.tooLarge, false);
  assertEquals(plan.configMap.data, { "22": PORT_USED_VALUE, "5432": PORT_USED_VALUE });
  assertEquals(PORT_USED_VALUE, "the port already use");
  assertEquals(plan.configMap.metadata?.annotations, { updateTimestamp: "2026-11-25T08:09:10Z" });
  assertEquals(plan.sizeBytes, 2 + 20 + 4 + 20);
  assertEquals(kubeTime(new Date("2026-01-02T03:04:05.000+02:00")), "2026-01-02T01:04:05Z");
});

Deno.test("planPortUsage compares the set of data keys only, and keeps the existing metadata", () => {
  const existing = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: "cloud-provider-port-usage-n1",
      namespace: "kube-system",
      resourceVersion: "7",
      labels: { team: "db" },
      annotations: { updateTimestamp: "2020-01-01T00:00:00Z", note: "keep" },
    },
    data: { "5432": "something else", "22": PORT_USED_VALUE },
  };
  const same = planPortUsage({ node: "n1", used: [22, 5432], existing, now: NOW });
  assertEquals(same.changed, false);
  const more = planPortUsage({ node: "n1", used: [22, 5432, 8080], existing, now: NOW });
  assertEquals(more.changed, true);
  assertEquals(more.configMap.metadata?.labels, { team: "db" });
  assertEquals(more.configMap.metadata?.annotations, { updateTimestamp: "2026-11-25T08:09:10Z", note: "keep" });
  assertEquals(more.configMap.metadata?.resourceVersion, "7");
  assertEquals(planPortUsage({ node: "n1", used: [22, 8080], existing, now: NOW }).changed, true);
  assertEquals(planPortUsage({ node: "n1", used: [22], existing, now: NOW }).changed, true);
  assertEquals(planPortUsage({ node: "n1", used: [], existing: { metadata: {} }, now: NOW }).changed, false);
});

Deno.test("planPortUsage counts bytes as the API server does and flags more than 1 MiB", () => {
  const all = Array.from({ length: 65535 }, (_, i) => i + 1);
  const digits = 9 * 1 + 90 * 2 + 900 * 3 + 9000 * 4 + 55536 * 5;
  const plan = planPortUsage({ node: "n1", used: all, existing: null, now: NOW });
  assertEquals(plan.sizeBytes, digits + 65535 * PORT_USED_VALUE.length);
  assertEquals(plan.tooLarge, true);
  // The largest set that fits: 25 bytes per five-digit port.
  const fits = Array.from({ length: 40000 }, (_, i) => 10000 + i);
  assertEquals(planPortUsage({ node: "n1", used: fits, existing: null, now: NOW }).sizeBytes, 40000 * 25);
  assertEquals(planPortUsage({ node: "n1", used: fits, existing: null, now: NOW }).tooLarge, false);
  assertEquals(CONFIGMAP_MAX_BYTES, 1048576);
  assertEquals(
    configMapDataSize({ data: { "é": "日本" }, binaryData: { b: "AAAA", c: "AA==" } }),
    2 + 6 + 1 + 3 + 1 + 1,
  );
});

const TCP_LINES = [
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  "   0: 0100007F:B0C9 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 13390 2 0000000046ee1028 100 0 0 10 0",
  "   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1521 1 00000000ebff5863 100 0 0 10 0",
  "   4: 0100007F:D084 0100007F:B0C9 01 00000000:00000000 00:00000000 00000000     0        0 13392 2 000000006e4c3ded 20 0 0 10 -1",
  "12345: 020200C0:DEE4 507100CB:01BB 06 00000000:00000000 02:00000059 00000000     0        0 0 3 00000000db12fd0b",
];
const TCP6_LINES = [
  "   0: 00000000000000000000000001000000:A841 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 13386 1",
  "   1: 0000000000000000FFFF00000100007F:846F 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 13388 1",
  "   2: 00000000000000000000000000000000:9963 00000000000000000000000000000000:0000 0a 00000000:00000000 00:00000000 00000000     0        0 13387 1",
  "   3: 000080FE00000000FF2C02A1FE0B1A56:0016 000080FE00000000FF2C02A1FE0B1A57:C350 01 00000000:00000000",
];

Deno.test("localPortOfLine reads the local port of IPv4 and IPv6 rows in every state, not the remote one", () => {
  const encoder = new TextEncoder();
  const port = (line: string) => localPortOfLine(encoder.encode(line));
  assertEquals(port(TCP_LINES[0]), -1, "header");
  assertEquals(port(TCP_LINES[1]), 0xb0c9, "listener");
  assertEquals(port(TCP_LINES[2]), 2024);
  assertEquals(port(TCP_LINES[3]), 0xd084, "established: the local port, not the remote 0xB0C9");
  assertEquals(port(TCP_LINES[4]), 0xdee4, "TIME_WAIT (06)");
  assertEquals(port(TCP6_LINES[0]), 0xa841);
  assertEquals(port(TCP6_LINES[1]), 0x846f, "IPv4-mapped");
  assertEquals(port(TCP6_LINES[2]), 0x9963, "lower-case state");
  assertEquals(port(TCP6_LINES[3]), 0x16, "IPv6 established");
  // SYN_SENT (02) and CLOSE (07) rows count too: their port is taken.
  assertEquals(
    port("   2: 0100007F:B0CA 0A00FF0A:0050 02 00000000:00000000 01:00000064 00000002     0        0 7 2"),
    0xb0ca,
  );
  assertEquals(
    port("   2: 0100007F:B0CB 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7 2"),
    0xb0cb,
  );
  for (const bad of ["", "garbage", "x: 0100007F", "   0: 0100007F:XYZW 00000000:0000 0A", "   0: 01007F:B0C9 0 0A"]) {
    assertEquals(port(bad), -1, bad);
  }
  assertEquals(port("   0: 0100007F:B0C9"), -1, "no field after the port");
});

Deno.test("markLocalPorts marks complete lines only and returns where the partial line starts", () => {
  const text = `${[...TCP_LINES, ...TCP6_LINES].join("\n")}\n${TCP6_LINES[0].slice(0, 20)}`;
  const bytes = new TextEncoder().encode(text);
  const ports = new Uint8Array(65536);
  assertEquals(markLocalPorts(bytes, ports), text.lastIndexOf("\n") + 1);
  assertEquals(usedPortsInRanges(ports, [[1, 65535]]), [
    0x16,
    0x07e8,
    0x846f,
    0x9963,
    0xa841,
    0xb0c9,
    0xd084,
    0xdee4,
  ]);
});

Deno.test("ephemeralOverlap: the scanned ports inside ip_local_port_range and not reserved", () => {
  const shipped = [[5400, 5800], [30000, 32999], [36000, 39999]] as const;
  const linux = { range: [32768, 60999] as const, reserved: [] };
  assertEquals(ephemeralOverlap(shipped, linux), [[32768, 32999], [36000, 39999]]);
  assertEquals(rangeSize(ephemeralOverlap(shipped, linux)), 232 + 4000);
  // Reserved entries, unsorted and overlapping as a person may write them, cut the overlap.
  const reserved = [[37000, 37999], [32768, 32800], [36500, 36500], [37500, 38100]] as const;
  assertEquals(ephemeralOverlap(shipped, { range: [32768, 60999], reserved: [...reserved] }), [
    [32801, 32999],
    [36000, 36499],
    [36501, 36999],
    [38101, 39999],
  ]);
  assertEquals(ephemeralOverlap(shipped, { range: [32768, 60999], reserved: [[30000, 39999]] }), []);
  assertEquals(ephemeralOverlap(shipped, { range: [40000, 60999], reserved: [] }), []);
  assertEquals(ephemeralOverlap([[100, 200]], { range: [150, 150], reserved: [] }), [[150, 150]]);
  assertEquals(ephemeralOverlap([], linux), []);
});

Deno.test("planReservation keeps every entry, adds only what is missing, and changes nothing when all is there", () => {
  const ranges = [[30000, 32999], [36000, 39999]] as const;
  const first = planReservation([[8080, 8080], [31000, 31010], [50000, 50010]], ranges);
  assertEquals(first.reserved, [[8080, 8080], [30000, 32999], [36000, 39999], [50000, 50010]]);
  assertEquals(first.added, [[30000, 30999], [31011, 32999], [36000, 39999]]);
  assertEquals(first.changed, true);
  const again = planReservation(first.reserved, ranges);
  assertEquals([again.changed, again.added], [false, []]);
  assertEquals(planReservation([[1, 65535]], ranges).changed, false);
});

Deno.test("the sysctls' formats: ip_local_port_range, ip_local_reserved_ports", () => {
  assertEquals(parseEphemeralRange("32768\t60999\n"), [32768, 60999]);
  assertThrows(() => parseEphemeralRange("60999 32768"), Error, /"60999 32768" is not two port numbers/);
  assertThrows(() => parseEphemeralRange("x"), Error, /not two port numbers/);
  assertEquals(parsePortList("\n"), []);
  assertEquals(parsePortList("8080,9148-9150\n"), [[8080, 8080], [9148, 9150]]);
  assertThrows(() => parsePortList("8080,9150-9148"), Error, /"9150-9148" is not a port or a range/);
  assertThrows(() => parsePortList("1-2-3"), Error, /"1-2-3" is not/);
  assertEquals(formatPortList([[8080, 8080], [9148, 9150]]), "8080,9148-9150");
  assertEquals(formatPortList([]), "");
});

Deno.test("a port is dropped only when two scans in a row miss it; new ports need no second scan", () => {
  assertEquals(needsConfirmation(null, [1, 2]), true, "the first run has nothing to compare with: scan twice");
  assertEquals(needsConfirmation([1, 2], [1, 2, 3]), false, "only additions: published at once");
  assertEquals(needsConfirmation([1, 2], [2]), true, "1 is missing: a second scan must agree");
  assertEquals(unionOfScans([1, 3, 5], [2, 3, 6]), [1, 2, 3, 5, 6]);
  assertEquals(unionOfScans([], [4]), [4]);
  assertEquals(unionOfScans([4], []), [4]);
});

Deno.test("the netlink dump request is nlmsghdr + inet_diag_req_v2 (72 bytes), and replies are walked by nlmsg_len", () => {
  const request = dumpRequest(10, 7);
  const view = new DataView(request.buffer);
  assertEquals(request.length, 72);
  assertEquals(
    [view.getUint32(0, true), view.getUint16(4, true), view.getUint16(6, true), view.getUint32(8, true)],
    [72, 20, 0x301, 7],
  );
  assertEquals([request[16], request[17], request[18], request[19]], [10, 6, 0, 0], "AF_INET6, IPPROTO_TCP");
  assertEquals(view.getUint32(20, true), 0xffffffff, "every state");
  assert(request.subarray(24).every((b) => b === 0), "no socket id filter");

  // Two sockets (one with a 4-byte attribute, so the next message starts aligned), then NLMSG_DONE.
  const reply = new Uint8Array(16 + 72 + 8 + 16 + 72 + 20);
  const r = new DataView(reply.buffer);
  const message = (at: number, length: number, type: number, port: number) => {
    r.setUint32(at, length, true);
    r.setUint16(at + 4, type, true);
    r.setUint16(at + 16 + 4, port, false);
  };
  message(0, 16 + 72 + 6, 20, 5432); // 6 bytes of attribute, padded to 8
  message(96, 16 + 72, 20, 40001);
  r.setUint32(184, 20, true);
  r.setUint16(188, 3, true);
  const ports: number[] = [];
  assertEquals(walkMessages(reply, (offset) => ports.push(r.getUint16(offset + 4, false))), true);
  assertEquals(ports, [5432, 40001]);
  assertEquals(walkMessages(reply.subarray(0, 184), () => {}), false, "no NLMSG_DONE yet: receive more");
  const error = new Uint8Array(36);
  const e = new DataView(error.buffer);
  e.setUint32(0, 36, true);
  e.setUint16(4, 2, true);
  e.setInt32(16, -13, true);
  assertThrows(() => walkMessages(error, () => {}), Error, /Cannot read the socket dump: the kernel answered errno 13/);
  const short = new Uint8Array(16);
  new DataView(short.buffer).setUint32(0, 8, true);
  assertThrows(() => walkMessages(short, () => {}), Error, /a message of 8 bytes at offset 0 is malformed/);
});
