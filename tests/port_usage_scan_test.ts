/** Port scanning against real sockets, with `ss -Hltn` as the referee. */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { createProcPortReader, parseProcNetTcpLine, readListeningTcpPorts } from "../host/proc_net.ts";
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
async function scanBesideSs(
  ranges: readonly PortRange[],
  read: () => Promise<Uint8Array>,
): Promise<{ ours: number[]; ss: number[] }> {
  for (let attempt = 1;; attempt++) {
    const before = usedPortsInRanges(await ssListeningPorts(), ranges);
    const ours = usedPortsInRanges(await read(), ranges);
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
      const bitmap = await createProcPortReader()();
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
      // The daemon's reader: the first read checks the tables' order, the later ones stop at the connections.
      const read = createProcPortReader({ onOutOfOrder: (path) => assert.fail(`${path} out of order`) });
      await read();
      for (const ranges of cases) {
        const { ours, ss } = await scanBesideSs(ranges, read);
        assert.deepEqual(ours, ss, `ranges ${JSON.stringify(ranges)}`);
      }
      const edged = usedPortsInRanges(await read(), [[low, high]]);
      assert.equal(edged[0], low);
      assert.equal(edged[edged.length - 1], high);
      const inner = usedPortsInRanges(await read(), [[low + 1, high - 1]]);
      assert.ok(!inner.includes(low) && !inner.includes(high));
    } finally {
      await sockets.close();
    }
  },
});

Deno.test({
  name: "Linux lists every listener before the first connection, so a read that stops there finds them all (ss agrees)",
  ignore: ignoreWithoutSs,
  async fn() {
    const early: Deno.Listener[] = [];
    const late: Deno.Listener[] = [];
    const conns: Deno.Conn[] = [];
    try {
      // Connections first, then listeners opened after them: the order the tables list is not the order of creation.
      for (let i = 0; i < 100; i++) early.push(Deno.listen({ hostname: i % 2 ? "::1" : "127.0.0.1", port: 0 }));
      for (const listener of early) {
        const accepted = listener.accept();
        const { hostname, port } = listener.addr as Deno.NetAddr;
        conns.push(await Deno.connect({ hostname, port }), await accepted);
      }
      for (let i = 0; i < 100; i++) late.push(Deno.listen({ hostname: i % 2 ? "::1" : "127.0.0.1", port: 0 }));

      const whole = await readListeningTcpPorts();
      assert.equal(whole.outOfOrderTable, null, "each table lists its listeners first");
      const stopped = await readListeningTcpPorts({ untilConnections: true });
      for (const listener of [...early, ...late]) {
        assert.equal(stopped.ports[portOf(listener.addr)], 1, `listener on ${portOf(listener.addr)}`);
      }
      for (const conn of conns.filter((_, i) => i % 2 === 0)) {
        // A client's local port is not listening (unless another socket happens to listen on that number).
        const port = portOf(conn.localAddr);
        if (whole.ports[port] === 0) assert.equal(stopped.ports[port], 0, `client port ${port}`);
      }
      const read = createProcPortReader({ onOutOfOrder: (path) => assert.fail(`${path} out of order`) });
      await read();
      const { ours, ss } = await scanBesideSs([[1, 65535]], read);
      assert.deepEqual(ours, ss);
    } finally {
      for (const conn of conns) conn.close();
      for (const listener of [...early, ...late]) listener.close();
    }
  },
});

Deno.test("the reader checks the order once, then stops at the connections; a listener after one makes every read whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "port_usage_order_" });
  const path = `${dir}/tcp`;
  const row = (slot: number, port: number, state: "0A" | "01") =>
    `${String(slot).padStart(4)}: 0100007F:${port.toString(16).toUpperCase().padStart(4, "0")} ` +
    `${
      state === "0A" ? "00000000:0000" : "0100007F:1F90"
    } ${state} 00000000:00000000 00:00000000 00000000     0        0 1 1\n`;
  // Listeners 1000-1009, then 500 connections (about 60 KB, several reads of the 16 KiB buffer), then `tail`.
  const table = (tail: number[], afterFirstConnection: number[] = []) => {
    let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
    for (let i = 0; i < 10; i++) text += row(i, 1000 + i, "0A");
    text += row(10, 40000, "01");
    for (const port of afterFirstConnection) text += row(11, port, "0A");
    for (let i = 0; i < 500; i++) text += row(20 + i, 40001 + i, "01");
    for (const port of tail) text += row(600, port, "0A");
    return text;
  };
  const used = (ports: Uint8Array) => usedPortsInRanges(ports, [[1, 65535]]);
  const warned: string[] = [];
  const read = createProcPortReader({ paths: [path], onOutOfOrder: (p) => warned.push(p) });
  const listeners = Array.from({ length: 10 }, (_, i) => 1000 + i);
  try {
    await Deno.writeTextFile(path, table([]));
    assert.deepEqual(used(await read()), listeners, "the first read, whole, finds the order Linux keeps");
    // A listener far after the connections is something Linux never prints: a read that stops early misses it,
    // which shows that it stopped.
    await Deno.writeTextFile(path, table([2000]));
    assert.deepEqual(used(await read()), listeners);
    assert.equal(warned.length, 0);
    // One right after the first connection lands in the same chunk: noticed, and the read is redone whole.
    await Deno.writeTextFile(path, table([2000], [3000]));
    assert.deepEqual(used(await read()), [...listeners, 2000, 3000]);
    assert.deepEqual(warned, [path]);
    // From then on every read is whole, and the warning is not repeated.
    await Deno.writeTextFile(path, table([2001]));
    assert.deepEqual(used(await read()), [...listeners, 2001]);
    assert.deepEqual(warned, [path]);

    // A table out of order at the first read: whole reads from the start.
    const other = createProcPortReader({ paths: [path], onOutOfOrder: (p) => warned.push(p) });
    await Deno.writeTextFile(path, table([2002]));
    assert.deepEqual(used(await other()), [...listeners, 2002]);
    await Deno.writeTextFile(path, table([2003]));
    assert.deepEqual(used(await other()), [...listeners, 2003]);
    assert.deepEqual(warned, [path, path]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("proc scan streams through a small buffer with the same result, and reads a huge table", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // Other processes may open or close ports between two reads: retry until two reads agree.
    let same = false;
    for (let attempt = 0; attempt < 5 && !same; attempt++) {
      const small = (await readListeningTcpPorts({ bufferSize: 256 })).ports;
      const large = (await readListeningTcpPorts()).ports;
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
    const { ports: bitmap } = await readListeningTcpPorts({ paths: [path], bufferSize: 4096 });
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
