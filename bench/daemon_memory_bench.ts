/**
 * Resident memory of the daemon in cluster mode (fake API server, every job running, 500 ms network probe),
 * against a bare Deno process measured in the same run. Usage: deno run -A bench/daemon_memory_bench.ts [seconds]
 */
import { startFakeKubeApiServer } from "../tests/fake_kube/server.ts";
import { freePort, startDaemon } from "../tests/support/daemon_process.ts";

const seconds = Number(Deno.args[0] ?? 30);

function rssMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

function hwmMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
}

const bare = new Deno.Command(Deno.execPath(), {
  args: ["eval", "setTimeout(() => {}, 600000)"],
  stdout: "null",
  stderr: "null",
}).spawn();

const tmp = await Deno.makeTempDir({ prefix: "psd-mem-" });
await Deno.mkdir(`${tmp}/logs`);
const server = await startFakeKubeApiServer({
  seed: [{ apiVersion: "v1", kind: "Node", metadata: { name: "mem-node" }, status: { conditions: [] } }],
});
const daemon = await startDaemon([
  "--kubeconfig",
  server.kubeconfigPath,
  "--current-node-name",
  "mem-node",
  "--net-card-name",
  "lo",
  "--net-probe-interval",
  "500ms",
  "--dbcluster-log-dir",
  `${tmp}/logs`,
  "--docker-host",
  `unix://${tmp}/none.sock`,
], { port: freePort() });

const samples: number[] = [];
const t0 = Date.now();
while (Date.now() - t0 < seconds * 1000) {
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < 20; i++) await (await fetch(`${daemon.url}/api/v1/status`)).body?.cancel();
  samples.push(rssMb(daemon.child.pid));
}
const bareRss = rssMb(bare.pid);
const peak = hwmMb(daemon.child.pid);
bare.kill();
await bare.status;
await daemon.stop();
await server.close();
await Deno.remove(tmp, { recursive: true });

const warm = samples.slice(Math.floor(samples.length / 3));
const steady = warm.reduce((a, b) => a + b, 0) / warm.length;
const growth = (warm[warm.length - 1] - warm[0]) / warm[0] * 100;
console.log(`bare deno process:       ${bareRss.toFixed(1)} MB RSS`);
console.log(
  `daemon, steady (${seconds} s):  ${steady.toFixed(1)} MB RSS (peak ${peak.toFixed(1)} MB, growth after warm-up ${
    growth.toFixed(1)
  }%)`,
);
console.log(
  `ratio daemon / bare deno: ${(steady / bareRss).toFixed(2)}x; budget 96 MB: ${steady <= 96 ? "within" : "over"}`,
);
console.log(
  `RESULT ${
    JSON.stringify({
      bench: "daemon_memory",
      bareMb: +bareRss.toFixed(1),
      steadyMb: +steady.toFixed(1),
      peakMb: +peak.toFixed(1),
      growthPct: +growth.toFixed(1),
      ratio: +(steady / bareRss).toFixed(2),
    })
  }`,
);
