/**
 * Port scan benchmark: with 5,000 listeners, 5,000 established connections and 5,000 client ports in TIME_WAIT,
 * one scan of 1-65535 by each method in this process, against a whole `ss -Htan` run and the original's bind probe.
 * It runs itself inside a network namespace it makes (root and iproute2), so that nothing else opens or closes
 * sockets between the methods and all of them must report the same set.
 * Run: `deno run -A bench/port_scan_bench.ts`.
 */
import { scanPortsByBind } from "../host/bind_scan.ts";
import { readProcLocalPorts } from "../host/proc_net.ts";
import { openSockDiag } from "../host/sock_diag.ts";
import { usedPortsInRanges } from "../controllers/port_usage/ranges.ts";

const ALL: [number, number][] = [[1, 65535]];
const INSIDE = "--inside-namespace";

function openFileLimit(): number {
  const line = Deno.readTextFileSync("/proc/self/limits").split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.split(/\s{2,}/)[1] ?? "unlimited";
  return soft === "unlimited" ? Infinity : Number(soft);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Medians of several functions run in turns, so that a busy machine weighs on each alike. */
async function timeInTurns(runs: number, fns: (() => Promise<unknown>)[]): Promise<number[]> {
  const samples: number[][] = fns.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (const [k, fn] of fns.entries()) {
      const start = performance.now();
      await fn();
      samples[k].push(performance.now() - start);
    }
  }
  return samples.map(median);
}

function sameSet(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

/** Runs this file again inside a fresh namespace and passes its output through. */
async function runInNamespace(): Promise<number> {
  const name = `psd-bench-${crypto.randomUUID().slice(0, 8)}`;
  const ip = (...args: string[]) => new Deno.Command("ip", { args, stdout: "null", stderr: "inherit" }).output();
  if (!(await ip("netns", "add", name)).success) return -1;
  try {
    await ip("-n", name, "link", "set", "lo", "up");
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", name, Deno.execPath(), "run", "-A", new URL(import.meta.url).pathname, INSIDE],
      stdout: "inherit",
      stderr: "inherit",
    });
    return (await child.output()).code;
  } finally {
    await ip("netns", "del", name);
  }
}

