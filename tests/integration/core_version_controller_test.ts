/** The core-version job end to end: fake API server, a real dockerd, and real listeners for the fan-out. */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import type { V1ConfigMap, V1Pod } from "@kubernetes/client-node";
import { getLogger } from "@logtape/logtape";
import { defaultConfig } from "../../config/config.ts";
import { type CoreVersionResult, createCoreVersionController } from "../../controllers/core_version/job.ts";
import type { FanOutOutcome } from "../../controllers/core_version/fan_out.ts";
import { nullEventSink } from "../../core/types.ts";
import { createCommandRunner } from "../../host/command.ts";
import { coreVersionOptions } from "../../job_options.ts";
import { hasDockerd, startDockerDaemon } from "../support/docker_daemon.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";
import { jobDeps, testClock } from "../support/job_deps.ts";
import { isRoot, skipUnless } from "../support/prereq.ts";

const NS = "kube-system";
const LABELS = { configtype: "minor_version_info", dbClusterMode: "WriteReadMore", dbType: "PostgreSQL" };
const CM_NAME = "polarstack-daemon-version-availability-node-a";

function versionCm(
  name: string,
  data: Record<string, string>,
  { labels = LABELS }: { labels?: Record<string, string> } = {},
): V1ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: NS, labels }, data };
}

function pod(name: string, node: string, { ip, labels = { app: "polarstack-daemon" } }: {
  ip?: string;
  labels?: Record<string, string>;
} = {}): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, labels },
    spec: { nodeName: node, containers: [{ name: "daemon", image: "polarstack-daemon:1" }] },
    status: ip ? { podIP: ip, phase: "Running" } : { phase: "Pending" },
  };
}

function run(controller: { run: (ctx: { signal: AbortSignal; dryRun: boolean }) => Promise<unknown> }, dryRun = false) {
  return controller.run({ signal: AbortSignal.timeout(30_000), dryRun }) as Promise<
    { summary: string; result: CoreVersionResult }
  >;
}

