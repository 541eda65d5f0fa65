/**
 * Image streams between two real stores: two dockerd (own sockets and data roots), two containerd. An image is
 * copied through the export and load streams with the same ID; a cut, stalled or garbage stream leaves no image;
 * the bandwidth cap holds; statvfs agrees with `df`. Set PD_IMAGE_STREAM_MB=200 for a large image (default 8 MB).
 */
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { createCommandRunner, createStreamingCommandRunner } from "../../host/command.ts";
import { createDockerApiClient } from "../../host/docker_api.ts";
import {
  containerdContentRoot,
  containerdImageInfo,
  dockerImageInfo,
  dockerRootDir,
  exportContainerdImage,
  exportDockerImage,
  ImageLoadError,
  loadContainerdImage,
  loadDockerImage,
  removeContainerdImage,
  removeDockerImage,
} from "../../host/image_stream.ts";
import { dfFigures, statFs } from "../../host/statfs.ts";
import { limitStream, StreamStalledError } from "../../host/stream_limits.ts";
import { startContainerd } from "../support/containerd_daemon.ts";
import { hasDockerd, startDockerDaemon, type TestDockerDaemon } from "../support/docker_daemon.ts";
import { cutAtEntryBoundary, cutStream, importLargeImage } from "../support/large_image.ts";
import { hasCommand, isRoot, skipUnless } from "../support/prereq.ts";

const MB = 1024 * 1024;
const SIZE = Number(Deno.env.get("PD_IMAGE_STREAM_MB") ?? "8") * MB;
const runCommand = createCommandRunner();
const runStreaming = createStreamingCommandRunner();

/** Every image ID and tag the daemon lists, dangling ones included. */
async function allImages(docker: TestDockerDaemon): Promise<string[]> {
  const answer = await docker.request("GET", "/images/json?all=1");
  const images = JSON.parse(answer.text) as { Id: string; RepoTags: string[] | null }[];
  return images.flatMap((i) => [i.Id, ...(i.RepoTags ?? [])]).sort();
}

/** Bytes of an export, counted while they pass. */
function counted(stream: ReadableStream<Uint8Array>, into: { bytes: number }): ReadableStream<Uint8Array> {
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        into.bytes += chunk.length;
        controller.enqueue(chunk);
      },
    }),
  );
}

