/**
 * core-version check: 200 versions x 4 images against 1,000 local images served by a fake Docker Engine API on a
 * unix socket. Ours: one listing (`/_ping` + `/images/json`) and the pure plan. The original's method: one
 * `GET /images/{name}/json` per image, one after the other. Run: `deno run -A bench/core_version_bench.ts`.
 */
import { normalizeImageRef } from "../controllers/core_version/image_ref.ts";
import { planCoreVersion } from "../controllers/core_version/plan.ts";
import type { VersionSpec } from "../controllers/core_version/versions.ts";
import { createCommandRunner } from "../host/command.ts";
import { createDockerApiClient } from "../host/docker_api.ts";
import { listImages } from "../host/image_store.ts";

const IMAGES = 1000;
const VERSIONS = 200;
const PER_VERSION = 4;
const API = "1.41";

function imageName(i: number): string {
  return `registry.local:5000/polardb/component-${i % 50}:v${Math.floor(i / 50)}`;
}

const local = Array.from({ length: IMAGES }, (_, i) => imageName(i));
const localSet = new Set(local);
const summaries = local.map((name, i) => ({
  Id: `sha256:${i.toString(16).padStart(64, "0")}`,
  RepoTags: [name],
  RepoDigests: [`${name.slice(0, name.lastIndexOf(":"))}@sha256:${(i + 7).toString(16).padStart(64, "0")}`],
  Created: 1_600_000_000,
  Size: 1000,
}));
// Every 10th version needs one image that is not on the host.
const versions: VersionSpec[] = Array.from({ length: VERSIONS }, (_, v) => ({
  name: `11.2.2020${String(v).padStart(4, "0")}`,
  configMap: `version-${String(v).padStart(3, "0")}`,
  images: Array.from(
    { length: PER_VERSION },
    (_, k) =>
      v % 10 === 9 && k === 3 ? `registry.local:5000/polardb/absent:${v}` : imageName((v * PER_VERSION + k) % IMAGES),
  ),
}));

const dir = await Deno.makeTempDir({ prefix: "pd-bench-docker-" });
const socket = `${dir}/docker.sock`;
let calls = 0;
const server = Deno.serve({ path: socket, onListen() {} }, (request) => {
  calls++;
  const path = new URL(request.url).pathname;
  if (path === "/_ping") return new Response("OK", { headers: { "API-Version": API } });
  if (path === `/v${API}/images/json`) return Response.json(summaries);
  const inspect = /^\/v[\d.]+\/images\/(.+)\/json$/.exec(path);
  if (inspect) {
    const name = decodeURIComponent(inspect[1]);
    const index = local.indexOf(name);
    if (index < 0) return Response.json({ message: `No such image: ${name}` }, { status: 404 });
    return Response.json({ ...summaries[index], Config: {}, RootFS: { Type: "layers", Layers: [] } });
  }
  return Response.json({ message: "page not found" }, { status: 404 });
});

const runCommand = createCommandRunner();

async function ours(): Promise<string[]> {
  const listing = await listImages({ kind: "docker", dockerHost: `unix://${socket}`, runCommand });
  const plan = planCoreVersion({
    versions,
    inventory: new Set(listing.refs.map(normalizeImageRef)),
    previous: null,
    now: new Date(),
  }, { node: "bench", reportIntervalMs: 3_600_000 });
  return plan.existingVersions;
}

async function original(): Promise<string[]> {
  const docker = createDockerApiClient(`unix://${socket}`);
  try {
    const version = await docker.apiVersion();
    const existing: string[] = [];
    for (const v of versions) {
      let all = true;
      for (const image of v.images) {
        const answer = await docker.get(`/v${version}/images/${image}/json`);
        if (answer.status !== 200) all = false;
      }
      if (all) existing.push(v.name);
    }
    return existing;
  } finally {
    docker.close();
  }
}

async function measure(fn: () => Promise<string[]>, runs: number) {
  await fn(); // warm-up
  const times: number[] = [];
  let perRun = 0;
  let result: string[] = [];
  for (let i = 0; i < runs; i++) {
    calls = 0;
    const start = performance.now();
    result = await fn();
    times.push(performance.now() - start);
    perRun = calls;
  }
  times.sort((a, b) => a - b);
  return { medianMs: times[Math.floor(times.length / 2)], calls: perRun, result };
}

const a = await measure(ours, 21);
const b = await measure(original, 7);
await server.shutdown();
await Deno.remove(dir, { recursive: true });

const expected = versions.filter((v) => v.images.every((i) => localSet.has(i))).map((v) => v.name);
if (JSON.stringify(a.result) !== JSON.stringify(expected) || JSON.stringify(b.result) !== JSON.stringify(expected)) {
  throw new Error("The two methods disagree on the available versions");
}

const ratio = b.medianMs / a.medianMs;
console.log(
  `core-version check: ${VERSIONS} versions x ${PER_VERSION} images, ${IMAGES} local images (fake Docker API)`,
);
console.log(`  ours (one listing):          ${a.medianMs.toFixed(2)} ms, ${a.calls} Engine API calls`);
console.log(`  original (inspect per image): ${b.medianMs.toFixed(2)} ms, ${b.calls} Engine API calls`);
console.log(`  ours is ${ratio.toFixed(1)}x faster, with ${(b.calls / a.calls).toFixed(0)}x fewer calls`);
console.log(`  ${expected.length} of ${VERSIONS} versions available in both`);
console.log(
  "RESULT " + JSON.stringify({
    bench: "core_version",
    versions: VERSIONS,
    imagesPerVersion: PER_VERSION,
    localImages: IMAGES,
    oursMs: Number(a.medianMs.toFixed(3)),
    oursCalls: a.calls,
    originalMs: Number(b.medianMs.toFixed(3)),
    originalCalls: b.calls,
    ratio: Number(ratio.toFixed(2)),
  }),
);
