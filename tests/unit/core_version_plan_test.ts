/** Pure parts of the core-version job: reading version ConfigMaps, normalising references, the availability plan. */
import { assertEquals } from "../support/assert.ts";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { normalizeImageRef } from "../../controllers/core_version/image_ref.ts";
import { availabilityConfigMapName, planCoreVersion } from "../../controllers/core_version/plan.ts";
import { parseVersionConfigMap, type VersionSpec } from "../../controllers/core_version/versions.ts";
import { kubeTime } from "../../k8s/values.ts";

function cm(name: string, data: Record<string, string>): V1ConfigMap {
  return { metadata: { name }, data };
}

Deno.test("parseVersionConfigMap reads name and every key with Image after its first character", () => {
  const parsed = parseVersionConfigMap(cm("postgresql-1-0-minor-version-info-rwo-image-open", {
    name: "image-open",
    pfsdImage: "reg.local:5000/polardb/pfsd:1",
    pfsdToolImage: "reg.local:5000/polardb/pfsd-tool:1",
    pgClusterManagerImage: "reg.local:5000/polardb/cm:1",
    pgEngineImage: "reg.local:5000/polardb/engine:1",
    pgManagerImage: "reg.local:5000/polardb/manager:1",
    Image: "not-an-image-key",
    ImageX: "index 0 is not after the first character",
    emptyImage: "",
    blankImage: "   ",
    other: "ignored",
  }));
  assertEquals(parsed, {
    kind: "version",
    version: {
      name: "image-open",
      configMap: "postgresql-1-0-minor-version-info-rwo-image-open",
      images: [
        "reg.local:5000/polardb/pfsd:1",
        "reg.local:5000/polardb/pfsd-tool:1",
        "reg.local:5000/polardb/cm:1",
        "reg.local:5000/polardb/engine:1",
        "reg.local:5000/polardb/manager:1",
      ],
    },
  });
});

Deno.test("parseVersionConfigMap lists an image used by two keys once", () => {
  const parsed = parseVersionConfigMap(cm("v", { name: "v1", aImage: "busybox", bImage: "busybox" }));
  assertEquals(parsed.kind, "version");
  if (parsed.kind === "version") assertEquals(parsed.version.images, ["busybox"]);
});

Deno.test("parseVersionConfigMap skips a ConfigMap without images, loudly", () => {
  assertEquals(parseVersionConfigMap(cm("empty", { name: "v1", engineImage: "" })), {
    kind: "skip",
    configMap: "empty",
    reason: "it has no image keys",
    quiet: false,
  });
  assertEquals(parseVersionConfigMap({ metadata: { name: "no-data" } }).kind, "skip");
});

Deno.test("parseVersionConfigMap skips a ConfigMap with images but no name, loudly", () => {
  assertEquals(parseVersionConfigMap(cm("anon", { engineImage: "busybox", name: " " })), {
    kind: "skip",
    configMap: "anon",
    reason: "it has images but no name",
    quiet: false,
  });
});

Deno.test("parseVersionConfigMap skips the root ConfigMap quietly", () => {
  assertEquals(parseVersionConfigMap(cm("postgresql-1-0-minor-version-info-rwo", { latestVersion: "image-open" })), {
    kind: "skip",
    configMap: "postgresql-1-0-minor-version-info-rwo",
    reason: "it is the root ConfigMap (latestVersion, no images)",
    quiet: true,
  });
});

