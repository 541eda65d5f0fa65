/** Pure parts of image replication: peers' holdings, what to copy, which peer, retries, disk check, progress, spread. */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { normalizeImageRef } from "../../controllers/core_version/image_ref.ts";
import { planCoreVersion } from "../../controllers/core_version/plan.ts";
import { checkDisk } from "../../controllers/image_replication/disk.ts";
import {
  type PeerHoldings,
  planReplication,
  rankPeers,
  readPeerHoldings,
  verifyLoaded,
} from "../../controllers/image_replication/plan.ts";
import {
  advanceProgress,
  copiedMessage,
  currentRate,
  formatBytes,
  startProgress,
} from "../../controllers/image_replication/progress.ts";
import { backoffMs, type FailedAttempt, nextAttempt } from "../../controllers/image_replication/retry.ts";
import { simulateSpread } from "../../controllers/image_replication/spread_sim.ts";

const ID_A = `sha256:${"a".repeat(64)}`;
const ID_B = `sha256:${"b".repeat(64)}`;
const ID_C = `sha256:${"c".repeat(64)}`;

function availability(node: string, details: unknown): V1ConfigMap {
  return {
    metadata: { name: `polarstack-daemon-version-availability-${node}` },
    data: { existingVersions: "", checkTime: "2026-12-01T00:00:00Z", details: JSON.stringify(details) },
  };
}

const V1 = { name: "v1", configMap: "cm-v1", images: ["engine:1", "pfsd:1"], missing: [], available: true };

Deno.test("readPeerHoldings keeps available versions whose every image has an ID, and skips this node", () => {
  const read = readPeerHoldings([
    availability("node-b", [{ ...V1, imageIds: { "engine:1": ID_A, "pfsd:1": ID_B } }]),
    availability("Node-A", [
      { ...V1, imageIds: { "engine:1": ID_A, "pfsd:1": ID_B } },
      { name: "v2", images: ["engine:2"], missing: ["engine:2"], available: false, imageIds: {} },
    ]),
    availability("self", [{ ...V1, imageIds: { "engine:1": ID_A, "pfsd:1": ID_B } }]),
    { metadata: { name: "some-other-config-map" }, data: { details: "[]" } },
  ], "SELF");
  assertEquals(read.problems, []);
  assertEquals(read.peers.map((p) => p.node), ["node-a", "node-b"]);
  assertEquals([...read.peers[0].versions.keys()], ["v1"]);
  assertEquals(read.peers[0].versions.get("v1"), [{ ref: "engine:1", id: ID_A }, { ref: "pfsd:1", id: ID_B }]);
});

Deno.test("readPeerHoldings reads the ConfigMap that the core-version check writes", () => {
  const ids = new Map([[normalizeImageRef("engine:1"), ID_A], [normalizeImageRef("pfsd:1"), ID_B]]);
  const written = planCoreVersion({
    versions: [
      { name: "v1", configMap: "cm-v1", images: ["engine:1", "pfsd:1"] },
      { name: "v2", configMap: "cm-v2", images: ["engine:1", "absent:2"] },
    ],
    inventory: new Set(ids.keys()),
    imageIds: ids,
    previous: null,
    now: new Date("2026-12-01T00:00:00Z"),
  }, { node: "Node-A", reportIntervalMs: 3_600_000 }).configMap;
  const read = readPeerHoldings([written], "node-b");
  assertEquals(read.problems, []);
  assertEquals(read.peers.map((p) => [p.node, [...p.versions.entries()]]), [
    ["node-a", [["v1", [{ ref: "engine:1", id: ID_A }, { ref: "pfsd:1", id: ID_B }]]]],
  ]);
});

