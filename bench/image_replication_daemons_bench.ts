/**
 * Image replication through the two daemons: the job on daemon b copies one version (one image) from daemon a
 * (`POST /api/v1/ReplicateCoreVersion`, done when b's `GET /api/v1/images` shows the transfer done), two local dockerd
 * and the fake API server, against `docker save | docker load` piped directly between the same two stores; with the
 * RSS growth of each daemon during its copies. Size: 256 MiB, PD_BENCH_IMAGE_MB=1024 for 1 GiB. Needs root and
 * dockerd. Run: `deno run -A bench/image_replication_daemons_bench.ts`.
 */
import { createDockerApiClient } from "../host/docker_api.ts";
import { removeDockerImage } from "../host/image_stream.ts";
import type { FakeKubeApiServer } from "../tests/fake_kube/server.ts";
import { freePort, startDaemon } from "../tests/support/daemon_process.ts";
import { dockerSavePipe, startDockerDaemon, type TestDockerDaemon } from "../tests/support/docker_daemon.ts";
import { startImageCluster } from "../tests/support/image_cluster.ts";
import { importLargeImage } from "../tests/support/large_image.ts";

const MIB = 1024 * 1024;
const SIZE_MB = Number(Deno.env.get("PD_BENCH_IMAGE_MB") ?? "256");
const ROUNDS = 3;
const REF = "registry.local:5000/polardb/engine:bench";
/**
 * How often the bench asks b's `GET /api/v1/images` whether the copy is done: a client watching the progress ten
 * times a second, which times the copy to 0.1 s. At 50 a second the answers' garbage alone grew b's V8 heap by about 4 MB
 * during a copy.
 */
const POLL_MS = 100;

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]) / 1024;
}

function median(values: number[]): number {
  return [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];
}

async function waitDone(url: string, round: number): Promise<{ bytes: number }> {
  for (;;) {
    const data = (await (await fetch(`${url}/api/v1/images`)).json()).data;
    const done = (data.transfers as { state: string; bytesDone: number }[]).filter((t) => t.state === "done");
    if (done.length > round) return { bytes: done[0].bytesDone };
    const failed = (data.transfers as { state: string; error?: string }[]).find((t) => t.state === "failed");
    if (failed) throw new Error(`The copy failed: ${failed.error}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

const [a, b] = await Promise.all([startDockerDaemon(), startDockerDaemon()]);
const clientB = createDockerApiClient(b.host);
const dir = await Deno.makeTempDir({ prefix: "pd-bench-img-" });
let server: FakeKubeApiServer | null = null;
const daemons: { stop(): Promise<number> }[] = [];
try {
  const id = await importLargeImage(a.socketPath, REF, { bytes: SIZE_MB * MIB, seed: 9 });
  const [portA, portB] = [freePort(), freePort()];
  const cluster = await startImageCluster({ bench: { pgEngineImage: REF } }, { ports: [portA, portB], dir });
  server = cluster.server;
  const args = (node: string, docker: TestDockerDaemon) =>
    cluster.daemonArgs(node, ["--docker-host", docker.host, "--image-store", "docker"]);
  const senderDaemon = await startDaemon(args("node-a", a), { port: portA });
  daemons.push(senderDaemon);
  const receiverDaemon = await startDaemon(args("node-b", b), { port: portB });
  daemons.push(receiverDaemon);
  // a's availability ConfigMap lists the version once its first check ran.
  while (!server.get("configmaps", "kube-system", "polarstack-daemon-version-availability-node-a")) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const ours: number[] = [];
  const pipe: number[] = [];
  let bytes = 0;
  let senderMb = 0;
  let receiverMb = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const base = [rssMb(senderDaemon.child.pid), rssMb(receiverDaemon.child.pid)];
    const peak = [...base];
    const sampler = setInterval(() => {
      peak[0] = Math.max(peak[0], rssMb(senderDaemon.child.pid));
      peak[1] = Math.max(peak[1], rssMb(receiverDaemon.child.pid));
    }, 20);
    const start = performance.now();
    const asked = await fetch(`${receiverDaemon.url}/api/v1/ReplicateCoreVersion`, {
      method: "POST",
      headers: { Authorization: `Bearer ${server.peerToken}` },
      body: JSON.stringify({ version: "bench" }),
    });
    await asked.body?.cancel();
    bytes = (await waitDone(receiverDaemon.url, round)).bytes;
    ours.push((performance.now() - start) / 1000);
    clearInterval(sampler);
    senderMb = Math.max(senderMb, peak[0] - base[0]);
    receiverMb = Math.max(receiverMb, peak[1] - base[1]);
    await removeDockerImage(clientB, REF, { id });
    // Alternate, so a slower moment of the shared machine hits both.
    pipe.push(await dockerSavePipe(a, b, REF));
    await removeDockerImage(clientB, REF, { id });
  }
  const [oursS, pipeS] = [median(ours), median(pipe)];
  console.log(`image copy through two daemons (two local dockerd, vfs), ${(bytes / MIB).toFixed(0)} MiB, median of 3`);
  console.log(
    `  ours (POST ReplicateCoreVersion, the job): ${oursS.toFixed(2)} s, ${(bytes / MIB / oursS).toFixed(0)} MiB/s`,
  );
  console.log(
    `  docker save | docker load (pipe):         ${pipeS.toFixed(2)} s, ${(bytes / MIB / pipeS).toFixed(0)} MiB/s`,
  );
  console.log(`  ratio (pipe time / ours): ${(pipeS / oursS).toFixed(2)} (target 0.8)`);
  console.log(
    `  RSS growth during a copy, sender / receiver daemon: ${senderMb.toFixed(1)} / ${receiverMb.toFixed(1)} MB`,
  );
  console.log(
    "RESULT " + JSON.stringify({
      bench: "image_replication_daemons",
      archiveMiB: Math.round(bytes / MIB),
      oursSeconds: Number(oursS.toFixed(3)),
      pipeSeconds: Number(pipeS.toFixed(3)),
      ratio: Number((pipeS / oursS).toFixed(2)),
      senderRssGrowthMb: Number(senderMb.toFixed(1)),
      receiverRssGrowthMb: Number(receiverMb.toFixed(1)),
    }),
  );
} finally {
  for (const daemon of daemons) await daemon.stop();
  await server?.close();
  clientB.close();
  await Promise.all([a.stop(), b.stop()]);
  await Deno.remove(dir, { recursive: true });
}
