/**
 * One side of an image copy (the benchmark, the peer fault tests), in a process of its own: its RSS is measured
 * alone, and a test can kill it in the middle of a stream.
 * `serve <docker-host> <ref>`: the export endpoint on the daemon's HTTP server; prints `{"port": N}`.
 * `receive <url> <docker-host>`: for every `copy` line on stdin, GET the url and stream the body into
 * `POST /images/load`; prints `{"seconds", "bytes", "id"}` per copy.
 */
import { getLogger } from "@logtape/logtape";
import { createImageExport } from "../../api/image_export.ts";
import { serveApp } from "../../api/server.ts";
import { createDockerApiClient } from "../../host/docker_api.ts";
import { dockerImageInfo, exportDockerImage, loadDockerImage } from "../../host/image_stream.ts";
import { limitStream } from "../../host/stream_limits.ts";

const [role, first, second] = Deno.args;

if (role === "serve") {
  const docker = createDockerApiClient(first);
  const endpoint = createImageExport({
    versionImages: () => Promise.resolve([second]),
    exportImage: async (ref, { signal }) =>
      (await dockerImageInfo(docker, ref)) ? await exportDockerImage(docker, ref, { signal }) : null,
    concurrency: 2,
    log: getLogger(["bench"]),
  });
  const server = serveApp(endpoint.app.fetch, { port: 0, hostname: "127.0.0.1", log: getLogger(["bench"]) });
  console.log(JSON.stringify({ port: server.port }));
  Deno.addSignalListener("SIGTERM", async () => {
    await server.shutdown();
    docker.close();
    Deno.exit(0);
  });
} else if (role === "receive") {
  const docker = createDockerApiClient(second);
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buffered = "";
  for await (const text of lines) {
    buffered += text;
    while (buffered.includes("\n")) {
      const line = buffered.slice(0, buffered.indexOf("\n"));
      buffered = buffered.slice(line.length + 1);
      if (line !== "copy") continue;
      let bytes = 0;
      const start = performance.now();
      const response = await fetch(first);
      if (response.status !== 200 || !response.body) throw new Error(`Export answered ${response.status}`);
      const onBytes = (n: number) => (bytes += n);
      const loaded = await loadDockerImage(docker, limitStream(response.body, { onBytes, stallMs: 60_000 }));
      const seconds = (performance.now() - start) / 1000;
      const id = (await dockerImageInfo(docker, loaded[0]))?.id;
      if (id !== response.headers.get("X-Image-Id")) throw new Error(`Loaded ${id}, not the advertised image`);
      console.log(JSON.stringify({ seconds, bytes, id }));
    }
  }
  docker.close();
} else {
  console.error("Usage: image_copy_cli.ts serve <docker-host> <ref> | receive <url> <docker-host>");
  Deno.exit(2);
}