Deno.test("normalizeImageRef makes every spelling of one image equal", () => {
  const digest = "sha256:" + "ab".repeat(32);
  const cases: Array<[string, string]> = [
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:latest", "docker.io/library/busybox:latest"],
    ["docker.io/library/busybox:latest", "docker.io/library/busybox:latest"],
    ["docker.io/busybox", "docker.io/library/busybox:latest"],
    ["index.docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36"],
    ["library/busybox:1.36", "docker.io/library/busybox:1.36"],
    ["polardb/engine:1.0", "docker.io/polardb/engine:1.0"],
    ["docker.io/x", "docker.io/library/x:latest"],
    ["docker.io/polardb/x", "docker.io/polardb/x:latest"],
    ["registry:5000/a/b:t", "registry:5000/a/b:t"],
    ["registry:5000/a/b", "registry:5000/a/b:latest"],
    ["reg.example.com/a:1", "reg.example.com/a:1"],
    ["localhost/a:1", "localhost/a:1"],
    ["localhost:5000/a", "localhost:5000/a:latest"],
    ["Registry/a:1", "Registry/a:1"],
    ["registry:5000", "docker.io/library/registry:5000"],
    [`busybox@${digest}`, `docker.io/library/busybox@${digest}`],
    [`busybox:1.36@${digest}`, `docker.io/library/busybox@${digest}`],
    [`registry:5000/a/b@${digest}`, `registry:5000/a/b@${digest}`],
    [digest, digest],
    ["  busybox:1.36\n", "docker.io/library/busybox:1.36"],
  ];
  for (const [input, expected] of cases) assertEquals(normalizeImageRef(input), expected, input);
  // Different images stay different.
  assertEquals(normalizeImageRef("busybox:1") === normalizeImageRef("busybox:2"), false);
  assertEquals(normalizeImageRef("a/b:1") === normalizeImageRef("registry:5000/a/b:1"), false);
  assertEquals(normalizeImageRef("localhost/a") === normalizeImageRef("a"), false);
});

const now = new Date("2026-03-04T05:06:07.890Z");
const hour = 3_600_000;
const OPTIONS = { node: "node-a", reportIntervalMs: hour };

function versions(): VersionSpec[] {
  return [
    { name: "v2", configMap: "cm-b", images: ["busybox", "registry:5000/polardb/engine:2"] },
    { name: "v1", configMap: "cm-a", images: ["docker.io/library/busybox:latest", "polardb/pfsd:1"] },
    { name: "v3", configMap: "cm-c", images: [`polardb/engine@sha256:${"cd".repeat(32)}`] },
  ];
}

function inventory(refs: string[]): Set<string> {
  return new Set(refs.map(normalizeImageRef));
}

Deno.test("planCoreVersion: partly present versions, digests, the three data keys", () => {
  const plan = planCoreVersion({
    versions: versions(),
    inventory: inventory([
      "busybox:latest",
      "polardb/pfsd:1",
      `docker.io/polardb/engine@sha256:${"cd".repeat(32)}`,
    ]),
    previous: null,
    now,
  }, OPTIONS);
  assertEquals(plan.versions, [
    {
      name: "v1",
      configMap: "cm-a",
      images: ["docker.io/library/busybox:latest", "polardb/pfsd:1"],
      missing: [],
      available: true,
    },
    {
      name: "v2",
      configMap: "cm-b",
      images: ["busybox", "registry:5000/polardb/engine:2"],
      missing: ["registry:5000/polardb/engine:2"],
      available: false,
    },
    {
      name: "v3",
      configMap: "cm-c",
      images: [`polardb/engine@sha256:${"cd".repeat(32)}`],
      missing: [],
      available: true,
    },
  ]);
  assertEquals(plan.existingVersions, ["v1", "v3"]);
  assertEquals(plan.data.existingVersions, "v1,v3");
  assertEquals(plan.data.checkTime, "2026-03-04T05:06:07Z");
  assertEquals(JSON.parse(plan.data.details), plan.versions);
  assertEquals(plan.changed, true);
  assertEquals(plan.write, true);
});

Deno.test("planCoreVersion: no available version gives an empty string, not a comma", () => {
  const plan = planCoreVersion({
    versions: versions(),
    inventory: new Set(),
    previous: null,
    now,
  }, OPTIONS);
  assertEquals(plan.data.existingVersions, "");
  assertEquals(plan.existingVersions, []);
  assertEquals(plan.versions.every((v) => !v.available && v.missing.length === v.images.length), true);
});

