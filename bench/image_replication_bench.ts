/**
 * Image replication: (1) throughput of our copy of one image between two local dockerd, the sender and the receiver
 * each a process of its own with the daemon's V8 flags (the export endpoint on the daemon's HTTP server; the receiver
 * streams the body into `POST /images/load`), against `docker save | docker load` piped directly between the same two
 * stores; (2) the RSS growth of each of the two processes during the copies; (3) the spread simulation, tree against
 * star, for 10, 100 and 1,000 hosts. Size: 256 MiB, PD_BENCH_IMAGE_MB=1024 for 1 GiB. Needs root and dockerd.
 * Run: `deno run -A bench/image_replication_bench.ts`.
 */
import { V8_FLAGS } from "../config/config.ts";
import { simulateSpread } from "../controllers/image_replication/spread_sim.ts";
import { createDockerApiClient } from "../host/docker_api.ts";
import { removeDockerImage } from "../host/image_stream.ts";
import { dockerSavePipe, startDockerDaemon } from "../tests/support/docker_daemon.ts";
import { importLargeImage } from "../tests/support/large_image.ts";

const MIB = 1024 * 1024;
const SIZE_MB = Number(Deno.env.get("PD_BENCH_IMAGE_MB") ?? "256");
const ROUNDS = 3;
const REF = "registry.local:5000/polardb/engine:bench";
const CLI = new URL("../tests/support/image_copy_cli.ts", import.meta.url).pathname;

const [a, b] = await Promise.all([startDockerDaemon(), startDockerDaemon()]);
const clientB = createDockerApiClient(b.host);

function side(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `--v8-flags=${V8_FLAGS.join(",")}`, CLI, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]) / 1024;
}

/** The next line a child prints. */
function lineReader(child: Deno.ChildProcess): () => Promise<string> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  return async () => {
    while (!buffered.includes("\n")) {
      const next = await reader.read();
      if (next.done) throw new Error("The benchmark's child exited");
      buffered += next.value;
    }
    const line = buffered.slice(0, buffered.indexOf("\n"));
    buffered = buffered.slice(line.length + 1);
    return line;
  };
}

const sender = side(["serve", a.host, REF]);
const senderLine = lineReader(sender);
const { port } = JSON.parse(await senderLine());
const receiver = side(["receive", `http://127.0.0.1:${port}/images/export?ref=${encodeURIComponent(REF)}`, b.host]);
const receiverLine = lineReader(receiver);
const commands = receiver.stdin.getWriter();

/** One copy by the two processes; the RSS growth of each over its RSS just before. */
async function ours(): Promise<{ seconds: number; bytes: number; senderMb: number; receiverMb: number }> {
  const base = [rssMb(sender.pid), rssMb(receiver.pid)];
  const peak = [...base];
  const sample = () => {
    peak[0] = Math.max(peak[0], rssMb(sender.pid));
    peak[1] = Math.max(peak[1], rssMb(receiver.pid));
  };
  const sampler = setInterval(sample, 20);
  await commands.write(new TextEncoder().encode("copy\n"));
  const result = JSON.parse(await receiverLine());
  clearInterval(sampler);
  sample();
  return { ...result, senderMb: peak[0] - base[0], receiverMb: peak[1] - base[1] };
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)];
}

try {
  const id = await importLargeImage(a.socketPath, REF, { bytes: SIZE_MB * MIB, seed: 9 });
  const oursRuns: { seconds: number; bytes: number; senderMb: number; receiverMb: number }[] = [];
  const peerRuns: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate, so a slower moment of the shared machine hits both.
    oursRuns.push(await ours());
    await removeDockerImage(clientB, REF, { id });
    peerRuns.push(await dockerSavePipe(a, b, REF));
    await removeDockerImage(clientB, REF, { id });
  }
  const bytes = oursRuns[0].bytes;
  const oursS = median(oursRuns.map((r) => r.seconds));
  const peerS = median(peerRuns);
  const ratio = peerS / oursS;
  const senderMb = Math.max(...oursRuns.map((r) => r.senderMb));
  const receiverMb = Math.max(...oursRuns.map((r) => r.receiverMb));
  console.log(
    `image copy between two local dockerd (vfs), ${(bytes / MIB).toFixed(0)} MiB archive, median of ${ROUNDS}`,
  );
  console.log(
    `  ours (two processes, HTTP export -> load): ${oursS.toFixed(2)} s, ${(bytes / MIB / oursS).toFixed(0)} MiB/s`,
  );
  console.log(
    `  docker save | docker load (pipe):       ${peerS.toFixed(2)} s, ${(bytes / MIB / peerS).toFixed(0)} MiB/s`,
  );
  console.log(`  ours reaches ${ratio.toFixed(2)} of the pipe's throughput (target 0.8)`);
  console.log(
    `  RSS growth during a copy (most of ${ROUNDS}): sender ${senderMb.toFixed(1)} MB, receiver ` +
      `${receiverMb.toFixed(1)} MB (target 20); each copy, sender / receiver: ` +
      oursRuns.map((r) => `${r.senderMb.toFixed(1)} / ${r.receiverMb.toFixed(1)}`).join(", "),
  );

  const model = { bytes: 2.1e9, linkBytesPerSecond: 1.25e8, exportConcurrency: 2 };
  console.log(
    `spread of one version (${(model.bytes / 1e9).toFixed(1)} GB, ${model.linkBytesPerSecond / 1e6} MB/s links, ` +
      `${model.exportConcurrency} exports per source)`,
  );
  const spread: Record<string, unknown>[] = [];
  for (const receivers of [10, 100, 1000]) {
    const tree = simulateSpread({ ...model, receivers, strategy: "tree" });
    const star = simulateSpread({ ...model, receivers, strategy: "star" });
    console.log(
      `  N=${String(receivers).padEnd(4)} tree: ${String(tree.rounds).padStart(3)} rounds, depth ${tree.depth}, ` +
        `${tree.seconds.toFixed(0)} s | star: ${String(star.rounds).padStart(3)} rounds, ${star.seconds.toFixed(0)} s` +
        ` | star/tree ${(star.seconds / tree.seconds).toFixed(1)}x (log2 N = ${Math.log2(receivers).toFixed(1)})`,
    );
    spread.push({
      receivers,
      treeRounds: tree.rounds,
      treeSeconds: Math.round(tree.seconds),
      starRounds: star.rounds,
      starSeconds: Math.round(star.seconds),
    });
  }
  console.log(
    "RESULT " + JSON.stringify({
      bench: "image_replication",
      archiveMiB: Math.round(bytes / MIB),
      oursSeconds: Number(oursS.toFixed(3)),
      pipeSeconds: Number(peerS.toFixed(3)),
      ratio: Number(ratio.toFixed(2)),
      senderRssGrowthMb: Number(senderMb.toFixed(1)),
      receiverRssGrowthMb: Number(receiverMb.toFixed(1)),
      spread,
    }),
  );
} finally {
  await commands.close();
  await receiver.status;
  sender.kill("SIGTERM");
  await sender.status;
  clientB.close();
  await Promise.all([a.stop(), b.stop()]);
}