Deno.test({
  name: "core-version against a real dockerd: availability ConfigMap, partial versions, writes only on change",
  ignore: skipUnless(isRoot() && hasDockerd(), "needs root and dockerd (Debian package docker.io)"),
  async fn(t) {
    const docker = await startDockerDaemon();
    const { server, kube, close } = await startFakeCluster({
      seed: [
        versionCm("postgresql-1-0-minor-version-info-rwo", { latestVersion: "image-open" }),
        versionCm("postgresql-1-0-minor-version-info-rwo-image-a", {
          name: "image-a",
          pfsdImage: "busybox",
          pgEngineImage: "docker.io/library/polardb-engine:1.0",
          pgManagerImage: "registry:5000/polardb/manager:1",
        }),
        versionCm("postgresql-1-0-minor-version-info-rwo-image-b", {
          name: "image-b",
          pfsdImage: "busybox:latest",
          pgEngineImage: "index.docker.io/library/polardb-engine:2.0",
        }),
        versionCm("postgresql-1-0-minor-version-info-rwo-no-name", { pgEngineImage: "busybox" }),
        versionCm("other-mode", { name: "image-x", pgEngineImage: "busybox" }, {
          labels: { ...LABELS, dbClusterMode: "Standalone" },
        }),
      ],
    });
    const clock = testClock("2026-05-01T10:00:00.250Z");
    const config = defaultConfig({ currentNodeName: "node-a", dockerHost: docker.host, imageStore: "auto" });
    const deps = jobDeps({
      kube,
      clock,
      events: nullEventSink,
      log: getLogger(["test", "core-version"]),
      runCommand: createCommandRunner(),
    });
    const options = coreVersionOptions(config);
    const controller = createCoreVersionController(deps, options);
    const writes = () =>
      server.requests.filter((r) => (r.method === "PUT" || r.method === "POST") && r.path.includes("/configmaps"));
    try {
      const firstId = await docker.importImage(["busybox:latest", "polardb-engine:1.0"]);

      await t.step("the contract: name, schedule, start", () => {
        assertEquals(controller.name, "core-version");
        assertEquals(controller.schedule, { cron: "*/10 * * * *" });
        assertEquals(controller.runAtStart, true);
      });

      await t.step("first check: one version missing an image, the other missing another", async () => {
        const { summary, result } = await run(controller);
        assertEquals(result, {
          node: "node-a",
          store: "docker",
          versions: [
            {
              name: "image-a",
              configMap: "postgresql-1-0-minor-version-info-rwo-image-a",
              images: ["busybox", "docker.io/library/polardb-engine:1.0", "registry:5000/polardb/manager:1"],
              missing: ["registry:5000/polardb/manager:1"],
              available: false,
              // The IDs of the images found, for the peers that copy the version.
              imageIds: { "busybox": firstId, "docker.io/library/polardb-engine:1.0": firstId },
            },
            {
              name: "image-b",
              configMap: "postgresql-1-0-minor-version-info-rwo-image-b",
              images: ["busybox:latest", "index.docker.io/library/polardb-engine:2.0"],
              missing: ["index.docker.io/library/polardb-engine:2.0"],
              available: false,
              imageIds: { "busybox:latest": firstId },
            },
          ],
          existingVersions: [],
          changed: true,
        });
        assertMatch(summary, /0 of 2 versions available; docker .* lists 3 image references; ConfigMap .* written/);
        const cm = server.get("configmaps", NS, CM_NAME);
        assertEquals(cm.data.existingVersions, "");
        assertEquals(cm.data.checkTime, "2026-05-01T10:00:00Z");
        assertEquals(JSON.parse(cm.data.details), result.versions);
      });

      await t.step("images appear: both versions available, written in ConfigMap order", async () => {
        await docker.importImage(["registry:5000/polardb/manager:1"]);
        await docker.importImage(["polardb-engine:2.0"]);
        clock.advance(60_000);
        const { result } = await run(controller);
        assertEquals(result.existingVersions, ["image-a", "image-b"]);
        assert(result.versions.every((v) => v.available && v.missing.length === 0));
        assertEquals(result.changed, true);
        const cm = server.get("configmaps", NS, CM_NAME);
        assertEquals(cm.data.existingVersions, "image-a,image-b");
        assertEquals(cm.data.checkTime, "2026-05-01T10:01:00Z");
      });

      await t.step("nothing changed and the last write is recent: no write", async () => {
        server.clearRequests();
        clock.advance(10 * 60_000);
        const { summary, result } = await run(controller);
        assertEquals(result.changed, false);
        assertEquals(writes(), []);
        assertMatch(summary, /unchanged/);
        assertEquals(server.get("configmaps", NS, CM_NAME).data.checkTime, "2026-05-01T10:01:00Z");
      });

      await t.step("nothing changed but the last write is an hour old: written again", async () => {
        server.clearRequests();
        clock.advance(50 * 60_000);
        const { result } = await run(controller);
        assertEquals(result.changed, false);
        assertEquals(writes().length, 1);
        assertEquals(server.get("configmaps", NS, CM_NAME).data.checkTime, "2026-05-01T11:01:00Z");
      });

      await t.step("dry run: an image removed is reported, nothing written", async () => {
        await docker.removeImage("polardb-engine:2.0");
        server.clearRequests();
        clock.advance(60_000);
        const { summary, result } = await run(controller, true);
        assertEquals(result.existingVersions, ["image-a"]);
        assertEquals(result.versions[1].missing, ["index.docker.io/library/polardb-engine:2.0"]);
        assertEquals(result.changed, true);
        assertEquals(writes(), []);
        assertMatch(summary, /dry run: ConfigMap .* would be written/);
        assertEquals(server.get("configmaps", NS, CM_NAME).data.existingVersions, "image-a,image-b");
      });

      await t.step("the same check for real writes it", async () => {
        const { result } = await run(controller);
        assertEquals(result.changed, true);
        assertEquals(server.get("configmaps", NS, CM_NAME).data.existingVersions, "image-a");
      });

      await t.step("local mode: no version ConfigMaps, the store is still listed", async () => {
        const local = createCoreVersionController({ ...deps, kube: null }, options);
        const { summary, result } = await run(local);
        assertEquals(result, {
          node: "node-a",
          store: "docker",
          versions: [],
          existingVersions: [],
          changed: false,
        });
        assertMatch(summary, /^Local mode: no version ConfigMaps to check; docker/);
      });

      await t.step("an image store that cannot be listed fails the run with the reason", async () => {
        const broken = createCoreVersionController(
          deps,
          coreVersionOptions({
            ...config,
            imageStore: "docker",
            dockerHost: `unix://${docker.socketPath}.missing`,
          }),
        );
        let message = "";
        await run(broken).catch((error) => (message = error.message));
        assertEquals(
          message,
          `Cannot list images: Docker at unix://${docker.socketPath}.missing: no such socket (in a pod, mount the host's ${docker.socketPath}.missing)`,
        );
      });
    } finally {
      await close();
      await docker.stop();
    }
  },
});