Deno.test({
  name: "Docker: an image streams from one dockerd to another with its ID; a cut or bad stream loads nothing",
  ignore: skipUnless(isRoot() && hasDockerd(), "needs root and dockerd (Debian package docker.io)"),
  async fn(t) {
    const [a, b] = await Promise.all([startDockerDaemon(), startDockerDaemon()]);
    const clientA = createDockerApiClient(a.host);
    const clientB = createDockerApiClient(b.host);
    try {
      const ref = "registry.local:5000/polardb/engine:1.0";
      const id = await importLargeImage(a.socketPath, ref, { bytes: SIZE, seed: 1 });
      const before = await allImages(b);

      await t.step("a stream cut in the middle leaves no image, not even a dangling one", async () => {
        const exported = await exportDockerImage(clientA, ref);
        assertEquals(exported.id, id);
        const at = Math.floor(exported.size / 2);
        const error = await assertRejects(
          () => loadDockerImage(clientB, cutStream(exported.stream, at)),
          ImageLoadError,
        );
        assert((error as ImageLoadError).inputError !== null, error.message);
        assertEquals(await allImages(b), before);
        assertEquals(await dockerImageInfo(clientB, ref), null);
      });

      await t.step("a stream cut between two tar entries leaves no image either", async () => {
        const cut = await cutAtEntryBoundary((await exportDockerImage(clientA, ref)).stream);
        assert(cut.at > 0 && cut.at < cut.total, `cut at ${cut.at} of ${cut.total}`);
        await assertRejects(() => loadDockerImage(clientB, cut.stream), ImageLoadError);
        assertEquals(await allImages(b), before);
      });

      await t.step("garbage is refused and leaves nothing", async () => {
        const garbage = ReadableStream.from([new TextEncoder().encode("this is not a tar archive\n".repeat(100))]);
        await assertRejects(() => loadDockerImage(clientB, garbage), ImageLoadError, "Cannot load image");
        assertEquals(await allImages(b), before);
      });

      await t.step("a stalled stream fails after its stall timeout and leaves nothing", async () => {
        const exported = await exportDockerImage(clientA, ref);
        const stalling = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new Uint8Array(512));
          },
          // Never sends more, never ends.
          pull: () => new Promise(() => {}),
        });
        await exported.stream.cancel();
        const limited = limitStream(stalling, { stallMs: 300 });
        const error = await assertRejects(() => loadDockerImage(clientB, limited), ImageLoadError);
        assert((error as ImageLoadError).inputError instanceof StreamStalledError, error.message);
        assertEquals(await allImages(b), before);
      });

      await t.step(
        "a dockerd that stops reading (SIGSTOP) fails the load after the stall timeout; nothing loads",
        async () => {
          const pid = Number(await Deno.readTextFile(b.socketPath.replace(/docker\.sock$/, "docker.pid")));
          const exported = await exportDockerImage(clientA, ref);
          Deno.kill(pid, "SIGSTOP");
          let error: Error;
          try {
            error = await assertRejects(
              () => loadDockerImage(clientB, exported.stream, { stallMs: 500 }),
              ImageLoadError,
            );
          } finally {
            Deno.kill(pid, "SIGCONT");
          }
          assertEquals(error.message, "Cannot load image: the Docker Engine took no data for 0.5 s");
          assertEquals((error as ImageLoadError).storeStalled?.stallMs, 500);
          assertEquals((error as ImageLoadError).inputError, null);
          assertEquals(await allImages(b), before);
        },
      );

      await t.step("the whole stream loads the same image ID under its tag", async () => {
        const exported = await exportDockerImage(clientA, ref);
        const sent = { bytes: 0 };
        const loaded = await loadDockerImage(clientB, counted(exported.stream, sent));
        assertEquals(loaded, [ref]);
        assertEquals((await dockerImageInfo(clientB, ref))?.id, id);
        // The size the store reports is what the disk check and progress use: the archive is about that big.
        assert(sent.bytes >= exported.size && sent.bytes < exported.size + MB, `${sent.bytes} vs ${exported.size}`);
      });

      await t.step("removing the loaded reference removes its image", async () => {
        await removeDockerImage(clientB, ref, { id });
        assertEquals(await dockerImageInfo(clientB, ref), null);
        assertEquals(await allImages(b), before);
        // Already gone: no error.
        await removeDockerImage(clientB, ref, { id });
      });

      await t.step("an image kept by another tag stays when one reference is removed", async () => {
        const exported = await exportDockerImage(clientA, ref);
        await loadDockerImage(clientB, exported.stream);
        const tagged = await b.request("POST", `/images/${id}/tag?repo=polardb/other&tag=keep`);
        assertEquals(tagged.status, 201);
        await removeDockerImage(clientB, ref, { id });
        assertEquals(await dockerImageInfo(clientB, ref), null);
        assertEquals((await dockerImageInfo(clientB, "polardb/other:keep"))?.id, id);
        await removeDockerImage(clientB, "polardb/other:keep", { id });
      });

      await t.step("the bandwidth cap holds the copy to its rate", async () => {
        const small = "polardb/pfsd:2";
        await importLargeImage(a.socketPath, small, { bytes: 2 * MB, seed: 2 });
        const exported = await exportDockerImage(clientA, small);
        const rate = 4 * MB;
        const sent = { bytes: 0 };
        const start = performance.now();
        await loadDockerImage(clientB, counted(limitStream(exported.stream, { bytesPerSecond: rate }), sent));
        const seconds = (performance.now() - start) / 1000;
        // The first piece goes at once, every later one waits its turn.
        const floor = (sent.bytes - 64 * 1024) / rate;
        assert(seconds >= floor, `${sent.bytes} bytes in ${seconds.toFixed(2)} s at a cap of 4 MiB/s`);
        assertEquals((await dockerImageInfo(clientB, small))?.id, (await dockerImageInfo(clientA, small))?.id);
      });

      await t.step(
        "statvfs of the data root agrees with df, and so does the df the runner runs on a host",
        async () => {
          const root = await dockerRootDir(clientB);
          const figures = statFs(root);
          const df = await runCommand(["df", "-B1", "--output=used,avail,size", root], { timeoutMs: 10_000 });
          const [used, avail, size] = df.stdout.trim().split("\n")[1].trim().split(/\s+/).map(Number);
          // The shared disk moves between the two reads: allow 64 MiB.
          assert(Math.abs(figures.usedBytes - used) < 64 * MB, `${figures.usedBytes} vs ${used}`);
          assert(Math.abs(figures.availableBytes - avail) < 64 * MB, `${figures.availableBytes} vs ${avail}`);
          assertEquals(figures.totalBytes, size);
          const viaRunner = await dfFigures(runCommand, root);
          assertEquals(viaRunner.totalBytes, figures.totalBytes);
          assert(Math.abs(viaRunner.availableBytes - figures.availableBytes) < 64 * MB, `${viaRunner.availableBytes}`);
          await assertRejects(
            () => dfFigures(runCommand, `${root}/no/such/dir`),
            Error,
            `Cannot read the free space of ${root}/no/such/dir with df: `,
          );
          assertEquals(
            (() => {
              try {
                statFs(`${root}/no/such/dir`);
              } catch (error) {
                return (error as Error).message;
              }
            })(),
            `statvfs of ${root}/no/such/dir failed: ENOENT`,
          );
        },
      );
    } finally {
      clientA.close();
      clientB.close();
      await Promise.all([a.stop(), b.stop()]);
    }
  },
});

