/**
 * Image replication end to end: two real dockerd and two daemon processes (nodes a and b, each its own port) against
 * the fake API server. b copies from a the versions it misses (same image IDs, then its availability ConfigMap lists
 * them), survives a's daemon killed in the middle of a stream (nothing partial, then the copy from a once it is
 * back), copies nothing with `off`, refuses and removes an image whose tag moved on a, and refuses hostile peers: one
 * that sends garbage, one that stalls, one whose Content-Length the disk check refuses.
 */
import { assert, assertEquals, assertStringIncludes } from "../support/assert.ts";
import { type DaemonProcess, freePort, runMain, startDaemon, waitFor } from "../support/daemon_process.ts";
import { hasDockerd, startDockerDaemon, type TestDockerDaemon } from "../support/docker_daemon.ts";
import { configMapObject, nodeObject } from "../support/faults_cluster.ts";
import { importLargeImage } from "../support/large_image.ts";
import { hasCommand, isRoot, skipUnless } from "../support/prereq.ts";
import { daemonPod, existingVersions, images, startImageCluster, versionConfigMap } from "../support/image_cluster.ts";
import type { FakeKubeApiServer } from "../fake_kube/server.ts";

const MB = 1024 * 1024;
const ENGINE = "registry.local:5000/polardb/engine:1.0";
const PFSD = "registry.local:5000/polardb/pfsd:1.0";
const BIG = "registry.local:5000/polardb/engine:3.0";
const MOVED = "registry.local:5000/polardb/engine:2.0";
const HOSTILE = "registry.local:5000/polardb/engine:4.0";
const HUGE = "registry.local:5000/polardb/engine:5.0";
const SECRET = "registry.local:5000/other/secret:1";
const FAKE_ID = `sha256:${"ab".repeat(32)}`;
/** The size of v-3's image in MiB: 24 by default, `PD_IMAGE_TEST_MB=200` for the large run. */
const BIG_MB = Number(Deno.env.get("PD_IMAGE_TEST_MB") ?? "24");

/** The availability ConfigMap a peer would write, holding `version` with these image IDs. */
function availability(node: string, version: string, ids: Record<string, string>): Record<string, unknown> {
  const details = [{ name: version, images: Object.keys(ids), missing: [], available: true, imageIds: ids }];
  return configMapObject(`polarstack-daemon-version-availability-${node}`, {
    data: { existingVersions: version, checkTime: "2026-12-01T00:00:00Z", details: JSON.stringify(details) },
  });
}

async function imageId(docker: TestDockerDaemon, ref: string): Promise<string | null> {
  const answer = await docker.request("GET", `/images/${ref}/json`);
  return answer.status === 200 ? JSON.parse(answer.text).Id : null;
}

async function allImages(docker: TestDockerDaemon): Promise<string[]> {
  return (JSON.parse((await docker.request("GET", "/images/json?all=1")).text) as { Id: string }[])
    .map((i) => i.Id).sort();
}

function events(server: FakeKubeApiServer, reason: string): string[] {
  return server.list("events", "default")
    .filter((e) => (e as { reason?: string }).reason === reason)
    .map((e) => (e as { message?: string }).message ?? "");
}

/** A peer that answers every export with `respond` (and 404 to everything else). */
function fakePeer(respond: () => Response): { port: number; close(): Promise<void> } {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    return new URL(request.url).pathname === "/api/v1/images/export" ? respond() : new Response("", { status: 404 });
  });
  return { port: server.addr.port, close: () => server.shutdown() };
}

/**
 * A peer that answers every request with a head announcing `length` bytes (beyond what any disk holds), then sends
 * a few bytes and holds the connection: written by hand, since an HTTP server would not announce what it does not send.
 */
function hugePeer(length: number): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open: Deno.Conn[] = [];
  const head = [
    "HTTP/1.1 200 OK",
    "Content-Type: application/x-tar",
    `X-Image-Id: ${FAKE_ID}`,
    `Content-Length: ${length}`,
    "",
    "",
  ].join("\r\n");
  const serving = (async () => {
    for await (const conn of listener) {
      open.push(conn);
      conn.read(new Uint8Array(65536)).then(() => conn.write(new TextEncoder().encode(`${head}xxxx`))).catch(() => {});
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // already closed by the receiver
        }
      }
      await serving.catch(() => {});
    },
  };
}

