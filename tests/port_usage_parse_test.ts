/** Pure parts of the port-usage job: range rules, the switch, the plan, /proc line parsing. */
import assert from "node:assert/strict";
import {
  CONFIGMAP_MAX_BYTES,
  configMapDataSize,
  mergeRanges,
  parsePortRange,
  parsePortRanges,
  parseRangeList,
  planPortUsage,
  PORT_USED_VALUE,
  usedPortsInRanges,
} from "../controllers/port_usage.ts";
import { kubeTime, parseLenientBool } from "../k8s/values.ts";
import {
  CONNECTION_ROW,
  listeningPortOfLine,
  markListeningPorts,
  parseProcNetTcpLine,
  type TableProgress,
  tableProgress,
} from "../host/proc_net.ts";

Deno.test("parsePortRange keeps the original's test cases", () => {
  assert.deepEqual(parsePortRange("1232"), [1232, 1232]);
  assert.deepEqual(parsePortRange("-9-32"), [9, 32]);
  assert.deepEqual(parsePortRange("02000-3000"), [2000, 3000]);
  assert.deepEqual(parsePortRange("32"), [32, 32]);
  assert.deepEqual(parsePortRange("3000-2000"), [2000, 3000]);
  assert.throws(() => parsePortRange("04-abcd"), /"abcd" is not a port number/);
});

Deno.test("parsePortRange: bounds 1..65535, A+K, spaces, malformed values", () => {
  assert.deepEqual(parsePortRange("1-65535"), [1, 65535]);
  assert.deepEqual(parsePortRange(" 5400 - 5800 "), [5400, 5800]);
  assert.deepEqual(parsePortRange("30000+100"), [30000, 30100]);
  assert.deepEqual(parsePortRange("65535+0"), [65535, 65535]);
  assert.deepEqual(parsePortRange("5432-"), [5432, 5432]);
  assert.throws(() => parsePortRange("65535-65536"), /65536 is outside 1\.\.65535/);
  assert.throws(() => parsePortRange("0"), /0 is outside 1\.\.65535/);
  assert.throws(() => parsePortRange("0-10"), /0 is outside/);
  assert.throws(() => parsePortRange("99999999999999999999"), /is outside 1\.\.65535/);
  assert.throws(() => parsePortRange("65500+100"), /ends at 65600, outside 1\.\.65535/);
  assert.throws(() => parsePortRange("1-2-3"), /more than two bounds/);
  assert.throws(() => parsePortRange("1+2+3"), /more than one \+/);
  assert.throws(() => parsePortRange("5+x"), /"x" is not a port count/);
  assert.throws(() => parsePortRange("+5"), /"" is not a port number/);
  assert.throws(() => parsePortRange(""), /empty range/);
  assert.throws(() => parsePortRange("-"), /no port number/);
  assert.throws(() => parsePortRange("1.5"), /"1\.5" is not a port number/);
});

Deno.test("mergeRanges sorts and merges overlapping, contained and adjacent ranges", () => {
  assert.deepEqual(mergeRanges([[30000, 32999], [5400, 5800], [5700, 6000], [36000, 39999], [33000, 33000]]), [
    [5400, 6000],
    [30000, 33000],
    [36000, 39999],
  ]);
  assert.deepEqual(mergeRanges([[1, 100], [5, 6]]), [[1, 100]]);
  assert.deepEqual(mergeRanges([[10, 10], [12, 12]]), [[10, 10], [12, 12]]);
  assert.deepEqual(mergeRanges([]), []);
});

Deno.test("parseRangeList reads --port-ranges and names the bad item", () => {
  assert.deepEqual(parseRangeList("1-65535"), [[1, 65535]]);
  assert.deepEqual(parseRangeList("5400-5800,30000-39999"), [[5400, 5800], [30000, 39999]]);
  assert.deepEqual(parseRangeList(" 5700-6000 , 5400-5800, "), [[5400, 6000]]);
  assert.throws(() => parseRangeList("5400-5800,abc"), /Invalid port range "abc" in "5400-5800,abc": "abc" is not/);
  assert.throws(() => parseRangeList(" , "), /no range/);
  assert.throws(() => parseRangeList("1-70000"), /70000 is outside/);
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
  assert.deepEqual(parsed.ranges, [[5400, 5800], [30000, 33010], [36000, 40000], [40002, 40003]]);
  assert.deepEqual(parsed.invalid, [
    { key: "too.high", value: "65535-65536", reason: "65536 is outside 1..65535" },
    { key: "typo", value: "04-abcd", reason: '"abcd" is not a port number' },
  ]);
  assert.deepEqual(parsePortRanges(undefined), { ranges: [], invalid: [] });
  assert.deepEqual(parsePortRanges({ a: "-9-32" }).ranges, [[9, 32]]);
});