async function bench(isolated: boolean): Promise<void> {
  const limit = openFileLimit();
  // Each established connection holds two descriptors (client and server side), each listener one.
  let count = 5000;
  if (limit < count * 3 + 200) {
    count = Math.floor((limit - 200) / 3);
    console.log(`Note: RLIMIT_NOFILE is ${limit}; using ${count} sockets of each kind instead of 5,000`);
  }
  if (!isolated) console.log("Note: not in a namespace of its own (needs root and ip): other sockets may move");
  const listeners: Deno.Listener[] = [];
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < count; i++) {
      // Half IPv4, half IPv6, so both tables are large.
      listeners.push(Deno.listen({ hostname: i % 2 ? "::1" : "127.0.0.1", port: 0 }));
    }
    const connect = async (listener: Deno.Listener) => {
      const addr = listener.addr as Deno.NetAddr;
      const accepted = listener.accept();
      return [await Deno.connect({ hostname: addr.hostname, port: addr.port }), await accepted] as const;
    };
    for (const listener of listeners) conns.push(...await connect(listener));
    // TIME_WAIT: the client closes first, then the server.
    for (const listener of listeners) {
      const [client, server] = await connect(listener);
      client.close();
      server.close();
    }
    const diag = openSockDiag();
    let timeWait = 0;
    const waitStart = performance.now();
    for (;;) {
      const ss = new TextDecoder().decode(
        (await new Deno.Command("ss", { args: ["-Htan", "state", "time-wait"], stdout: "piped" }).output()).stdout,
      );
      timeWait = ss.split("\n").filter((line) => line.trim() !== "").length;
      if (timeWait >= count || performance.now() - waitStart > 10_000) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const rows = (path: string) => Deno.readTextFileSync(path).split("\n").length - 2;
    console.log(
      `Open: ${count} listeners, ${count} established connections, ${timeWait} TIME_WAIT; ` +
        `rows: tcp ${rows("/proc/net/tcp")}, tcp6 ${rows("/proc/net/tcp6")}`,
    );

    let netlinkReceives = 0;
    const netlinkScan = () => {
      const bitmap = new Uint8Array(65536);
      netlinkReceives = diag.markLocalPorts(bitmap).receives;
      return Promise.resolve(usedPortsInRanges(bitmap, ALL));
    };
    let procReads = 0;
    const procScan = async () => {
      const read = await readProcLocalPorts();
      procReads = read.reads;
      return usedPortsInRanges(read.ports, ALL);
    };
    const ssRun = () => new Deno.Command("ss", { args: ["-Htan"], stdout: "piped", stderr: "null" }).output();
    // The original's probe: bind 0.0.0.0 port by port (safe here: the namespace is this benchmark's own).
    const bindHost = isolated ? "0.0.0.0" : "127.0.0.1";
    const bindScan = async () => usedPortsInRanges(await scanPortsByBind(ALL, { hostname: bindHost }), ALL);

    const netlink = await netlinkScan();
    const proc = await procScan();
    const ssPorts = [
      ...new Set(
        new TextDecoder().decode((await ssRun()).stdout).trim().split("\n").map((line) => {
          const local = line.trim().split(/\s+/)[3];
          return Number(local.slice(local.lastIndexOf(":") + 1));
        }),
      ),
    ].sort((a, b) => a - b);
    const bind = await bindScan();
    const bindSubset = bind.every((p) => netlink.includes(p));
    const agree = sameSet(netlink, proc) && sameSet(netlink, ssPorts);
    console.log(
      `Used ports found: netlink ${netlink.length}, /proc ${proc.length}, ss ${ssPorts.length} ` +
        `(${agree ? "same set" : "DIFFERENT sets"}); bind probe ${bind.length} ` +
        `(${bindSubset ? "a subset" : "NOT a subset"}: it misses ports held only by IPv6 sockets)`,
    );

    const [netlinkMs, procMs, ssMs] = await timeInTurns(21, [netlinkScan, procScan, ssRun]);
    const [bindMs] = await timeInTurns(3, [bindScan]);
    const kept = Math.min(netlinkMs, procMs);
    const keptName = netlinkMs <= procMs ? "netlink" : "proc";
    console.log(`netlink (in process), median of 21:  ${netlinkMs.toFixed(2)} ms (${netlinkReceives} receives)`);
    console.log(`/proc whole read, median of 21:      ${procMs.toFixed(2)} ms (${procReads} reads)`);
    console.log(`ss -Htan (whole run), median of 21:  ${ssMs.toFixed(2)} ms`);
    console.log(`bind probe, median of 3:             ${bindMs.toFixed(1)} ms`);
    console.log(
      `netlink / ss = ${(netlinkMs / ssMs).toFixed(2)}, proc / ss = ${
        (procMs / ssMs).toFixed(2)
      }; kept: ${keptName}, ` +
        `${keptName} / ss = ${(kept / ssMs).toFixed(2)} (target <= 1), bind / ${keptName} = ` +
        `${(bindMs / kept).toFixed(0)}x (target >= 25x)`,
    );
    console.log(
      `RESULT ${
        JSON.stringify({
          bench: "port_scan",
          listeners: count,
          established: count,
          timeWait,
          isolated,
          netlinkMs: Number(netlinkMs.toFixed(3)),
          procMs: Number(procMs.toFixed(3)),
          ssMs: Number(ssMs.toFixed(3)),
          bindMs: Number(bindMs.toFixed(1)),
          netlinkReceives,
          procReads,
          kept: keptName,
          keptOverSs: Number((kept / ssMs).toFixed(3)),
          bindOverKept: Number((bindMs / kept).toFixed(1)),
          sameSet: agree,
          bindSubset,
          withinTarget: agree && kept / ssMs <= 1 && bindMs / kept >= 25,
        })
      }`,
    );
    diag.close();
  } finally {
    for (const conn of conns) conn.close();
    for (const listener of listeners) listener.close();
  }
}

if (import.meta.main) {
  if (Deno.args.includes(INSIDE)) {
    await bench(true);
  } else {
    const code = Deno.uid() === 0 ? await runInNamespace() : -1;
    if (code === -1) await bench(false);
    else if (code !== 0) Deno.exit(code);
  }
}
