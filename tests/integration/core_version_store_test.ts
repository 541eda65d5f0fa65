/** The image store against a real dockerd and a real containerd, each on its own temporary socket. */
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { normalizeImageRef } from "../../controllers/core_version/image_ref.ts";
import { planCoreVersion } from "../../controllers/core_version/plan.ts";
import { createCommandRunner } from "../../host/command.ts";
import { createDockerApiClient } from "../../host/docker_api.ts";
import { listImages } from "../../host/image_store.ts";
import { containerdImageInfo, listContainerdImageIds } from "../../host/image_stream.ts";
import type { CommandRunner } from "../../host/command.ts";
import { startContainerd } from "../support/containerd_daemon.ts";
import { hasDockerd, startDockerDaemon } from "../support/docker_daemon.ts";
import { hasCommand, isRoot, skipUnless } from "../support/prereq.ts";

const runCommand = createCommandRunner();

Deno.test({
  name: "Docker: one listing gives every tag of every image; removed images go",
  ignore: skipUnless(isRoot() && hasDockerd(), "needs root and dockerd (Debian package docker.io)"),
  async fn(t) {
    const docker = await startDockerDaemon();
    try {
      await t.step("the API version comes from /_ping", async () => {
        const client = createDockerApiClient(docker.host);
        const raw = Deno.createHttpClient({ proxy: { transport: "unix", path: docker.socketPath } });
        try {
          const ping = await fetch("http://docker/_ping", { client: raw });
          await ping.body?.cancel();
          assert(/^1\.\d+$/.test(ping.headers.get("API-Version") ?? ""));
          assertEquals(await client.apiVersion(), ping.headers.get("API-Version"));
        } finally {
          client.close();
          raw.close();
        }
      });

      let engineId = "";
      let pfsdId = "";
      await t.step("tags under several names, normalised; every image's ID", async () => {
        engineId = await docker.importImage(["busybox:latest", "registry:5000/polardb/engine:1.0"]);
        pfsdId = await docker.importImage(["polardb/pfsd:2"]);
        const listing = await listImages({ kind: "auto", dockerHost: docker.host, runCommand });
        assertEquals(listing.store, "docker");
        assertEquals(listing.source, docker.host);
        assertEquals(
          [...listing.refs].sort(),
          ["busybox:latest", "polardb/pfsd:2", "registry:5000/polardb/engine:1.0", engineId, pfsdId].sort(),
        );
        const inventory = new Set(listing.refs.map(normalizeImageRef));
        assert(inventory.has(normalizeImageRef("docker.io/library/busybox:latest")));
        assert(inventory.has(normalizeImageRef("busybox")));
        assert(inventory.has(normalizeImageRef("docker.io/polardb/pfsd:2")));
        assert(inventory.has(normalizeImageRef("registry:5000/polardb/engine:1.0")));
        assert(!inventory.has(normalizeImageRef("polardb/engine:1.0")));
      });

      await t.step("an image ID in a version ConfigMap is found as the Engine's inspect finds it", async () => {
        const listing = await listImages({ kind: "docker", dockerHost: docker.host, runCommand });
        const inventory = new Set(listing.refs.map(normalizeImageRef));
        const hex = engineId.slice("sha256:".length);
        // Full, bare, short and one-digit (unique or not, as the two IDs happen to be) IDs, and a made-up one.
        const madeUp = `sha256:${(hex[0] === "0" ? "1" : "0").repeat(64)}`;
        const refs = [engineId, hex, hex.slice(0, 12), `sha256:${hex.slice(0, 12)}`, hex.slice(0, 1), madeUp];
        assert(pfsdId.startsWith("sha256:"));
        for (const ref of refs) {
          const inspect = await docker.request("GET", `/images/${encodeURIComponent(ref)}/json`);
          const plan = planCoreVersion({
            versions: [{ name: "v", configMap: "cm", images: [ref] }],
            inventory,
            previous: null,
            now: new Date(),
          }, { node: "node-a", reportIntervalMs: 3_600_000 });
          assertEquals(
            plan.versions[0].available,
            inspect.status === 200,
            `${ref}: inspect answered ${inspect.status}`,
          );
        }
        assertEquals((await docker.request("GET", `/images/${engineId}/json`)).status, 200, "the full ID is found");
      });

      await t.step("an image removed since the last check is gone from the next listing", async () => {
        await docker.removeImage("polardb/pfsd:2");
        const listing = await listImages({ kind: "docker", dockerHost: docker.host, runCommand });
        assertEquals(
          [...listing.refs].sort(),
          ["busybox:latest", "registry:5000/polardb/engine:1.0", engineId].sort(),
        );
      });
    } finally {
      await docker.stop();
    }
  },
});