Deno.test("parseLenientBool: the original's words, any case, trimmed; anything else is the default", () => {
  for (const word of ["1", "t", "T", "y", "Y", "true", "TRUE", "True", "yes", "YES", " yes "]) {
    assert.equal(parseLenientBool(word, false), true, word);
  }
  for (const word of ["0", "f", "F", "n", "N", "false", "FALSE", "no", "No", "\tno\n"]) {
    assert.equal(parseLenientBool(word, true), false, word);
  }
  for (const word of ["", "on", "off", "enable", "2", "nope"]) {
    assert.equal(parseLenientBool(word, true), true, word);
    assert.equal(parseLenientBool(word, false), false, word);
  }
  assert.equal(parseLenientBool(undefined, true), true);
  assert.equal(parseLenientBool(undefined, false), false);
});

Deno.test("usedPortsInRanges takes a bitmap or a set and keeps inclusive edges", () => {
  const bitmap = new Uint8Array(65536);
  for (const p of [1, 99, 100, 150, 200, 201, 65535]) bitmap[p] = 1;
  const ranges = [[1, 1], [100, 200], [65535, 65535]] as const;
  assert.deepEqual(usedPortsInRanges(bitmap, ranges), [1, 100, 150, 200, 65535]);
  assert.deepEqual(usedPortsInRanges(new Set([1, 99, 100, 150, 200, 201, 65535]), ranges), [1, 100, 150, 200, 65535]);
});

const NOW = new Date("2026-11-25T08:09:10.987Z");

Deno.test("planPortUsage: the original's keys, value and annotation; created when missing", () => {
  const plan = planPortUsage({ node: "n1", used: [22, 5432], existing: null, now: NOW });
  assert.equal(plan.name, "cloud-provider-port-usage-n1");
  assert.equal(plan.changed, true);
  assert.equal(plan.tooLarge, false);
  assert.deepEqual(plan.configMap.data, { "22": PORT_USED_VALUE, "5432": PORT_USED_VALUE });
  assert.equal(PORT_USED_VALUE, "the port already use");
  assert.deepEqual(plan.configMap.metadata?.annotations, { updateTimestamp: "2026-11-25T08:09:10Z" });
  assert.equal(plan.sizeBytes, 2 + 20 + 4 + 20);
  assert.equal(kubeTime(new Date("2026-01-02T03:04:05.000+02:00")), "2026-01-02T01:04:05Z");
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
  assert.equal(same.changed, false);
  const more = planPortUsage({ node: "n1", used: [22, 5432, 8080], existing, now: NOW });
  assert.equal(more.changed, true);
  assert.deepEqual(more.configMap.metadata?.labels, { team: "db" });
  assert.deepEqual(more.configMap.metadata?.annotations, { updateTimestamp: "2026-11-25T08:09:10Z", note: "keep" });
  assert.equal(more.configMap.metadata?.resourceVersion, "7");
  assert.equal(planPortUsage({ node: "n1", used: [22, 8080], existing, now: NOW }).changed, true);
  assert.equal(planPortUsage({ node: "n1", used: [22], existing, now: NOW }).changed, true);
  assert.equal(planPortUsage({ node: "n1", used: [], existing: { metadata: {} }, now: NOW }).changed, false);
});

