/**
 * Port scan benchmark: with 5,000 listening sockets and 5,000 established connections open, one scan of
 * 1-65535 by reading /proc (in this process, as the daemon does every minute) against a whole `ss -Hltn` run and
 * against the original's bind method. Also times the first scan of a process, which reads the whole tables to
 * check their order. Run: `deno run -A bench/port_scan_bench.ts`.
 */
import { scanPortsByBind } from "../host/bind_scan.ts";
import { createProcPortReader, readListeningTcpPorts } from "../host/proc_net.ts";
import { usedPortsInRanges } from "../controllers/port_usage.ts";

const ALL: [number, number][] = [[1, 65535]];

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

async function time(runs: number, fn: () => Promise<unknown>): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  return median(samples);
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

const limit = openFileLimit();
// Each established connection costs two descriptors here (client and server side), each listener one.
let count = 5000;
if (limit < count * 3 + 200) {
  count = Math.floor((limit - 200) / 3);
  console.log(`Note: RLIMIT_NOFILE is ${limit}; using ${count} listeners and ${count} connections instead of 5,000`);
}

const listeners: Deno.Listener[] = [];
const conns: Deno.Conn[] = [];
try {
  for (let i = 0; i < count; i++) {
    // Half IPv4, half IPv6, so both tables are large.
    listeners.push(Deno.listen({ hostname: i % 2 ? "::1" : "127.0.0.1", port: 0 }));
  }
  for (let i = 0; i < count; i++) {
    const listener = listeners[i];
    const addr = listener.addr as Deno.NetAddr;
    const accepted = listener.accept();
    conns.push(await Deno.connect({ hostname: addr.hostname, port: addr.port }));
    conns.push(await accepted);
  }
  const tcp = (await Deno.readTextFile("/proc/net/tcp")).split("\n").length - 2;
  const tcp6 = (await Deno.readTextFile("/proc/net/tcp6")).split("\n").length - 2;
  console.log(`Open: ${count} listeners, ${count} established connections; rows: tcp ${tcp}, tcp6 ${tcp6}`);

  // The daemon's reader: its first read (whole tables, checking their order) is timed apart as `firstScanMs`.
  const read = createProcPortReader({ onOutOfOrder: (path) => console.log(`WARNING: ${path} lists a listener late`) });
  const firstStart = performance.now();
  await read();
  const firstMs = performance.now() - firstStart;
  const procScan = async () => usedPortsInRanges(await read(), ALL);
  const wholeScan = async () => usedPortsInRanges((await readListeningTcpPorts()).ports, ALL);
  const ssRun = () => new Deno.Command("ss", { args: ["-Hltn"], stdout: "piped", stderr: "null" }).output();
  // The bind method binds 127.0.0.1 here, not the original's 0.0.0.0: the benchmark touches loopback only.
  const bindScan = () => scanPortsByBind(ALL, { hostname: "127.0.0.1" });

  // The two must agree (IPv4 and IPv6 listeners often share a port number: ss lists both rows, we count the port once).
  const found = await procScan();
  const ssPorts = new Set(
    new TextDecoder().decode((await ssRun()).stdout).trim().split("\n").map((line) => {
      const local = line.trim().split(/\s+/)[3];
      return Number(local.slice(local.lastIndexOf(":") + 1));
    }),
  );
  const agree = found.length === ssPorts.size && found.every((p) => ssPorts.has(p));
  console.log(
    `Listening ports found: proc ${found.length}, ss ${ssPorts.size} (${agree ? "same set" : "DIFFERENT sets"})`,
  );

  // Context: a whole `cat` of the two tables, the kernel's own cost of producing them.
  const catRun = () =>
    new Deno.Command("cat", { args: ["/proc/net/tcp", "/proc/net/tcp6"], stdout: "null", stderr: "null" }).output();
  const [procMs, wholeMs, ssMs, catMs] = await timeInTurns(21, [procScan, wholeScan, ssRun, catRun]);
  const bindRuns = 3;
  const bindMs = await time(bindRuns, bindScan);
  const vsSs = procMs / ssMs;
  const vsBind = bindMs / procMs;
  console.log(`proc scan (in process), median of 21: ${procMs.toFixed(2)} ms (stops at the first connection row)`);
  console.log(
    `whole-table read, median of 21:        ${wholeMs.toFixed(2)} ms (first scan of a process: ${
      firstMs.toFixed(2)
    } ms)`,
  );
  console.log(`ss -Hltn (whole run), median of 21:   ${ssMs.toFixed(2)} ms`);
  console.log(`cat of both tables (whole run):        ${catMs.toFixed(2)} ms (the kernel's cost of the tables)`);
  console.log(`bind method, median of ${bindRuns}:            ${bindMs.toFixed(1)} ms`);
  console.log(`proc / ss = ${vsSs.toFixed(2)} (target <= 2)   bind / proc = ${vsBind.toFixed(0)}x (target >= 50x)`);
  console.log(
    `RESULT ${
      JSON.stringify({
        bench: "port_scan",
        listeners: count,
        established: count,
        procMs: Number(procMs.toFixed(3)),
        ssMs: Number(ssMs.toFixed(3)),
        wholeTablesMs: Number(wholeMs.toFixed(3)),
        firstScanMs: Number(firstMs.toFixed(3)),
        catMs: Number(catMs.toFixed(3)),
        bindMs: Number(bindMs.toFixed(1)),
        procOverSs: Number(vsSs.toFixed(3)),
        bindOverProc: Number(vsBind.toFixed(1)),
        sameSetAsSs: agree,
        withinTarget: vsSs <= 2 && vsBind >= 50,
      })
    }`,
  );
} finally {
  for (const conn of conns) conn.close();
  for (const listener of listeners) listener.close();
}