Deno.test({
  name: "containerd: ctr lists tags and digest references of namespace k8s.io",
  ignore: skipUnless(
    isRoot() && hasCommand("containerd") && hasCommand("ctr"),
    "needs root, containerd and ctr (Debian package containerd)",
  ),
  async fn(t) {
    const containerd = await startContainerd();
    try {
      const digest = await containerd.importImage("registry:5000/polardb/engine", ["1.0", "latest"]);
      await containerd.importImage("docker.io/library/busybox", ["1.36"]);

      await t.step("image-store=containerd", async () => {
        const listing = await listImages({
          kind: "containerd",
          dockerHost: "unix:///nonexistent/docker.sock",
          containerdAddress: containerd.address,
          runCommand,
        });
        assertEquals(listing.store, "containerd");
        const inventory = new Set(listing.refs.map(normalizeImageRef));
        assert(inventory.has(normalizeImageRef("busybox:1.36")));
        assert(inventory.has(normalizeImageRef("registry:5000/polardb/engine")));
        assert(inventory.has(normalizeImageRef("registry:5000/polardb/engine:1.0")));
        assert(inventory.has(normalizeImageRef(`registry:5000/polardb/engine@${digest}`)));
        assert(inventory.has(normalizeImageRef(`registry:5000/polardb/engine:1.0@${digest}`)));
        assert(!inventory.has(normalizeImageRef(`busybox@${digest}`)));
        assert(!inventory.has(normalizeImageRef("busybox:latest")));
      });

      await t.step("image-store=auto falls back to containerd when no Docker socket answers", async () => {
        const dir = await Deno.makeTempDir({ prefix: "pd-nodocker-" });
        try {
          const listing = await listImages({
            kind: "auto",
            dockerHost: `unix://${dir}/docker.sock`,
            containerdAddress: containerd.address,
            runCommand,
          });
          assertEquals(listing.store, "containerd");
          assert(listing.refs.includes("docker.io/library/busybox:1.36"));
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });

      await t.step(
        "image IDs: one listing, each manifest read once, the config digest containerd itself names",
        async () => {
          let calls = 0;
          const counted: CommandRunner = (argv, options) => {
            calls++;
            return runCommand(argv, options);
          };
          const cache = new Map<string, string>();
          const target = { address: containerd.address };
          const images = await listContainerdImageIds(counted, target, { cache });
          const engine = images.find((i) => i.names.includes("registry:5000/polardb/engine:1.0"));
          const busybox = images.find((i) => i.names.includes("docker.io/library/busybox:1.36"));
          assertEquals(
            engine?.names.sort(),
            [
              "registry:5000/polardb/engine:1.0",
              `registry:5000/polardb/engine@${digest}`,
              "registry:5000/polardb/engine:latest",
            ].sort(),
          );
          assertEquals(
            engine?.id,
            (await containerdImageInfo(runCommand, "registry:5000/polardb/engine:1.0", target))?.id,
          );
          assertEquals(
            busybox?.id,
            (await containerdImageInfo(runCommand, "docker.io/library/busybox:1.36", target))?.id,
          );
          assert(engine?.id !== busybox?.id && /^sha256:[0-9a-f]{64}$/.test(engine?.id ?? ""));
          // ctr images ls, then one ctr content get per manifest (two images).
          assertEquals(calls, 3);
          calls = 0;
          assertEquals(await listContainerdImageIds(counted, target, { cache }), images);
          assertEquals(calls, 1, "the manifests are not read again");
        },
      );
    } finally {
      await containerd.stop();
    }
  },
});

Deno.test("image-store=auto with neither store says what was tried", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pd-nostore-" });
  const path = Deno.env.get("PATH") ?? "";
  // ctr must not be found: an empty folder as the only PATH entry.
  Deno.env.set("PATH", dir);
  try {
    assertEquals(
      (await assertRejects(
        () => listImages({ kind: "auto", dockerHost: `unix://${dir}/docker.sock`, runCommand }),
        Error,
      )).message,
      `Cannot list images: Docker at unix://${dir}/docker.sock: no such socket (in a pod, mount the host's ${dir}/docker.sock); containerd: ctr: command not found`,
    );
  } finally {
    Deno.env.set("PATH", path);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "image-store=containerd with no containerd at the address says so",
  ignore: skipUnless(hasCommand("ctr"), "needs ctr (Debian package containerd)"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pd-nocontainerd-" });
    try {
      assertEquals(
        (await assertRejects(() =>
          listImages({
            kind: "containerd",
            dockerHost: "unix:///nonexistent/docker.sock",
            containerdAddress: `${dir}/containerd.sock`,
            runCommand,
          }), Error)).message,
        `Cannot list images: containerd: ctr: cannot connect to containerd at ${dir}/containerd.sock: no such socket (in a pod, mount the host's ${dir}/containerd.sock)`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("image-store=docker does not try containerd; a file that is not a socket is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pd-notsocket-" });
  try {
    await Deno.writeTextFile(`${dir}/docker.sock`, "");
    assertEquals(
      (await assertRejects(
        () => listImages({ kind: "docker", dockerHost: `unix://${dir}/docker.sock`, runCommand }),
        Error,
      )).message,
      `Cannot list images: Docker at unix://${dir}/docker.sock: connection refused`,
    );
    assertEquals(
      (await assertRejects(() => listImages({ kind: "docker", dockerHost: "ssh://host", runCommand }), Error)).message,
      'Cannot list images: Docker at ssh://host: Invalid Docker host "ssh://host": expected unix:///path or tcp://host:port',
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an Engine API without the API-Version header: the version comes from /version", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pd-oldapi-" });
  const seen: string[] = [];
  const server = Deno.serve({ path: `${dir}/docker.sock`, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    seen.push(path);
    if (path === "/_ping") return new Response("OK");
    if (path === "/version") return Response.json({ ApiVersion: "1.24" });
    if (path === "/v1.24/images/json") {
      return Response.json([{ RepoTags: ["a:1", "<none>:<none>"], RepoDigests: ["<none>@<none>"] }, {
        RepoTags: null,
      }]);
    }
    return new Response("not found", { status: 404 });
  });
  try {
    const listing = await listImages({ kind: "docker", dockerHost: `unix://${dir}/docker.sock`, runCommand });
    assertEquals(listing.refs, ["a:1"]);
    assertEquals(seen, ["/_ping", "/version", "/v1.24/images/json"]);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