Deno.test("planPortUsage counts bytes as the API server does and flags more than 1 MiB", () => {
  const all = Array.from({ length: 65535 }, (_, i) => i + 1);
  const digits = 9 * 1 + 90 * 2 + 900 * 3 + 9000 * 4 + 55536 * 5;
  const plan = planPortUsage({ node: "n1", used: all, existing: null, now: NOW });
  assert.equal(plan.sizeBytes, digits + 65535 * PORT_USED_VALUE.length);
  assert.equal(plan.tooLarge, true);
  // The largest set that fits: 25 bytes per five-digit port.
  const fits = Array.from({ length: 40000 }, (_, i) => 10000 + i);
  assert.equal(planPortUsage({ node: "n1", used: fits, existing: null, now: NOW }).sizeBytes, 40000 * 25);
  assert.equal(planPortUsage({ node: "n1", used: fits, existing: null, now: NOW }).tooLarge, false);
  assert.equal(CONFIGMAP_MAX_BYTES, 1048576);
  assert.equal(
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

Deno.test("parseProcNetTcpLine decodes IPv4, IPv6, IPv4-mapped and wildcard addresses, hex ports and states", () => {
  assert.equal(parseProcNetTcpLine(TCP_LINES[0]), null);
  assert.deepEqual(parseProcNetTcpLine(TCP_LINES[1]), {
    slot: 0,
    localAddress: "127.0.0.1",
    localPort: 0xb0c9,
    remoteAddress: "0.0.0.0",
    remotePort: 0,
    state: 0x0a,
    listening: true,
  });
  assert.equal(parseProcNetTcpLine(TCP_LINES[2])?.localPort, 2024);
  const established = parseProcNetTcpLine(TCP_LINES[3]);
  assert.equal(established?.listening, false);
  assert.equal(established?.remotePort, 0xb0c9);
  const timeWait = parseProcNetTcpLine(TCP_LINES[4]);
  assert.deepEqual([timeWait?.slot, timeWait?.localAddress, timeWait?.remoteAddress, timeWait?.remotePort], [
    12345,
    "192.0.2.2",
    "203.0.113.80",
    443,
  ]);
  assert.equal(parseProcNetTcpLine(TCP6_LINES[0])?.localAddress, "::1");
  assert.equal(parseProcNetTcpLine(TCP6_LINES[1])?.localAddress, "::ffff:127.0.0.1");
  assert.equal(parseProcNetTcpLine(TCP6_LINES[1])?.localPort, 0x846f);
  assert.equal(parseProcNetTcpLine(TCP6_LINES[2])?.localAddress, "::");
  assert.equal(parseProcNetTcpLine(TCP6_LINES[2])?.listening, true);
  assert.equal(parseProcNetTcpLine(TCP6_LINES[3])?.localAddress, "fe80::a102:2cff:561a:bfe");
  assert.equal(parseProcNetTcpLine(""), null);
  assert.equal(parseProcNetTcpLine("   0: 0100007F:B0C9"), null);
});

Deno.test("listeningPortOfLine (bytes) agrees with parseProcNetTcpLine on every line", () => {
  const encoder = new TextEncoder();
  const extra = [
    "garbage",
    "   0: 0100007F:XYZW 00000000:0000 0A",
    "   0: 01007F:B0C9 00000000:0000 0A",
    "x: 0100007F",
    // A listener being closed shows CLOSE (07) for a moment: neither a listener nor a connection.
    "   2: 0100007F:B0CA 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 13391 2",
  ];
  for (const line of [...TCP_LINES, ...TCP6_LINES, ...extra]) {
    const parsed = parseProcNetTcpLine(line);
    const bytes = encoder.encode(line);
    const expected = parsed === null || parsed.state === 0x07
      ? -1
      : parsed.listening
      ? parsed.localPort
      : CONNECTION_ROW;
    assert.equal(listeningPortOfLine(bytes), expected, line);
  }
});

Deno.test("markListeningPorts marks complete lines only and returns where the partial line starts", () => {
  const text = `${TCP6_LINES.join("\n")}\n${TCP6_LINES[0].slice(0, 20)}`;
  const bytes = new TextEncoder().encode(text);
  const progress = tableProgress(new Uint8Array(65536));
  const consumed = markListeningPorts(bytes, progress);
  assert.equal(consumed, text.lastIndexOf("\n") + 1);
  assert.deepEqual(usedPortsInRanges(progress.ports, [[1, 65535]]), [0x846f, 0x9963, 0xa841]);
  assert.deepEqual([progress.connectionSeen, progress.listenerAfterConnection], [true, false]);
});

Deno.test("markListeningPorts notes where the listeners' section ends, and a listener after it, across chunks", () => {
  const encode = (lines: string[]) => new TextEncoder().encode(lines.map((l) => `${l}\n`).join(""));
  const [header, listenA, listenB, established, timeWait] = TCP_LINES;
  const closing = "   2: 0100007F:B0CA 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 13391 2";
  const bitmap = new Uint8Array(65536);
  const flags = (p: TableProgress) => [p.connectionSeen, p.listenerAfterConnection];

  const linux = tableProgress(bitmap);
  markListeningPorts(encode([header, listenA, closing, listenB]), linux);
  assert.deepEqual(flags(linux), [false, false], "header and CLOSE end nothing");
  markListeningPorts(encode([established, timeWait]), linux);
  assert.deepEqual(flags(linux), [true, false]);

  const mixed = tableProgress(bitmap);
  markListeningPorts(encode([header, listenA, established]), mixed);
  markListeningPorts(encode([timeWait, listenB]), mixed);
  assert.deepEqual(flags(mixed), [true, true]);
  assert.deepEqual(usedPortsInRanges(bitmap, [[1, 65535]]), [0x07e8, 0xb0c9]);
});
