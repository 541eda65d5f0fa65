/**
 * Run inside a network namespace made by a test (`ip netns exec NS deno run -A port_usage_ns_cli.ts MODE`), where
 * nothing else opens or closes sockets. Prints one JSON document.
 * - `sockets`: opens every kind of socket the port-usage scan must count (and a UDP one it must not), then reports
 *   what each method finds, what `ss -Htan` lists and what a bind probe on 0.0.0.0 and [::] refuses.
 * - `torn`: reads /proc/net/tcp one row per read() and closes each listener right after its row: the rows the
 *   kernel then never prints belong to listeners that were open the whole time.
 * - `bound`: a TCP socket bound to 127.0.0.1:20555 that neither listens nor connects (Deno cannot make one: libc
 *   through FFI), and who sees it.
 * - `connect PORT COUNT`: opens COUNT connections to a listener on 127.0.0.1:PORT and prints their local ports.
 */
import dgram from "node:dgram";
import { bindFails } from "../../host/bind_scan.ts";
import { readProcLocalPorts } from "../../host/proc_net.ts";
import { openSockDiag } from "../../host/sock_diag.ts";
import { ssTcpSockets } from "./port_usage_sockets.ts";

/** The ports of the `sockets` mode: two ranges, listeners on their edges and just outside them. */
export const NS_RANGES: [number, number][] = [[20000, 20099], [20200, 20299]];
/** The namespace's `ip_local_port_range` in the `sockets` mode: inside the second range. */
export const NS_EPHEMERAL = "20200 20299";
/** A blackholed address (routed to `lo`, where nothing answers): a connect to it stays in SYN_SENT. */
export const BLACKHOLE = "10.255.255.1";

function portOf(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}

function bitmapPorts(bitmap: Uint8Array): number[] {
  const ports: number[] = [];
  bitmap.forEach((v, port) => v === 1 && ports.push(port));
  return ports;
}

async function waitForState(port: number, state: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if ((await ssTcpSockets("all")).some((s) => s.port === port && s.state === state)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`No socket on port ${port} reached ${state}`);
}

async function sockets() {
  await Deno.writeTextFile("/proc/sys/net/ipv4/ip_local_port_range", NS_EPHEMERAL);
  // Listeners: IPv4, IPv6, dual stack, IPv4-mapped, on both edges of the first range, and just outside it.
  const listeners = {
    v4: Deno.listen({ hostname: "127.0.0.1", port: 20000 }),
    v6: Deno.listen({ hostname: "::1", port: 20010 }),
    dual: Deno.listen({ hostname: "::", port: 20020 }),
    mapped: Deno.listen({ hostname: "::ffff:127.0.0.1", port: 20030 }),
    wildcard: Deno.listen({ hostname: "0.0.0.0", port: 20099 }),
    below: Deno.listen({ hostname: "127.0.0.1", port: 19999 }),
    above: Deno.listen({ hostname: "127.0.0.1", port: 20100 }),
  };
  const v4 = listeners.v4;

  // An outgoing connection, and the accepted side of one whose listener is gone.
  const outgoing = await Deno.connect({ hostname: "127.0.0.1", port: 20000 });
  const outgoingServer = await v4.accept();
  const acceptor = Deno.listen({ hostname: "127.0.0.1", port: 20040 });
  const acceptedClient = await Deno.connect({ hostname: "127.0.0.1", port: 20040 });
  const accepted = await acceptor.accept();
  acceptor.close();

  // A client port in TIME_WAIT: the client closes first.
  const closer = await Deno.connect({ hostname: "127.0.0.1", port: 20000 });
  const closerServer = await v4.accept();
  const timeWait = portOf(closer.localAddr);
  closer.close();
  closerServer.close();
  await waitForState(timeWait, "TIME-WAIT");

  const udp = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => udp.bind(20060, "0.0.0.0", resolve));

  // A connect that is never answered: SYN_SENT until it gives up. On a loaded machine one was seen gone by the time the
  // tables were read (1 full suite in 6): the tables are read again, with a new connect, until they hold one.
  let synSent = 0;
  let netlinkBitmap = new Uint8Array(65536);
  let proc: number[] = [];
  let all: Awaited<ReturnType<typeof ssTcpSockets>> = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    // Connects to different peers may share a local port: a socket is known by its local port and its peer.
    const blackholed = (s: { state: string; peer: string }) => s.state === "SYN-SENT" && s.peer === `${BLACKHOLE}:80`;
    const before = new Set((await ssTcpSockets("all")).filter(blackholed).map((s) => s.port));
    Deno.connect({ hostname: BLACKHOLE, port: 80 }).catch(() => {});
    synSent = 0;
    for (let i = 0; i < 500 && synSent === 0; i++) {
      synSent = (await ssTcpSockets("all")).find((s) => blackholed(s) && !before.has(s.port))?.port ?? 0;
      if (synSent === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const diag = openSockDiag();
    netlinkBitmap = new Uint8Array(65536);
    diag.markLocalPorts(netlinkBitmap);
    proc = bitmapPorts((await readProcLocalPorts()).ports);
    all = await ssTcpSockets("all");
    if (all.some((s) => s.port === synSent && blackholed(s))) break;
  }
  const bind: number[] = [];
  for (const [start, end] of NS_RANGES) {
    for (let port = start; port <= end; port++) {
      if (bindFails(port, "0.0.0.0") || bindFails(port, "::")) bind.push(port);
    }
  }
  return {
    ports: {
      ...Object.fromEntries(Object.entries(listeners).map(([kind, listener]) => [kind, portOf(listener.addr)])),
      outgoing: portOf(outgoing.localAddr),
      outgoingServer: portOf(outgoingServer.localAddr),
      accepted: portOf(accepted.localAddr),
      acceptedClient: portOf(acceptedClient.localAddr),
      timeWait,
      synSent,
      udp: 20060,
    },
    states: all.map((s) => [s.port, s.state, s.peer]),
    netlink: bitmapPorts(netlinkBitmap),
    proc,
    ss: [...new Set(all.map((s) => s.port))].sort((a, b) => a - b),
    bind,
  };
}

