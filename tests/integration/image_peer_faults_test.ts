/**
 * A receiver streaming from a peer over HTTP into a real dockerd, when the peer goes wrong: the peer's process is
 * killed in the middle of the stream (no image, not even a dangling one; the copy then succeeds once the peer is
 * back), a peer that sends garbage, and a peer that stalls (the stall timeout ends it, nothing is loaded).
 */
import { V8_FLAGS } from "../../config/config.ts";
import { createDockerApiClient } from "../../host/docker_api.ts";
import { dockerImageInfo, ImageLoadError, loadDockerImage } from "../../host/image_stream.ts";
import { limitStream, StreamStalledError } from "../../host/stream_limits.ts";
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { hasDockerd, startDockerDaemon, type TestDockerDaemon } from "../support/docker_daemon.ts";
import { importLargeImage } from "../support/large_image.ts";
import { isRoot, skipUnless } from "../support/prereq.ts";

const MB = 1024 * 1024;
const REF = "registry.local:5000/polardb/engine:1.0";
const CLI = new URL("../support/image_copy_cli.ts", import.meta.url).pathname;

/** Starts the export endpoint on the daemon's HTTP server in its own process; resolves with it and its URL. */
async function startPeer(docker: TestDockerDaemon): Promise<{ child: Deno.ChildProcess; url: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `--v8-flags=${V8_FLAGS.join(",")}`, CLI, "serve", docker.host, REF],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const next = await reader.read();
    if (next.done) throw new Error("The peer process exited before it listened");
    text += next.value;
  }
  reader.releaseLock();
  const { port } = JSON.parse(text.slice(0, text.indexOf("\n")));
  return { child, url: `http://127.0.0.1:${port}/images/export?ref=${encodeURIComponent(REF)}` };
}

async function allImages(docker: TestDockerDaemon): Promise<string[]> {
  const images = JSON.parse((await docker.request("GET", "/images/json?all=1")).text) as { Id: string }[];
  return images.map((i) => i.Id).sort();
}

Deno.test({
  name: "peer faults: a peer killed mid-stream, a peer that sends garbage, a peer that stalls: nothing is loaded",
  ignore: skipUnless(isRoot() && hasDockerd(), "needs root and dockerd (Debian package docker.io)"),
  async fn(t) {
    const [a, b] = await Promise.all([startDockerDaemon(), startDockerDaemon()]);
    const clientB = createDockerApiClient(b.host);
    try {
      const id = await importLargeImage(a.socketPath, REF, { bytes: 64 * MB, seed: 5 });
      const before = await allImages(b);

      await t.step("the peer's process is killed in the middle: no image; then the copy succeeds from it", async () => {
        const peer = await startPeer(a);
        const response = await fetch(peer.url);
        assertEquals(response.status, 200);
        assertEquals(response.headers.get("X-Image-Id"), id);
        let received = 0;
        let killedAt = -1;
        const onBytes = (n: number) => {
          received += n;
          if (killedAt < 0 && received >= 8 * MB) {
            killedAt = received;
            peer.child.kill("SIGKILL");
          }
        };
        await assertRejects(
          () => loadDockerImage(clientB, limitStream(response.body!, { onBytes, stallMs: 10_000 })),
          ImageLoadError,
        );
        await peer.child.status;
        assert(killedAt > 0 && received < 64 * MB, `received ${received} bytes, killed at ${killedAt}`);
        assertEquals(await allImages(b), before);
        assertEquals(await dockerImageInfo(clientB, REF), null);

        const back = await startPeer(a);
        try {
          const again = await fetch(back.url);
          assertEquals(await loadDockerImage(clientB, again.body!), [REF]);
          assertEquals((await dockerImageInfo(clientB, REF))?.id, id);
        } finally {
          back.child.kill("SIGTERM");
          await back.child.status;
        }
        await b.removeImage(REF);
        assertEquals(await allImages(b), before);
      });

      await t.step("a peer that sends garbage: refused, nothing loaded", async () => {
        const garbage = new Uint8Array(2 * MB);
        for (let i = 0; i < garbage.length; i += 65536) crypto.getRandomValues(garbage.subarray(i, i + 65536));
        const server = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen() {} },
          () => new Response(garbage, { headers: { "X-Image-Id": id } }),
        );
        try {
          const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
          await assertRejects(() => loadDockerImage(clientB, response.body!), ImageLoadError, "Cannot load image");
          assertEquals(await allImages(b), before);
        } finally {
          await server.shutdown();
        }
      });

      await t.step("a peer that stalls: the stall timeout ends the copy, nothing loaded", async () => {
        let cancelled = Promise.withResolvers<void>();
        const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
          cancelled = Promise.withResolvers<void>();
          const body = new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(new Uint8Array(64 * 1024));
            },
            pull: () => new Promise(() => {}),
            cancel: () => cancelled.resolve(),
          });
          return new Response(body, { headers: { "X-Image-Id": id } });
        });
        try {
          const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
          const error = await assertRejects(
            () => loadDockerImage(clientB, limitStream(response.body!, { stallMs: 500 })),
            ImageLoadError,
          );
          assert((error as ImageLoadError).inputError instanceof StreamStalledError, error.message);
          assertEquals(await allImages(b), before);
          // The receiver hung up, so the stalling peer's response ends too.
          await cancelled.promise;
        } finally {
          await server.shutdown();
        }
      });
    } finally {
      clientB.close();
      await Promise.all([a.stop(), b.stop()]);
    }
  },
});
