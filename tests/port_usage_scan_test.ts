/** Port scanning against real sockets, with `ss -Hltn` as the referee. */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { parseProcNetTcpLine, readListeningTcpPorts } from "../host/proc_net.ts";
import { scanPortsByBind } from "../host/bind_scan.ts";
import { type PortRange, usedPortsInRanges } from "../controllers/port_usage.ts";
import { hasCommand, skipUnless } from "./support/prereq.ts";
import { openReusePortPair, ssListeningPorts, ssTcpSockets } from "./support/port_usage_sockets.ts";

const ignoreWithoutSs = skipUnless(hasCommand("ss"), "ss (Debian package iproute2) is not installed");

function portOf(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}

/** The sockets of one test: every kind the scan must count, and the kinds it must not. */
async function openSockets() {
  const v4 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const v6 = Deno.listen({ hostname: "::1", port: 0 });
  const dual = Deno.listen({ hostname: "::", port: 0 });
  const mapped = Deno.listen({ hostname: "::ffff:127.0.0.1", port: 0 });
  const reuse = await openReusePortPair();
  // Deno.listenDatagram needs --unstable-net; node:dgram opens the same kind of socket.
  const udp = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", resolve));
  const client = await Deno.connect({ hostname: "127.0.0.1", port: portOf(v4.addr) });
  const server = await v4.accept();
  const ports = {
    v4: portOf(v4.addr),
    v6: portOf(v6.addr),
    dual: portOf(dual.addr),
    mapped: portOf(mapped.addr),
    reuse: reuse.port,
    udp: udp.address().port,
    established: portOf(client.localAddr),
  };
  return {
    ports,
    listening: [ports.v4, ports.v6, ports.dual, ports.mapped, ports.reuse],
    async close() {
      client.close();
      server.close();
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      for (const listener of [v4, v6, dual, mapped]) listener.close();
      await reuse.close();
    },
  };
}

/** ss and our scan, taken until two ss runs around the scan agree (other processes open and close ports meanwhile). */
async function scanBesideSs(ranges: readonly PortRange[]): Promise<{ ours: number[]; ss: number[] }> {
  for (let attempt = 1;; attempt++) {
    const before = usedPortsInRanges(await ssListeningPorts(), ranges);
    const ours = usedPortsInRanges(await readListeningTcpPorts(), ranges);
    const after = usedPortsInRanges(await ssListeningPorts(), ranges);
    if (JSON.stringify(before) === JSON.stringify(after) || attempt === 5) return { ours, ss: after };
  }
}

Deno.test({
  name: "proc scan finds IPv4, IPv6, dual-stack, IPv4-mapped and SO_REUSEPORT listeners, not UDP or established ports",
  ignore: ignoreWithoutSs,
  async fn() {
    const sockets = await openSockets();
    try {
      const bitmap = await readListeningTcpPorts();
      const { ports } = sockets;
      for (const [kind, port] of Object.entries(ports)) {
        const expected = kind !== "udp" && kind !== "established";
        assert.equal(bitmap[port] === 1, expected, `${kind} port ${port}: listening should be ${expected}`);
      }
      // SO_REUSEPORT gives two rows with one port: it is one used port.
      const rows = (await Deno.readTextFile("/proc/net/tcp")).split("\n").map(parseProcNetTcpLine)
        .filter((s) => s?.listening && s.localPort === ports.reuse);
      assert.equal(rows.length, 2);
      assert.deepEqual(usedPortsInRanges(bitmap, [[ports.reuse, ports.reuse]]), [ports.reuse]);
    } finally {
      await sockets.close();
    }
  },
});

Deno.test({
  name: "proc scan equals ss -Hltn over the whole port space and over ranges edged by test listeners",
  ignore: ignoreWithoutSs,
  async fn() {
    const sockets = await openSockets();
    try {
      const sorted = [...sockets.listening].sort((a, b) => a - b);
      const low = sorted[0];
      const high = sorted[sorted.length - 1];
      const cases: PortRange[][] = [
        [[1, 65535]],
        [[low, high]], // both edges are listeners: inclusive bounds keep them
        [[low, low], [high, high]],
        [[low + 1, high - 1]], // both edges just inside: the two listeners are out
      ];
      for (const ranges of cases) {
        const { ours, ss } = await scanBesideSs(ranges);
        assert.deepEqual(ours, ss, `ranges ${JSON.stringify(ranges)}`);
      }
      const edged = usedPortsInRanges(await readListeningTcpPorts(), [[low, high]]);
      assert.equal(edged[0], low);
      assert.equal(edged[edged.length - 1], high);
      const inner = usedPortsInRanges(await readListeningTcpPorts(), [[low + 1, high - 1]]);
      assert.ok(!inner.includes(low) && !inner.includes(high));
    } finally {
      await sockets.close();
    }
  },
});

