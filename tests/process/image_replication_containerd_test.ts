/**
 * Image replication end to end on containerd: two real containerd (own sockets and roots) and two daemon processes
 * (nodes a and b, `--image-store containerd --containerd-address <socket>`) against the fake API server. b copies
 * from a the version it misses (the same image ID, then its availability ConfigMap lists it); a's daemon killed in the
 * middle of a stream leaves no image on b, and b copies the version from a once a is back.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { type DaemonProcess, freePort, startDaemon, waitFor } from "../support/daemon_process.ts";
import { startContainerd } from "../support/containerd_daemon.ts";
import { ociImageTar } from "../support/docker_tar.ts";
import { hasCommand, isRoot, skipUnless } from "../support/prereq.ts";
import { existingVersions, images, startImageCluster } from "../support/image_cluster.ts";

const MB = 1024 * 1024;
const ENGINE = "registry.local:5000/polardb/engine:1.0";
const PFSD = "registry.local:5000/polardb/pfsd:1.0";
const BIG = "registry.local:5000/polardb/engine:2.0";
/**
 * Well beyond what the loopback's socket buffers hold (up to 10 MB were seen in flight behind b's cap), so a is still
 * sending when it is killed.
 */
const BIG_BYTES = 32 * MB;
/** b's cap: v-2's image takes about 6 s, time to kill a in the middle. */
const BANDWIDTH = BIG_BYTES / 6;

async function ctr(address: string, args: string[]): Promise<string> {
  const out = await new Deno.Command("ctr", {
    args: ["--address", address, "-n", "k8s.io", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (out.code !== 0) throw new Error(`ctr ${args.join(" ")} failed: ${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout);
}

/** Every image name in the store. */
async function names(address: string): Promise<string[]> {
  return (await ctr(address, ["images", "ls", "-q"])).split("\n").filter(Boolean).sort();
}

/** The image ID (config digest) of `ref`, read with ctr itself, or null when there is no such image. */
async function imageId(address: string, ref: string): Promise<string | null> {
  const row = (await ctr(address, ["images", "ls"])).split("\n").map((line) => line.trim().split(/\s+/))
    .find((cols) => cols[0] === ref);
  const digest = row?.find((col) => /^sha256:[0-9a-f]{64}$/.test(col));
  if (!digest) return null;
  return JSON.parse(await ctr(address, ["content", "get", digest])).config.digest;
}

Deno.test({
  name: "image replication: two containerd, two daemons: copy with the same ID, a killed peer leaves no image",
  ignore: skipUnless(
    isRoot() && hasCommand("containerd") && hasCommand("ctr"),
    "needs root, containerd and ctr (Debian package containerd)",
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const [ctrA, ctrB] = await Promise.all([startContainerd(), startContainerd()]);
    const dir = await Deno.makeTempDir({ prefix: "pd-img17-ctr-" });
    const [portA, portB] = [freePort(), freePort()];
    const ids: Record<string, string> = {};
    for (const [ref, bytes] of [[ENGINE, 2 * MB], [PFSD, 1 * MB], [BIG, BIG_BYTES]] as const) {
      const image = await ociImageTar(ref, [ref], { layerBytes: bytes });
      await ctrA.importArchive(image.tar);
      ids[ref] = image.id;
    }
    const { server, daemonArgs } = await startImageCluster({
      "v-1": { pgEngineImage: ENGINE, pfsdImage: PFSD },
      "v-2": { pgEngineImage: BIG },
    }, { ports: [portA, portB], dir });
    const args = (node: string, address: string, extra: string[]) => [
      ...daemonArgs(node, ["--image-store", "containerd", "--containerd-address", address]),
      ...extra,
    ];
    const startA = () => startDaemon(args("node-a", ctrA.address, []), { port: portA });
    let a: DaemonProcess | null = await startA();
    let b: DaemonProcess | null = null;
    try {
      await waitFor(() => existingVersions(server, "node-a").join() === "v-1,v-2", {
        what: "a's availability ConfigMap listing v-1 and v-2",
      });
      // a's version check read its containerd through the flag: every image's ID is the config digest.
      const published = server.get("configmaps", "kube-system", "polarstack-daemon-version-availability-node-a") as {
        data: { details: string };
      };
      const details = JSON.parse(published.data.details) as { name: string; imageIds: Record<string, string> }[];
      assertEquals(Object.assign({}, ...details.map((v) => v.imageIds)), ids);
      assertEquals(await names(ctrB.address), []);

      await t.step("b copies v-1 from a's containerd into its own: the same image IDs, then b lists v-1", async () => {
        b = await startDaemon(
          args("node-b", ctrB.address, [
            "--image-replication=auto",
            `--image-replication-bandwidth=${BANDWIDTH}`,
            "--image-replication-stall-timeout=3s",
          ]),
          { port: portB },
        );
        await waitFor(() => existingVersions(server, "node-b").includes("v-1"), {
          what: "b's availability ConfigMap listing v-1",
          timeoutMs: 20_000,
        });
        assertEquals(await imageId(ctrB.address, ENGINE), ids[ENGINE]);
        assertEquals(await imageId(ctrB.address, PFSD), ids[PFSD]);
        assertEquals(await imageId(ctrB.address, ENGINE), await imageId(ctrA.address, ENGINE));
      });

      await t.step("a killed in the middle of v-2's stream leaves no image on b; a back, b copies it", async () => {
        await waitFor(async () => {
          const current = (await images(b!)).transfers[0];
          return current?.ref === BIG && current.state === "copying" && current.bytesDone >= BIG_BYTES / 8;
        }, { what: "b receiving v-2's image", timeoutMs: 20_000 });
        a!.child.kill("SIGKILL");
        await a!.stop();
        a = null;
        const cut = await waitFor(async () => (await images(b!)).transfers.find((x) => x.ref === BIG && x.failure), {
          what: "the cut transfer",
        });
        assertEquals(cut.failure, "StreamCut");
        assertEquals(await names(ctrB.address), [ENGINE, PFSD].sort(), "no image of v-2, not even in part");
        assertEquals(existingVersions(server, "node-b"), ["v-1"]);

        a = await startA();
        await waitFor(async () => (await imageId(ctrB.address, BIG)) === ids[BIG], {
          what: "v-2 copied from a once back",
          timeoutMs: 30_000,
        });
        await waitFor(() => existingVersions(server, "node-b").join() === "v-1,v-2", {
          what: "b's availability ConfigMap listing v-1 and v-2",
        });
        const done = (await images(b!)).transfers.find((x) => x.ref === BIG && x.state === "done");
        assert(done && done.bytesDone >= BIG_BYTES, JSON.stringify(done));
      });
    } finally {
      await Promise.all([a?.stop(), (b as DaemonProcess | null)?.stop()]);
      await server.close();
      await Promise.all([ctrA.stop(), ctrB.stop()]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