Deno.test("planCoreVersion: a version name listed by two ConfigMaps appears once", () => {
  const plan = planCoreVersion({
    versions: [
      { name: "v1", configMap: "cm-a", images: ["busybox"] },
      { name: "v1", configMap: "cm-z", images: ["busybox"] },
    ],
    inventory: inventory(["busybox"]),
    previous: null,
    now,
  }, OPTIONS);
  assertEquals(plan.data.existingVersions, "v1");
});

Deno.test("planCoreVersion writes only when something but checkTime changed, or the last write is old", () => {
  const base = { versions: versions(), inventory: inventory(["busybox", "polardb/pfsd:1"]) };
  const first = planCoreVersion({ ...base, previous: null, now }, OPTIONS);
  const previous = cm("x", { ...first.data });

  const soon = planCoreVersion({ ...base, previous, now: new Date(now.getTime() + hour - 1000) }, OPTIONS);
  assertEquals(soon.changed, false);
  assertEquals(soon.write, false);

  const late = planCoreVersion({ ...base, previous, now: new Date(now.getTime() + hour) }, OPTIONS);
  assertEquals(late.changed, false);
  assertEquals(late.write, true);

  const moreImages = planCoreVersion({
    ...base,
    inventory: inventory(["busybox", "polardb/pfsd:1", "registry:5000/polardb/engine:2"]),
    previous,
    now: new Date(now.getTime() + 60_000),
  }, OPTIONS);
  assertEquals(moreImages.changed, true);
  assertEquals(moreImages.write, true);
  assertEquals(moreImages.data.existingVersions, "v1,v2");

  // Only details changed (one more image of a still unavailable version appeared): still a change.
  const withV4 = { ...base, versions: [...versions(), { name: "v4", configMap: "cm-d", images: ["a:1", "b:1"] }] };
  const v4Before = planCoreVersion({ ...withV4, previous: null, now }, OPTIONS);
  const detailOnly = planCoreVersion({
    ...withV4,
    previous: cm("x", { ...v4Before.data }),
    inventory: inventory(["busybox", "polardb/pfsd:1", "a:1"]),
    now: new Date(now.getTime() + 60_000),
  }, OPTIONS);
  assertEquals(detailOnly.data.existingVersions, first.data.existingVersions);
  assertEquals(detailOnly.changed, true);

  const badTime = planCoreVersion(
    { ...base, previous: cm("x", { ...first.data, checkTime: "yesterday" }), now },
    OPTIONS,
  );
  assertEquals(badTime.write, true);
  assertEquals(badTime.changed, false);
});

Deno.test("checkTime format and the ConfigMap name", () => {
  assertEquals(kubeTime(new Date("2026-12-31T23:59:59.999Z")), "2026-12-31T23:59:59Z");
  assertEquals(availabilityConfigMapName("Node-1"), "polarstack-daemon-version-availability-node-1");
});

Deno.test("planCoreVersion: with the store's IDs, each found image's ID is in details, keyed as written", () => {
  const engine = `sha256:${"e".repeat(64)}`;
  const pfsd = `sha256:${"f".repeat(64)}`;
  const imageIds = new Map([
    [normalizeImageRef("busybox"), engine],
    [engine, engine],
    [normalizeImageRef("polardb/pfsd:1"), pfsd],
    [pfsd, pfsd],
  ]);
  const plan = planCoreVersion({
    versions: [
      { name: "v1", configMap: "cm-a", images: ["docker.io/library/busybox:latest", "polardb/pfsd:1"] },
      { name: "v2", configMap: "cm-b", images: [engine, "absent:1"] },
    ],
    inventory: new Set([...imageIds.keys()]),
    imageIds,
    previous: null,
    now: new Date("2026-05-01T00:00:00Z"),
  }, { node: "n", reportIntervalMs: 3_600_000 });
  assertEquals(plan.versions.map((v) => v.imageIds), [
    { "docker.io/library/busybox:latest": engine, "polardb/pfsd:1": pfsd },
    { [engine]: engine },
  ]);
  assertEquals(JSON.parse(plan.data.details)[0].imageIds["polardb/pfsd:1"], pfsd);
});