Deno.test("proc scan streams through a small buffer with the same result, and reads a huge table", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // Other processes may open or close ports between two reads: retry until two reads agree.
    let same = false;
    for (let attempt = 0; attempt < 5 && !same; attempt++) {
      const small = await readListeningTcpPorts({ bufferSize: 256 });
      const large = await readListeningTcpPorts();
      assert.equal(small[portOf(listener.addr)], 1);
      same = small.every((v, i) => v === large[i]);
    }
    assert.ok(same, "a 256-byte buffer and a 64 KiB buffer give the same ports");
  } finally {
    listener.close();
  }

  // A table of 200,000 sockets written to a temp file, as a busy host's would be.
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
    for (let i = 0; i < 200_000; i++) {
      const port = 1 + (i * 7919) % 65535;
      const state = i % 3 === 0 ? "0A" : "01";
      if (state === "0A") expected.add(port);
      const hex = port.toString(16).toUpperCase().padStart(4, "0");
      chunk += `${String(i).padStart(6)}: 0000000000000000FFFF00000100007F:${hex} ` +
        `00000000000000000000000000000000:0000 ${state} 00000000:00000000 00:00000000 00000000     0        0 1 1\n`;
      if (chunk.length > 60_000) {
        await file.write(encoder.encode(chunk));
        chunk = "";
      }
    }
    await file.write(encoder.encode(chunk.slice(0, -1))); // the last line without a newline still counts
    file.close();
    const bitmap = await readListeningTcpPorts({ paths: [path], bufferSize: 4096 });
    assert.deepEqual(usedPortsInRanges(bitmap, [[1, 65535]]), [...expected].sort((a, b) => a - b));
    await assert.rejects(
      readListeningTcpPorts({ paths: [path], bufferSize: 64 }),
      /Cannot read socket table ".*tcp6": a line is longer than the buffer/,
    );
    // IPv6 turned off: no tcp6 table, not an error; no tcp table is one.
    assert.ok(await readListeningTcpPorts({ paths: [`${dir}/missing6`] }));
    await assert.rejects(readListeningTcpPorts({ paths: [`${dir}/tcp`] }), /Cannot read socket table ".*\/tcp"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "bind method (the original's) finds listeners that conflict with an IPv4 bind, not ::1 only or UDP",
  ignore: ignoreWithoutSs,
  async fn() {
    const sockets = await openSockets();
    try {
      const { ports } = sockets;
      const ranges = Object.values(ports).sort((a, b) => a - b).map((p): PortRange => [p, p]);
      // 127.0.0.1, not the default 0.0.0.0: tests touch loopback only; the conflicts are the same for these listeners.
      const bitmap = await scanPortsByBind(ranges, { hostname: "127.0.0.1" });
      const expected: Record<string, boolean> = {
        v4: true,
        dual: true,
        mapped: true,
        reuse: true,
        v6: false, // an IPv6-only listener does not stop an IPv4 bind: the original missed it
        udp: false,
        // A client socket holds its local port without SO_REUSEADDR, so the bind fails: the original
        // counted outgoing connections' ports as used. The proc scan does not.
        established: true,
      };
      // Another process's IPv4 socket may hold one of our IPv6/UDP port numbers: ss tells.
      const others = new Set(
        (await ssTcpSockets("all")).filter((s) => !s.address.includes(":") || s.address === "*").map((s) => s.port),
      );
      for (const [kind, port] of Object.entries(ports)) {
        if (!expected[kind] && others.has(port)) continue;
        assert.equal(bitmap[port] === 1, expected[kind], `${kind} port ${port}`);
      }
      // Every listener ss lists in a range around ours that an IPv4 bind would meet is found by the bind method.
      const low = Math.min(...sockets.listening);
      const high = Math.max(...sockets.listening);
      const ipv4Reachable = async () =>
        new Set(
          (await ssTcpSockets("listening"))
            .filter((s) => ["127.0.0.1", "0.0.0.0", "*", "::", "::ffff:127.0.0.1"].includes(s.address))
            .map((s) => s.port).filter((p) => p >= low && p <= high),
        );
      const before = await ipv4Reachable();
      const byBind = await scanPortsByBind([[low, high]], { hostname: "127.0.0.1" });
      const after = await ipv4Reachable();
      const stable = [...before].filter((p) => after.has(p));
      assert.ok(stable.length >= 4);
      for (const port of stable) assert.equal(byBind[port], 1, `listener on ${port}`);
    } finally {
      await sockets.close();
    }
  },
});