Deno.test("readPeerHoldings reports details that are not JSON, not a list, or lack an image's ID", () => {
  const broken: V1ConfigMap = { metadata: { name: "polarstack-daemon-version-availability-x" }, data: {} };
  const read = readPeerHoldings([
    broken,
    availability("y", { not: "a list" }),
    availability("z", [
      { ...V1, imageIds: { "engine:1": ID_A } },
      { ...V1, name: "v3", imageIds: { "engine:1": ID_A, "pfsd:1": "sha256:short" } },
      { ...V1, name: "v4", imageIds: { "engine:1": ID_A, "pfsd:1": ID_B } },
      null,
      "garbage",
    ]),
  ], "self");
  assertEquals(read.problems, [
    { configMap: "polarstack-daemon-version-availability-x", reason: "its details key is missing or not JSON" },
    { configMap: "polarstack-daemon-version-availability-y", reason: "its details key is not a JSON list" },
    { configMap: "polarstack-daemon-version-availability-z", reason: 'version "v1" gives no image ID for "pfsd:1"' },
    { configMap: "polarstack-daemon-version-availability-z", reason: 'version "v3" gives no image ID for "pfsd:1"' },
  ]);
  assertEquals(read.peers.map((p) => [p.node, [...p.versions.keys()]]), [["z", ["v4"]]]);
});

function holdings(node: string, versions: Record<string, [string, string][]>): PeerHoldings {
  return {
    node,
    versions: new Map(Object.entries(versions).map(([v, images]) => [v, images.map(([ref, id]) => ({ ref, id }))])),
  };
}

Deno.test("planReplication lists the versions missing here that a peer holds with the same images", () => {
  const local = [
    { name: "v2", images: ["engine:2"], available: false },
    { name: "v1", images: ["pfsd:1", "engine:1"], available: false },
    { name: "v0", images: ["engine:0"], available: true },
    { name: "v9", images: ["engine:9"], available: false },
  ];
  const peers = [
    holdings("a", { v1: [["engine:1", ID_A], ["pfsd:1", ID_B]], v0: [["engine:0", ID_C]] }),
    holdings("b", { v1: [["engine:1", ID_A]], v2: [["engine:2", ID_C]] }),
    holdings("c", { v1: [["pfsd:1", ID_B], ["engine:1", ID_C]] }),
  ];
  const plan = planReplication(local, peers);
  assertEquals(plan.map((c) => [c.version, c.images, c.sources.map((s) => s.node)]), [
    // b lists other images for v1 (it read another ConfigMap): not a source. v9: nobody holds it.
    ["v1", ["engine:1", "pfsd:1"], ["a", "c"]],
    ["v2", ["engine:2"], ["b"]],
  ]);
  // Each source keeps the IDs it advertised (c's engine differs: verification will catch it).
  assertEquals(plan[0].sources[1].images.find((i) => i.ref === "engine:1")?.id, ID_C);
  assertEquals(planReplication(local, peers, { only: "v2" }).map((c) => c.version), ["v2"]);
  assertEquals(planReplication(local, peers, { only: "v1", from: "C" })[0].sources.map((s) => s.node), ["c"]);
  assertEquals(planReplication(local, peers, { only: "v1", from: "b" }), []);
  assertEquals(planReplication(local, peers, { only: "v0" }), [], "an available version is not copied");
});

Deno.test("rankPeers: fewest transfers first, unknown counts last, equal loads spread over receivers", () => {
  const load = new Map([["a", 2], ["b", 0], ["c", 1]]);
  assertEquals(rankPeers(["a", "b", "c", "d"], "r1", { load }), ["b", "c", "a", "d"]);
  // Equal loads: different receivers do not all pick the same first peer.
  const peers = ["p1", "p2", "p3", "p4"];
  const firsts = new Set(
    Array.from({ length: 40 }, (_, i) => rankPeers(peers, `r${i}`, { load: new Map() })[0]),
  );
  assert(firsts.size >= 3, `only ${[...firsts]} chosen first`);
  // Stable for one receiver.
  assertEquals(rankPeers(peers, "r7", { load: new Map() }), rankPeers([...peers].reverse(), "r7", { load: new Map() }));
});

Deno.test("verifyLoaded wants the local ID equal to X-Image-Id and to the details", () => {
  const image = { ref: "engine:1", id: ID_A };
  assertEquals(verifyLoaded(image, { header: ID_A, local: ID_A }), null);
  for (const loaded of [{ header: ID_A, local: ID_B }, { header: ID_B, local: ID_B }, { header: null, local: ID_A }]) {
    assertEquals(verifyLoaded(image, loaded)?.failure, "ImageMismatch");
  }
  assertEquals(
    verifyLoaded(image, { header: ID_B, local: null })?.message,
    `Image engine:1 does not match: loaded nothing, the peer sent ${ID_B}, its details say ${ID_A}`,
  );
});