function torn() {
  // The kernel's listening hash is hash(address) XOR port, masked to the table's size (at most 65,536 buckets).
  // 127.0.0.1 takes a block of 8,192 ports (every value of the low 13 bits); 127.0.0.2 takes 25 ports under each of
  // the 8 values of bits 13-15: whatever the hashes and the table's size, some of those share a bucket with 127.0.0.1.
  const listeners = new Map<number, Deno.Listener>();
  const key = (address: string, port: number) => (address === "127.0.0.1" ? 0 : 65536) + port;
  const open = (address: string, port: number) =>
    listeners.set(key(address, port), Deno.listen({ hostname: address, port }));
  for (let port = 24576; port < 32768; port++) open("127.0.0.1", port);
  for (let high = 0; high < 8; high++) {
    for (let port = 7232 + high * 8192; port < 7232 + high * 8192 + 25; port++) open("127.0.0.2", port);
  }
  const opened = listeners.size;
  // Each row of /proc/net/tcp is padded to 150 bytes: a 150-byte read returns one row, and each read resumes the walk.
  const file = Deno.openSync("/proc/net/tcp");
  const row = new Uint8Array(150);
  const decoder = new TextDecoder();
  const seen = new Set<number>();
  let reads = 0;
  for (;;) {
    const n = file.readSync(row);
    if (n === null) break;
    reads++;
    const m = /^\s*\d+: ([0-9A-F]{8}):([0-9A-F]{4}) [0-9A-F]{8}:[0-9A-F]{4} 0A/.exec(
      decoder.decode(row.subarray(0, n)),
    );
    if (!m) continue;
    const k = key(m[1] === "0100007F" ? "127.0.0.1" : "127.0.0.2", parseInt(m[2], 16));
    seen.add(k);
    listeners.get(k)?.close();
    listeners.delete(k);
  }
  file.close();
  // What is left open was open during the whole read, and was never printed.
  const hidden = listeners.size;
  for (const listener of listeners.values()) listener.close();
  return { opened, printed: seen.size, reads, hidden };
}

async function bound() {
  const libc = Deno.dlopen("libc.so.6", {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  }).symbols;
  const fd = libc.socket(2, 1, 0); // AF_INET, SOCK_STREAM
  // struct sockaddr_in: family (host order), port (network order), address.
  const address = new Uint8Array(16);
  new DataView(address.buffer).setUint16(0, 2, true);
  new DataView(address.buffer).setUint16(2, 20555, false);
  address.set([127, 0, 0, 1], 4);
  if (fd < 0 || libc.bind(fd, address, address.length) !== 0) throw new Error("Cannot bind a socket to 20555");
  const netlink = new Uint8Array(65536);
  openSockDiag().markLocalPorts(netlink);
  return {
    netlink: netlink[20555] === 1,
    proc: (await readProcLocalPorts()).ports[20555] === 1,
    ss: (await ssTcpSockets("all")).some((s) => s.port === 20555),
    bind: bindFails(20555, "0.0.0.0"),
  };
}

async function connect(port: number, count: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < count; i++) {
    conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    conns.push(await listener.accept());
  }
  const local = conns.filter((_, i) => i % 2 === 0).map((c) => portOf(c.localAddr));
  return { local };
}

if (import.meta.main) {
  const [mode, ...args] = Deno.args;
  const result = mode === "sockets"
    ? await sockets()
    : mode === "torn"
    ? await torn()
    : mode === "bound"
    ? await bound()
    : await connect(Number(args[0]), Number(args[1]));
  console.log(JSON.stringify(result));
  // The SYN_SENT connect never settles: leave without waiting for it.
  Deno.exit(0);
}