interface Listener {
  readonly ip: string;
  readonly requests: Array<{ path: string; body: string; authorization: string | null }>;
  readonly server: Deno.HttpServer;
}

function listen(address: { ip: string; port: number }, answer: () => Promise<Response> | Response): Listener {
  const { ip, port } = address;
  const requests: Listener["requests"] = [];
  const server = Deno.serve({ hostname: ip, port, onListen() {} }, async (request) => {
    requests.push({
      path: new URL(request.url).pathname,
      body: await request.text(),
      authorization: request.headers.get("Authorization"),
    });
    return answer();
  });
  return { ip, requests, server };
}

function canListen(ip: string, port: number): boolean {
  try {
    Deno.listen({ hostname: ip, port }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("fan-out: other daemons are called at <podIP>:<port>, this node and pods without IP skipped", async (t) => {
  // One port free on every address we need: pod IPs differ, the port is the daemon's --port for all.
  let port = 0;
  for (let i = 0; i < 20 && port === 0; i++) {
    const probe = Deno.listen({ hostname: "127.0.0.2", port: 0 });
    const candidate = (probe.addr as Deno.NetAddr).port;
    probe.close();
    if (["127.0.0.3", "127.0.0.5", "127.0.0.6"].every((ip) => canListen(ip, candidate))) port = candidate;
  }
  assert(port > 0, "no port free on 127.0.0.2-6");
  const ipv6 = canListen("::1", port);
  const release = Promise.withResolvers<void>();
  const listeners = [
    listen({ ip: "127.0.0.2", port }, () => new Response(JSON.stringify({ code: "1", data: "OK" }))),
    listen({ ip: "127.0.0.3", port }, () => new Response(JSON.stringify({ code: "1", data: "OK" }))),
    listen({ ip: "127.0.0.5", port }, async () => {
      await release.promise;
      return new Response("late");
    }),
    listen({ ip: "127.0.0.6", port }, () => new Response("boom", { status: 500 })),
    ...(ipv6 ? [listen({ ip: "::1", port }, () => new Response("OK"))] : []),
  ];
  const { server, kube, close } = await startFakeCluster({
    seed: [
      pod("daemon-a", "node-a", { ip: "127.0.0.4" }),
      pod("daemon-b", "node-b", { ip: "127.0.0.2" }),
      pod("daemon-c", "node-c", { ip: "127.0.0.3" }),
      pod("daemon-d", "node-d"),
      pod("daemon-e", "node-e", { ip: "127.0.0.5" }),
      pod("daemon-f", "node-f", { ip: "127.0.0.6" }),
      pod("unrelated", "node-g", { ip: "127.0.0.2", labels: { app: "something-else" } }),
      ...(ipv6 ? [pod("daemon-h", "node-h", { ip: "::1" })] : []),
    ],
  });
  // The token the fan-out sends, in a file as the kubelet projects it.
  const tokenDir = await Deno.makeTempDir({ prefix: "psd-core-version-" });
  const peerTokenFile = `${tokenDir}/token`;
  await Deno.writeTextFile(peerTokenFile, "peer-token\n");
  const config = defaultConfig({ currentNodeName: "Node-A", port, peerTokenFile });
  const deps = jobDeps({
    kube,
    clock: { now: () => new Date() },
    events: nullEventSink,
    log: getLogger(["test", "core-version"]),
    runCommand: createCommandRunner(),
  });
  const options = coreVersionOptions(config);
  const controller = createCoreVersionController(deps, options);
  const listPods = () => server.requests.filter((r) => r.method === "GET" && r.path.endsWith("/pods")).length;
  try {
    await t.step("fanOut() returns at once; the outcome lists every peer", async () => {
      assertEquals(controller.fanOutState(), {});
      const started = performance.now();
      controller.fanOut();
      assert(performance.now() - started < 50, "fanOut() must not wait");
      await controller.whenFanOutIdle();
      const outcome = controller.fanOutState().fanOut as FanOutOutcome;
      assert(!Number.isNaN(Date.parse(outcome.time)));
      const peers = [...outcome.peers].sort((a, b) => a.pod.localeCompare(b.pod));
      assertEquals(peers, [
        { pod: "daemon-b", node: "node-b", ip: "127.0.0.2", ok: true, status: 200 },
        { pod: "daemon-c", node: "node-c", ip: "127.0.0.3", ok: true, status: 200 },
        { pod: "daemon-e", node: "node-e", ip: "127.0.0.5", ok: false, error: "timed out after 3 s" },
        { pod: "daemon-f", node: "node-f", ip: "127.0.0.6", ok: false, status: 500 },
        ...(ipv6 ? [{ pod: "daemon-h", node: "node-h", ip: "::1", ok: true, status: 200 }] : []),
      ]);
    });

    await t.step("each peer got one POST /api/v1/InnerCheckCoreVersion naming this node", () => {
      for (const listener of listeners) {
        assertEquals(listener.requests, [{
          path: "/api/v1/InnerCheckCoreVersion",
          body: JSON.stringify({ HostName: "node-a" }),
          authorization: "Bearer peer-token",
        }], listener.ip);
      }
    });

    await t.step("many calls while one fan-out runs give exactly one more", async () => {
      server.remove("pods", NS, "daemon-e");
      server.clearRequests();
      for (const listener of listeners) listener.requests.length = 0;
      for (let i = 0; i < 100; i++) controller.fanOut();
      await controller.whenFanOutIdle();
      assertEquals(listPods(), 2);
      assertEquals(listeners[0].requests.length, 2);
      assertEquals(listeners[1].requests.length, 2);
      // Idle again: the next call starts a new fan-out.
      controller.fanOut();
      await controller.whenFanOutIdle();
      assertEquals(listPods(), 3);
    });

    await t.step("pods that cannot be listed: the outcome says why", async () => {
      server.injectFault({ method: "GET", pathPrefix: `/api/v1/namespaces/${NS}/pods`, count: 1, status: 403 });
      controller.fanOut();
      await controller.whenFanOutIdle();
      const outcome = controller.fanOutState().fanOut as FanOutOutcome;
      assertEquals(outcome.peers, []);
      assertMatch(outcome.error ?? "", /^Cannot notify the other daemons: .*403/);
    });

    await t.step("local mode: nobody to notify", async () => {
      const local = createCoreVersionController({ ...deps, kube: null }, options);
      local.fanOut();
      await local.whenFanOutIdle();
      assertEquals(local.fanOutState().fanOut?.peers, []);
      assertEquals(local.fanOutState().fanOut?.error, "Local mode: no other daemons to notify");
    });
  } finally {
    release.resolve();
    await close();
    await Promise.all(listeners.map((l) => l.server.shutdown()));
    await Deno.remove(tokenDir, { recursive: true });
  }
});