const POLICY = { baseMs: 1_000, capMs: 8_000, maxAttempts: 10 };

function attempt(peer: string, failure: FailedAttempt["failure"], at: number, retryAfterMs?: number): FailedAttempt {
  return { peer, failure, at, retryAfterMs };
}

Deno.test("backoffMs doubles from the base and stops at the cap", () => {
  assertEquals([0, 1, 2, 3, 4, 5, 60].map((r) => backoffMs(r, POLICY)), [0, 1000, 2000, 4000, 8000, 8000, 8000]);
});

Deno.test("nextAttempt: the best peer first, then the next one at once after a cut, a stall or garbage", () => {
  const options = { receiver: "r", load: new Map([["a", 0], ["b", 1], ["c", 2]]), policy: POLICY };
  assertEquals(nextAttempt(["c", "b", "a"], [], options), { action: "try", peer: "a", notBefore: 0 });
  assertEquals(nextAttempt(["a", "b", "c"], [attempt("a", "StreamCut", 100)], options), {
    action: "try",
    peer: "b",
    notBefore: 0,
  });
  const two = [attempt("a", "StreamCut", 100), attempt("b", "Stalled", 200)];
  assertEquals(nextAttempt(["a", "b", "c"], two, options), { action: "try", peer: "c", notBefore: 0 });
  // Every peer failed once: the next round waits the first backoff after each peer's own failure.
  const round = [...two, attempt("c", "Garbage", 300)];
  assertEquals(nextAttempt(["a", "b", "c"], round, options), { action: "try", peer: "a", notBefore: 1_100 });
  // The second round: a peer that failed twice waits longer than one that failed once.
  const second = [...round, attempt("a", "PeerFailed", 1_200)];
  assertEquals(nextAttempt(["a", "b", "c"], second, options), { action: "try", peer: "b", notBefore: 1_200 });
  // A lone peer is retried with a capped backoff.
  const lone = Array.from({ length: 6 }, (_, i) => attempt("a", "StreamCut", i * 10_000));
  assertEquals(nextAttempt(["a"], lone, options), { action: "try", peer: "a", notBefore: 58_000 });
});

Deno.test("nextAttempt: a mismatching peer is dropped, a busy one waits its Retry-After, disk pressure stops", () => {
  const options = { receiver: "r", load: new Map<string, number>(), policy: POLICY };
  const mismatch = [attempt("a", "ImageMismatch", 100)];
  assertEquals(nextAttempt(["a", "b"], mismatch, options), { action: "try", peer: "b", notBefore: 0 });
  assertEquals(nextAttempt(["a"], mismatch, options), {
    action: "give-up",
    reason: "every peer's image differed from its details",
  });
  assertEquals(nextAttempt([], [], options), { action: "give-up", reason: "no peer holds the version" });
  assertEquals(nextAttempt(["a"], [attempt("a", "PeerBusy", 100, 30_000)], options), {
    action: "try",
    peer: "a",
    notBefore: 30_100,
  });
  const busyThenCut = [attempt("a", "PeerBusy", 100, 30_000), attempt("b", "StreamCut", 200)];
  assertEquals(nextAttempt(["a", "b"], busyThenCut, options), { action: "try", peer: "b", notBefore: 1_200 });
  const pressure = nextAttempt(["a", "b"], [attempt("a", "DiskPressure", 100)], options);
  assertEquals(pressure.action, "give-up");
  const many = Array.from({ length: 10 }, (_, i) => attempt(i % 2 ? "a" : "b", "StreamCut", i));
  assertEquals(nextAttempt(["a", "b"], many, options), {
    action: "give-up",
    reason: "10 attempts failed (last: StreamCut from a)",
  });
});

