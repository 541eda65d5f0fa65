/** The image store against a real dockerd and a real containerd, each on its own temporary socket. */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { normalizeImageRef } from "../controllers/core_version.ts";
import { createCommandRunner } from "../host/command.ts";
import { createDockerApiClient } from "../host/docker_api.ts";
import { listImages } from "../host/image_store.ts";
import { startContainerd } from "./support/containerd_daemon.ts";
import { hasDockerd, startDockerDaemon } from "./support/docker_daemon.ts";
import { hasCommand, isRoot, skipUnless } from "./support/prereq.ts";

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
          ok(/^1\.\d+$/.test(ping.headers.get("API-Version") ?? ""));
          strictEqual(await client.apiVersion(), ping.headers.get("API-Version"));
        } finally {
          client.close();
          raw.close();
        }
      });

      await t.step("tags under several names, normalised", async () => {
        await docker.importImage(["busybox:latest", "registry:5000/polardb/engine:1.0"]);
        await docker.importImage(["polardb/pfsd:2"]);
        const listing = await listImages({ kind: "auto", dockerHost: docker.host, runCommand });
        strictEqual(listing.store, "docker");
        strictEqual(listing.source, docker.host);
        deepStrictEqual(
          [...listing.refs].sort(),
          ["busybox:latest", "polardb/pfsd:2", "registry:5000/polardb/engine:1.0"],
        );
        const inventory = new Set(listing.refs.map(normalizeImageRef));
        ok(inventory.has(normalizeImageRef("docker.io/library/busybox:latest")));
        ok(inventory.has(normalizeImageRef("busybox")));
        ok(inventory.has(normalizeImageRef("docker.io/polardb/pfsd:2")));
        ok(inventory.has(normalizeImageRef("registry:5000/polardb/engine:1.0")));
        ok(!inventory.has(normalizeImageRef("polardb/engine:1.0")));
      });

      await t.step("an image removed since the last check is gone from the next listing", async () => {
        await docker.removeImage("polardb/pfsd:2");
        const listing = await listImages({ kind: "docker", dockerHost: docker.host, runCommand });
        deepStrictEqual([...listing.refs].sort(), ["busybox:latest", "registry:5000/polardb/engine:1.0"]);
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
        strictEqual(listing.store, "containerd");
        const inventory = new Set(listing.refs.map(normalizeImageRef));
        ok(inventory.has(normalizeImageRef("busybox:1.36")));
        ok(inventory.has(normalizeImageRef("registry:5000/polardb/engine")));
        ok(inventory.has(normalizeImageRef("registry:5000/polardb/engine:1.0")));
        ok(inventory.has(normalizeImageRef(`registry:5000/polardb/engine@${digest}`)));
        ok(inventory.has(normalizeImageRef(`registry:5000/polardb/engine:1.0@${digest}`)));
        ok(!inventory.has(normalizeImageRef(`busybox@${digest}`)));
        ok(!inventory.has(normalizeImageRef("busybox:latest")));
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
          strictEqual(listing.store, "containerd");
          ok(listing.refs.includes("docker.io/library/busybox:1.36"));
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });
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
    await rejects(
      listImages({ kind: "auto", dockerHost: `unix://${dir}/docker.sock`, runCommand }),
      {
        message:
          `Cannot list images: Docker at unix://${dir}/docker.sock: no such socket; containerd: ctr: command not found`,
      },
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
      await rejects(
        listImages({
          kind: "containerd",
          dockerHost: "unix:///nonexistent/docker.sock",
          containerdAddress: `${dir}/containerd.sock`,
          runCommand,
        }),
        { message: `Cannot list images: containerd: ctr: cannot connect to containerd at ${dir}/containerd.sock` },
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
    await rejects(
      listImages({ kind: "docker", dockerHost: `unix://${dir}/docker.sock`, runCommand }),
      { message: `Cannot list images: Docker at unix://${dir}/docker.sock: connection refused` },
    );
    await rejects(
      listImages({ kind: "docker", dockerHost: "ssh://host", runCommand }),
      {
        message:
          'Cannot list images: Docker at ssh://host: Invalid Docker host "ssh://host": expected unix:///path or tcp://host:port',
      },
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
    deepStrictEqual(listing.refs, ["a:1"]);
    deepStrictEqual(seen, ["/_ping", "/version", "/v1.24/images/json"]);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