async function ctrNames(address: string): Promise<string[]> {
  const result = await runCommand(["ctr", "--address", address, "-n", "k8s.io", "images", "ls", "-q"], {
    timeoutMs: 20_000,
  });
  return result.stdout.split("\n").filter(Boolean).sort();
}

Deno.test({
  name: "containerd: an image streams through ctr export and import with its ID; a cut stream imports nothing",
  ignore: skipUnless(
    isRoot() && hasCommand("containerd") && hasCommand("ctr") && hasDockerd(),
    "needs root, containerd, ctr and dockerd",
  ),
  async fn(t) {
    const [a, b, docker] = await Promise.all([startContainerd(), startContainerd(), startDockerDaemon()]);
    const ref = "registry.local:5000/polardb/engine:1.0";
    const streams = { runStreaming, timeoutMs: 120_000 };
    const dockerClient = createDockerApiClient(docker.host);
    try {
      // An image of SIZE made by Docker, so that a cut lands inside a layer; its ID is its config digest in both.
      const dockerId = await importLargeImage(docker.socketPath, ref, { bytes: SIZE, seed: 6 });
      await t.step("Docker's export imports into containerd with the same ID", async () => {
        const exported = await exportDockerImage(dockerClient, ref);
        await loadContainerdImage(exported.stream, { ...streams, address: a.address });
        assertEquals((await containerdImageInfo(runCommand, ref, { address: a.address }))?.id, dockerId);
      });
      const info = await containerdImageInfo(runCommand, ref, { address: a.address });
      assert(info !== null && info.size >= SIZE, JSON.stringify(info));

      await t.step("a stream cut between two tar entries imports no image", async () => {
        const exported = await exportContainerdImage(runCommand, ref, { ...streams, address: a.address });
        assertEquals(exported.id, info.id);
        const cut = await cutAtEntryBoundary(exported.stream);
        assert(cut.at > 0 && cut.at < cut.total, `cut at ${cut.at} of ${cut.total}`);
        const error = await assertRejects(
          () => loadContainerdImage(cut.stream, { ...streams, address: b.address }),
          ImageLoadError,
          "the stream failed",
        );
        assert((error as ImageLoadError).inputError !== null);
        assertEquals(await ctrNames(b.address), []);
      });

      await t.step("garbage is refused and imports nothing", async () => {
        const garbage = ReadableStream.from([new TextEncoder().encode("not a tar\n".repeat(200))]);
        await assertRejects(() => loadContainerdImage(garbage, { ...streams, address: b.address }), ImageLoadError);
        assertEquals(await ctrNames(b.address), []);
      });

      await t.step("the whole stream imports the same image ID", async () => {
        const exported = await exportContainerdImage(runCommand, ref, { ...streams, address: a.address });
        await loadContainerdImage(exported.stream, { ...streams, address: b.address });
        assertEquals((await containerdImageInfo(runCommand, ref, { address: b.address }))?.id, info.id);
      });

      await t.step("removing the reference removes the image", async () => {
        await removeContainerdImage(runCommand, ref, { address: b.address });
        assertEquals(await containerdImageInfo(runCommand, ref, { address: b.address }), null);
        await removeContainerdImage(runCommand, ref, { address: b.address });
      });

      await t.step(
        "the content root (for the disk check) is the content plugin's folder under containerd's root",
        async () => {
          const root = await containerdContentRoot(runCommand, { address: b.address });
          const dir = b.address.slice(0, b.address.lastIndexOf("/"));
          assertEquals(root, `${dir}/root/io.containerd.content.v1.content`);
          assert(Deno.statSync(root).isDirectory);
          await assertRejects(
            () => containerdContentRoot(runCommand, { address: `${dir}/absent.sock` }),
            Error,
            "ctr plugins ls exited with code 1",
          );
        },
      );

      await t.step("an export of a missing image says so", async () => {
        await assertRejects(
          () => exportContainerdImage(runCommand, "polardb/absent:1", { ...streams, address: a.address }),
          Error,
          "Cannot export image polardb/absent:1: no such image in containerd",
        );
      });
    } finally {
      dockerClient.close();
      await Promise.all([a.stop(), b.stop(), docker.stop()]);
    }
  },
});