Deno.test("checkDisk refuses above 85% after the copy and names both figures", () => {
  const GB = 1e9;
  const usage = { path: "/var/lib/docker", usedBytes: 70 * GB, availableBytes: 30 * GB };
  assertEquals(checkDisk(usage, 15 * GB), { ok: true, percentAfter: 85 });
  const refused = checkDisk(usage, 16 * GB);
  assertEquals(refused.ok, false);
  if (refused.ok) return;
  assertEquals([refused.reason, refused.percentAfter, refused.limitPercent], ["DiskPressure", 86, 85]);
  assertEquals(
    refused.message,
    "Cannot copy into /var/lib/docker: its file system would be 86% full after the copy (limit 85%): 16.0 GB needed, 30.0 GB free of 100.0 GB",
  );
  // A hostile Content-Length larger than the disk, or no number at all.
  assertEquals(checkDisk(usage, 1e18).ok, false);
  assertEquals(checkDisk(usage, Number.NaN).ok, false);
  assertEquals(checkDisk({ ...usage, usedBytes: 0, availableBytes: 0 }, 0).ok, false);
  assertEquals(checkDisk(usage, 0, { limit: 0.5 }).ok, false);
});

Deno.test("progress logs each 10% step once, even when one chunk jumps several", () => {
  let p = startProgress(1000, 0);
  const logged: number[] = [];
  for (const [bytes, at] of [[50, 100], [60, 200], [5, 300], [300, 400], [585, 500], [0, 600]]) {
    const next = advanceProgress(p, bytes, at);
    p = next.progress;
    if (next.logPercent !== null) logged.push(next.logPercent);
  }
  assertEquals(logged, [10, 40, 100]);
  assertEquals(p.done, 1000);
  // Unknown total: no percent lines.
  assertEquals(advanceProgress(startProgress(null, 0), 10, 1).logPercent, null);
});

Deno.test("the rate is taken over the last seconds", () => {
  let p = startProgress(null, 0);
  // 10 MB/s for 10 s, then 1 MB/s for 6 s: the current rate shows the slow part.
  for (let s = 1; s <= 10; s++) p = advanceProgress(p, 10e6, s * 1000).progress;
  assertEquals(currentRate(p, 10_000), 10e6);
  for (let s = 11; s <= 16; s++) p = advanceProgress(p, 1e6, s * 1000).progress;
  assertEquals(currentRate(p, 16_000), 1e6);
  assertEquals(currentRate(startProgress(5, 0), 0), 0);
});

Deno.test("formatBytes and the Event message of a finished copy", () => {
  assertEquals([512, 1500, 2.1e9, 44e6].map((b) => formatBytes(b)), ["512 B", "1.5 kB", "2.1 GB", "44.0 MB"]);
  assertEquals(
    copiedMessage({ version: "V", images: 3, bytes: 2.1e9, peer: "N", ms: 48_000 }),
    "Copied version V (3 images, 2.1 GB) from node N in 48 s (44 MB/s)",
  );
  assertMatch(
    copiedMessage({ version: "V", images: 1, bytes: 0, peer: "N", ms: 0 }),
    /\(1 image, 0 B\).* 0 s \(0 B\/s\)/,
  );
});

Deno.test("spread simulation: the tree grows like log2(N), the star like N", () => {
  const base = { bytes: 1e9, linkBytesPerSecond: 1e8, exportConcurrency: 2 };
  const one = base.bytes / base.linkBytesPerSecond;
  for (const n of [10, 100, 1000]) {
    const star = simulateSpread({ ...base, receivers: n, strategy: "star" });
    const tree = simulateSpread({ ...base, receivers: n, strategy: "tree" });
    // The star sends every copy through one uplink.
    assert(Math.abs(star.seconds - n * one) < 1e-6 * n * one, `star ${n}: ${star.seconds}`);
    assertEquals(star.busiestSourceCopies, n);
    assertEquals(star.depth, 1);
    assertEquals(star.rounds, Math.ceil(n / 2));
    // The tree: every round at least doubles the holders.
    assert(tree.seconds <= 2 * one * Math.ceil(Math.log2(n + 1)), `tree ${n}: ${tree.seconds}`);
    assert(tree.depth >= Math.floor(Math.log(n + 1) / Math.log(3)), `tree depth ${tree.depth}`);
    assert(tree.seconds < star.seconds || n <= 2);
  }
  // With one stream per source the tree doubles exactly each copy time.
  const single = simulateSpread({ ...base, exportConcurrency: 1, receivers: 1023, strategy: "tree" });
  assertEquals([single.rounds, single.depth], [10, 10]);
  assert(Math.abs(single.seconds - 10 * one) < 1e-6);
});
