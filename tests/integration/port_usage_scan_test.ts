/**
 * Port scanning against real sockets in a network namespace made by the test, where nothing else moves: every TCP
 * socket's local port counts, in every state; `ss -Htan` must list exactly the same ports and a bind probe must
 * refuse none that we miss.
 */
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { readProcLocalPorts } from "../../host/proc_net.ts";
import { openSockDiag } from "../../host/sock_diag.ts";
import { type PortRange, usedPortsInRanges } from "../../controllers/port_usage/ranges.ts";
import { canMakeNetns, createNetns, type NetNs } from "../support/netns.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";
import { BLACKHOLE, NS_RANGES } from "../support/port_usage_ns_cli.ts";

const CLI = new URL("../support/port_usage_ns_cli.ts", import.meta.url).pathname;
const ignoreWithoutNetns = skipUnless(
  canMakeNetns() && hasCommand("ss"),
  "network namespaces need root and iproute2 (ip, ss)",
);

/** Runs the CLI inside the namespace (the deno binary of this test, its cache: no registry is reached there). */
async function inNamespace<T>(ns: NetNs, ...args: string[]): Promise<T> {
  const r = await ns.exec([Deno.execPath(), "run", "-A", CLI, ...args]);
  assertEquals(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

interface SocketsReport {
  ports: Record<string, number>;
  states: [number, string, string][];
  netlink: number[];
  proc: number[];
  ss: number[];
  bind: number[];
}

function inRanges(ports: number[], ranges: readonly PortRange[]): number[] {
  return usedPortsInRanges(new Set(ports), ranges);
}

Deno.test({
  name: "every TCP socket's local port counts (listeners, outgoing, accepted, TIME_WAIT, SYN_SENT), UDP does not; " +
    "netlink and /proc equal ss -Htan, and the bind probe refuses no port they miss",
  ignore: ignoreWithoutNetns,
  async fn() {
    const ns = await createNetns();
    try {
      await ns.ip("route", "add", `${BLACKHOLE.replace(/\.\d+$/, ".0")}/24`, "dev", "lo", "src", "127.0.0.1");
      const report = await inNamespace<SocketsReport>(ns, "sockets");
      const { ports } = report;
      // The set-up did what it says: ss sees each socket in the state the case is about. A socket is its local port
      // and its peer, because the kernel lets connections to different peers share a local port.
      const state = (port: number, peer?: string) =>
        report.states.filter(([p, , q]) => p === port && (peer === undefined || q === peer)).map(([, s]) => s);
      assertEquals(state(ports.outgoing, "127.0.0.1:20000"), ["ESTAB"], "an outgoing connection");
      assertEquals(state(ports.accepted, `127.0.0.1:${ports.acceptedClient}`), ["ESTAB"], "accepted side");
      assert(!state(ports.accepted).includes("LISTEN"), "the accepted side's listener is gone");
      assertEquals(state(ports.timeWait, "127.0.0.1:20000"), ["TIME-WAIT"]);
      assertEquals(state(ports.synSent, `${BLACKHOLE}:80`), ["SYN-SENT"]);
      assertEquals(state(ports.udp), [], "UDP is not in the TCP tables");

      // Whole port space: both methods list exactly what ss lists.
      assertEquals(report.netlink, report.ss, "netlink = ss -Htan");
      assertEquals(report.proc, report.ss, "/proc = ss -Htan");

      const used = inRanges(report.netlink, NS_RANGES);
      for (const kind of ["v4", "v6", "dual", "mapped", "wildcard", "outgoing", "accepted", "timeWait", "synSent"]) {
        assert(used.includes(ports[kind]), `${kind} port ${ports[kind]} is used`);
      }
      assert(!used.includes(ports.udp), "a UDP socket does not count");
      // Inclusive edges: 20000 and 20099 are in, 19999 and 20100 (listeners too) are not.
      assertEquals(used[0], 20000);
      assert(used.includes(20099));
      assert(!used.includes(19999) && !used.includes(20100));
      assert(report.netlink.includes(19999) && report.netlink.includes(20100));
      assertEquals(used, inRanges(report.ss, NS_RANGES));

      // The bind probe (SO_REUSEADDR on 0.0.0.0 and [::], as a database listens) is refused on a subset of ours.
      const missed = report.bind.filter((port) => !used.includes(port));
      assertEquals(missed, [], "ports a database could not listen on that the scan missed");
      for (const kind of ["v4", "v6", "dual", "mapped", "wildcard", "outgoing", "timeWait", "synSent"]) {
        assert(report.bind.includes(ports[kind]), `the bind probe is refused on ${kind} port ${ports[kind]}`);
      }
    } finally {
      await ns.remove();
    }
  },
});

Deno.test({
  name: "a read of /proc/net/tcp is no snapshot: listeners closed between two read() calls hide listeners still open",
  ignore: ignoreWithoutNetns,
  async fn() {
    const ns = await createNetns();
    try {
      const torn = await inNamespace<{ opened: number; printed: number; reads: number; hidden: number }>(ns, "torn");
      assertEquals(torn.opened, 8392);
      assert(torn.hidden > 0, `listeners never printed although open during the whole read: ${torn.hidden}`);
      assertEquals(torn.printed + torn.hidden, torn.opened);
    } finally {
      await ns.remove();
    }
  },
});

Deno.test({
  name: "a socket bound but neither listening nor connected: the bind probe and netlink (Linux 6.5+) see it, not /proc",
  ignore: ignoreWithoutNetns,
  async fn() {
    const ns = await createNetns();
    try {
      const seen = await inNamespace<Record<string, boolean>>(ns, "bound");
      const [major, minor] = Deno.osRelease().split(".").map(Number);
      const boundInactiveDump = major > 6 || (major === 6 && minor >= 5);
      assertEquals(seen, { netlink: boundInactiveDump, proc: false, ss: false, bind: true });
    } finally {
      await ns.remove();
    }
  },
});

Deno.test("the /proc reader streams a huge table through a small buffer, and a missing tcp6 is no error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "port_usage_" });
  try {
    const path = `${dir}/tcp6`;
    const file = await Deno.open(path, { write: true, create: true });
    const encoder = new TextEncoder();
    await file.write(encoder.encode(
      "  sl  local_address                         remote_address                        st tx_queue rx_queue\n",
    ));
    const expected = new Set<number>();
    let chunk = "";
    const states = ["0A", "01", "06", "02", "08"];
    for (let i = 0; i < 200_000; i++) {
      const port = 1 + (i * 7919) % 65535;
      expected.add(port);
      const hex = port.toString(16).toUpperCase().padStart(4, "0");
      chunk += `${String(i).padStart(6)}: 0000000000000000FFFF00000100007F:${hex} ` +
        `00000000000000000000000000000000:0000 ${states[i % 5]} 00000000:00000000 00:00000000 00000000     0 0 1 1\n`;
      if (chunk.length > 60_000) {
        await file.write(encoder.encode(chunk));
        chunk = "";
      }
    }
    await file.write(encoder.encode(chunk.slice(0, -1))); // the last line without a newline still counts
    file.close();
    const small = await readProcLocalPorts({ paths: [path], bufferSize: 4096 });
    assertEquals(usedPortsInRanges(small.ports, [[1, 65535]]), [...expected].sort((a, b) => a - b));
    assert(small.reads > 1000, `a 4 KiB buffer takes many reads: ${small.reads}`);
    const large = await readProcLocalPorts({ paths: [path] });
    assertEquals(large.ports, small.ports);
    assert(large.reads < small.reads / 10, `the default buffer takes few reads of a file: ${large.reads}`);
    await assertRejects(
      () => readProcLocalPorts({ paths: [path], bufferSize: 64 }),
      Error,
      /Cannot read socket table ".*tcp6": a line is longer than the buffer/,
    );
    // IPv6 turned off: no tcp6 table, not an error; no tcp table is one.
    assert(await readProcLocalPorts({ paths: [`${dir}/missing6`] }));
    await assertRejects(
      () => readProcLocalPorts({ paths: [`${dir}/tcp`] }),
      Error,
      /Cannot read socket table ".*\/tcp"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("netlink needs fewer kernel calls than /proc for the same table (fewer points where a read can tear)", async () => {
  // Here, not in a namespace: only the count of calls is compared, on whatever this host has open (what is found is
  // checked in the namespace tests above, where nothing else moves).
  const listeners = Array.from(
    { length: 300 },
    (_, i) => Deno.listen({ hostname: i % 2 ? "::1" : "127.0.0.1", port: 0 }),
  );
  const diag = openSockDiag();
  try {
    const bitmap = new Uint8Array(65536);
    const { sockets, receives } = diag.markLocalPorts(bitmap);
    const proc = await readProcLocalPorts();
    assert(sockets >= 300, `sockets dumped: ${sockets}`);
    assert(receives < proc.reads, `netlink receives ${receives}, /proc reads ${proc.reads}`);
  } finally {
    diag.close();
    for (const listener of listeners) listener.close();
  }
});