Deno.test({
  name: "image replication: two dockerd, two daemons: copy, a killed peer, off, a moved tag, hostile peers, 401/403",
  ignore: skipUnless(isRoot() && hasDockerd(), "needs root and dockerd (Debian package docker.io)"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const [dockerA, dockerB] = await Promise.all([startDockerDaemon(), startDockerDaemon()]);
    const dir = await Deno.makeTempDir({ prefix: "pd-img17-" });
    const [portA, portB] = [freePort(), freePort()];
    const ids: Record<string, string> = {};
    ids[ENGINE] = await importLargeImage(dockerA.socketPath, ENGINE, { bytes: 4 * MB, seed: 1 });
    ids[PFSD] = await importLargeImage(dockerA.socketPath, PFSD, { bytes: 1 * MB, seed: 2 });
    ids[BIG] = await importLargeImage(dockerA.socketPath, BIG, { bytes: BIG_MB * MB, seed: 3 });
    ids[MOVED] = await importLargeImage(dockerA.socketPath, MOVED, { bytes: 1 * MB, seed: 4 });
    await importLargeImage(dockerA.socketPath, SECRET, { bytes: 1 * MB, seed: 5 });
    const { server, daemonArgs } = await startImageCluster({
      "v-1": { pgEngineImage: ENGINE, pfsdImage: PFSD },
      "v-3": { pgEngineImage: BIG },
    }, { ports: [portA, portB], dir });
    const args = (node: string, docker: TestDockerDaemon, extra: string[]) => [
      ...daemonArgs(node, ["--docker-host", docker.host, "--image-store", "docker"]),
      ...extra,
    ];
    const startA = () => startDaemon(args("node-a", dockerA, []), { port: portA });
    const argsB = (mode: string) =>
      args("node-b", dockerB, [
        `--image-replication=${mode}`,
        // v-3's copy takes about 6 s, whatever its size: time to kill a in the middle.
        `--image-replication-bandwidth=${Math.round((BIG_MB * MB) / 6)}`,
        "--image-replication-stall-timeout=3s",
      ]);
    let a: DaemonProcess | null = await startA();
    let b: DaemonProcess | null = null;
    const peers: { close(): Promise<void> }[] = [];
    try {
      await waitFor(() => existingVersions(server, "node-a").length === 2, { what: "a's availability ConfigMap" });
      const before = await allImages(dockerB);

      await t.step("export: 401 without the audience-bound token, 403 for an image of no version", async () => {
        const url = (ref: string) => `${a!.url}/api/v1/images/export?ref=${encodeURIComponent(ref)}`;
        let response = await fetch(url(ENGINE));
        assertEquals(response.status, 401, await response.text());
        response = await fetch(url(ENGINE), { headers: { Authorization: `Bearer ${server.token}` } });
        assertEquals(
          response.status,
          401,
          `the API server's token is not bound to the daemons: ${await response.text()}`,
        );
        response = await fetch(url(SECRET), { headers: { Authorization: `Bearer ${server.peerToken}` } });
        assertEquals(response.status, 403);
        assertStringIncludes((await response.json()).message, "it is in no version ConfigMap");
      });

      await t.step(
        "auto: b copies v-1 and v-3 from a; a killed mid-stream leaves nothing, then a back gives it",
        async () => {
          b = await startDaemon(argsB("auto"), { port: portB });
          // v-1 first (name order), then v-3 in about 6 s: a is killed once a sixth of it arrived.
          await waitFor(async () => {
            const current = (await images(b!)).transfers[0];
            return current?.ref === BIG && current.state === "copying" && current.bytesDone >= (BIG_MB * MB) / 6;
          }, { what: "b receiving v-3's image", timeoutMs: 60_000 });
          assertEquals(await imageId(dockerB, ENGINE), ids[ENGINE]);
          assertEquals(await imageId(dockerB, PFSD), ids[PFSD]);
          a!.child.kill("SIGKILL");
          await a!.stop();
          a = null;
          const cut = await waitFor(async () => (await images(b!)).transfers.find((x) => x.ref === BIG && x.failure), {
            what: "the cut transfer",
          });
          assertEquals(cut.failure, "StreamCut");
          assertEquals(await imageId(dockerB, BIG), null);
          assertEquals(
            await allImages(dockerB),
            [...before, ids[ENGINE], ids[PFSD]].sort(),
            "no partial image, not even a dangling one",
          );
          a = await startA();
          await waitFor(async () => (await imageId(dockerB, BIG)) === ids[BIG], {
            what: "v-3 copied from a once back",
            timeoutMs: 60_000,
          });
          await waitFor(() => existingVersions(server, "node-b").join() === "v-1,v-3", {
            what: "b's availability ConfigMap listing v-1 and v-3",
          });
          const copied = events(server, "CoreVersionCopied");
          assert(
            copied.some((m) =>
              /^Copied version v-1 \(2 images, 5\.\d MB\) from node node-a in \d+ s \(\d+ MB\/s\)$/.test(m)
            ),
            copied.join("\n"),
          );
          assert(copied.some((m) => m.startsWith("Copied version v-3 (1 image, ")), copied.join("\n"));
          const metrics = await (await fetch(`${b.url}/metrics`)).text();
          const bytes = Number(/^polarstack_daemon_image_replication_bytes_total (\S+)$/m.exec(metrics)?.[1]);
          assert(bytes >= (BIG_MB + 5) * MB, `bytes copied ${bytes}`);
          assertStringIncludes(metrics, 'polarstack_daemon_image_replication_transfers_total{outcome="success"} 3');
          assertStringIncludes(metrics, 'polarstack_daemon_image_replication_transfers_total{outcome="StreamCut"} 1');
          assertStringIncludes(metrics, "polarstack_daemon_image_replication_active_transfers 0");
          if (hasCommand("promtool")) {
            const check = await new Deno.Command("promtool", {
              args: ["check", "metrics"],
              stdin: "piped",
              stderr: "piped",
              stdout: "piped",
            }).spawn();
            const writer = check.stdin.getWriter();
            await writer.write(new TextEncoder().encode(metrics));
            await writer.close();
            const out = await check.output();
            assertEquals(out.code, 0, new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout));
          }
        },
      );

      await t.step("off: a new version on a is not copied; a moved tag is refused and removed", async () => {
        await b!.stop();
        b = await startDaemon(argsB("off"), { port: portB });
        server.put(versionConfigMap("v-2", { pgEngineImage: MOVED }));
        await waitFor(() => existingVersions(server, "node-a").includes("v-2"), { what: "a listing v-2" });
        await waitFor(async () => {
          const versions = (await (await fetch(`${b!.url}/api/v1/versions`)).json()).data?.versions ?? [];
          return versions.some((v: { name: string }) => v.name === "v-2");
        }, { what: "b's check seeing v-2" });
        // Nothing happens with off: a span for a copy to start, had the check triggered one.
        await new Promise((r) => setTimeout(r, 1500));
        assertEquals((await images(b)).transfers, []);
        assertEquals(await imageId(dockerB, MOVED), null);

        // The tag moves on a after a advertised it: a's ConfigMap still says the old ID.
        const movedId = await importLargeImage(dockerA.socketPath, MOVED, { bytes: 1 * MB, seed: 6 });
        const unauthorized = await fetch(`${b.url}/api/v1/ReplicateCoreVersion`, {
          method: "POST",
          body: JSON.stringify({ version: "v-2" }),
        });
        assertEquals(unauthorized.status, 401, await unauthorized.text());
        const asked = await fetch(`${b.url}/api/v1/ReplicateCoreVersion`, {
          method: "POST",
          headers: { Authorization: `Bearer ${server.peerToken}` },
          body: JSON.stringify({ version: "v-2" }),
        });
        assertEquals(asked.status, 200, await asked.text());
        const refused = await waitFor(
          async () => (await images(b!)).transfers.find((x) => x.ref === MOVED && x.failure),
          {
            what: "the moved tag refused",
            timeoutMs: 30_000,
          },
        );
        assertEquals(refused.failure, "ImageMismatch");
        const mismatch = await waitFor(() => events(server, "ImageMismatch")[0], { what: "the ImageMismatch Event" });
        assertStringIncludes(mismatch, `loaded ${movedId}`);
        assertStringIncludes(mismatch, `its details say ${ids[MOVED]}`);
        assertEquals(await imageId(dockerB, MOVED), null);
        assertEquals(await imageId(dockerB, movedId), null, "the loaded image is removed with its tag");
        // Asked again while a still advertises the old ID: refused without downloading it once more.
        const transfersBefore = (await images(b)).transfers.length;
        const again = await fetch(`${b.url}/api/v1/ReplicateCoreVersion`, {
          method: "POST",
          headers: { Authorization: `Bearer ${server.peerToken}` },
          body: JSON.stringify({ version: "v-2" }),
        });
        await again.body?.cancel();
        const noPeer = await waitFor(() => events(server, "CoreVersionCopyFailed")[0], { what: "the second refusal" });
        assertStringIncludes(noPeer, "sent another image than it advertises");
        assertEquals((await images(b)).transfers.length, transfersBefore);

        // once, as a person debugging the host would run it: the plan, nothing copied.
        const once = await runMain([
          ...argsB("off"),
          "once",
          "image-replication",
          "--version",
          "v-2",
          "--dry-run",
          "--json",
        ]);
        assertEquals(once.code, 0, once.stderr);
        assertEquals(JSON.parse(once.stdout).versions, [{
          version: "v-2",
          images: [MOVED],
          sources: ["node-a"],
          outcome: "planned",
        }]);
        const elsewhere = await runMain([
          ...argsB("off"),
          "once",
          "image-replication",
          "--version",
          "v-2",
          "--from",
          "node-x",
        ]);
        assertEquals(elsewhere.code, 1, elsewhere.stderr);
        assertStringIncludes(
          elsewhere.stderr,
          "Cannot copy version v-2: no peer holds it whole with image IDs (asked from node node-x)",
        );
      });

      await t.step(
        "hostile peers: a huge Content-Length is refused by the disk check, garbage and a stall load nothing",
        async () => {
          const huge = hugePeer(10 ** 15);
          const garbage = fakePeer(() => {
            const bytes = new Uint8Array(2 * MB);
            for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
            return new Response(bytes, { headers: { "X-Image-Id": FAKE_ID } });
          });
          const stall = fakePeer(() =>
            new Response(
              new ReadableStream({ start: (c) => c.enqueue(new Uint8Array(65536)), pull: () => new Promise(() => {}) }),
              { headers: { "X-Image-Id": FAKE_ID, "X-Image-Size": String(MB) } },
            )
          );
          peers.push(huge, garbage, stall);
          const beforeHostile = await allImages(dockerB);
          for (
            const [node, peer, version, ref] of [
              ["node-h", huge, "v-5", HUGE],
              ["node-g", garbage, "v-4", HOSTILE],
              ["node-s", stall, "v-4", HOSTILE],
            ] as const
          ) {
            server.put(nodeObject(node));
            server.put(daemonPod(node, peer.port));
            server.put(availability(node, version, { [ref]: FAKE_ID }));
          }
          server.put(versionConfigMap("v-5", { pgEngineImage: HUGE }));
          server.put(versionConfigMap("v-4", { pgEngineImage: HOSTILE }));
          await waitFor(async () => {
            const versions = (await (await fetch(`${b!.url}/api/v1/versions`)).json()).data?.versions ?? [];
            return versions.filter((v: { name: string }) => v.name === "v-4" || v.name === "v-5").length === 2;
          }, { what: "b's check seeing v-4 and v-5" });
          const post = (version: string) =>
            fetch(`${b!.url}/api/v1/ReplicateCoreVersion`, {
              method: "POST",
              headers: { Authorization: `Bearer ${server.peerToken}` },
              body: JSON.stringify({ version }),
            }).then((r) => r.body?.cancel());
          await post("v-5");
          const pressure = await waitFor(() => events(server, "DiskPressure")[0], { what: "the DiskPressure Event" });
          assertStringIncludes(pressure, "Cannot copy version v-5");
          assert(
            /would be \d+% full after the copy \(limit 85%\): 1\.0 PB needed, [\d.]+ [kMGT]?B free of/.test(pressure),
            pressure,
          );
          await post("v-4");
          await waitFor(async () => {
            const failures = new Set(
              (await images(b!)).transfers.filter((x) => x.ref === HOSTILE).map((x) => x.failure),
            );
            return failures.has("Garbage") && failures.has("Stalled");
          }, { what: "both hostile peers tried and refused", timeoutMs: 30_000 });
          assertEquals(await allImages(dockerB), beforeHostile);
        },
      );
    } finally {
      await Promise.all([a?.stop(), (b as DaemonProcess | null)?.stop(), ...peers.map((p) => p.close())]);
      await server.close();
      await Promise.all([dockerA.stop(), dockerB.stop()]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("once image-replication: usage errors name the flag", async () => {
  const missing = await runMain(["once", "image-replication", "--local", "--version"]);
  assertEquals(missing.code, 2, missing.stderr);
  assertStringIncludes(missing.stderr, "Flag --version needs a value");
  const elsewhere = await runMain(["once", "core-version", "--local", "--from", "node-a"]);
  assertEquals(elsewhere.code, 2, elsewhere.stderr);
  const local = await runMain(["once", "image-replication", "--local", "--version", "v-1", "--json"]);
  assertEquals(local.code, 0, local.stderr);
  assertEquals(JSON.parse(local.stdout).versions, []);
});
