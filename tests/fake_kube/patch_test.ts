import { assertEquals, assertThrows } from "../support/assert.ts";
import { jsonPatch, mergePatch, PatchError, strategicMergePatch } from "./patch.ts";

Deno.test("merge patch follows RFC 7386's examples", () => {
  const cases: [unknown, unknown, unknown][] = [
    [{ a: "b" }, { a: "c" }, { a: "c" }],
    [{ a: "b" }, { b: "c" }, { a: "b", b: "c" }],
    [{ a: "b" }, { a: null }, {}],
    [{ a: "b", b: "c" }, { a: null }, { b: "c" }],
    [{ a: ["b"] }, { a: "c" }, { a: "c" }],
    [{ a: "c" }, { a: ["b"] }, { a: ["b"] }],
    [{ a: { b: "c" } }, { a: { b: "d", c: null } }, { a: { b: "d" } }],
    [{ a: [{ b: "c" }] }, { a: [1] }, { a: [1] }],
    [["a", "b"], ["c", "d"], ["c", "d"]],
    [{ a: "b" }, ["c"], ["c"]],
    [{ a: "foo" }, null, null],
    [{ a: "foo" }, "bar", "bar"],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: "b", c: null }, { a: "b" }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, expected] of cases) assertEquals(mergePatch(target, patch), expected);
});

Deno.test("merge patch does not change its inputs", () => {
  const target = { data: { a: "1" } };
  const patch = { data: { b: "2" } };
  mergePatch(target, patch);
  assertEquals(target, { data: { a: "1" } });
  assertEquals(patch, { data: { b: "2" } });
});

const node = {
  metadata: { name: "n1", labels: { a: "1" } },
  spec: { taints: [{ key: "x", effect: "NoSchedule" }] },
  status: {
    conditions: [
      { type: "Ready", status: "True", reason: "KubeletReady" },
      { type: "MemoryPressure", status: "False" },
    ],
    addresses: [{ type: "InternalIP", address: "10.0.0.1" }, { type: "Hostname", address: "n1" }],
  },
};

Deno.test("strategic merge patch merges conditions and addresses by type and keeps the others", () => {
  const patched = strategicMergePatch(node, {
    status: {
      conditions: [
        { type: "Ready", status: "False", message: "down" },
        { type: "NetworkUnavailable", status: "True" },
      ],
      addresses: [{ type: "InternalIP", address: "10.0.0.2" }],
    },
  });
  assertEquals(patched.status.conditions, [
    { type: "Ready", status: "False", reason: "KubeletReady", message: "down" },
    { type: "MemoryPressure", status: "False" },
    { type: "NetworkUnavailable", status: "True" },
  ]);
  assertEquals(patched.status.addresses, [
    { type: "InternalIP", address: "10.0.0.2" },
    { type: "Hostname", address: "n1" },
  ]);
  assertEquals(patched.spec, node.spec);
  assertEquals(node.status.conditions[0].status, "True");
});

Deno.test("strategic merge patch replaces lists without a merge key, and null deletes a field", () => {
  const patched = strategicMergePatch(node, {
    spec: { taints: [{ key: "y", effect: "NoExecute" }] },
    metadata: { labels: { a: null, b: "2" } },
    status: { conditions: [{ type: "Ready", reason: null }] },
  });
  assertEquals(patched.spec.taints, [{ key: "y", effect: "NoExecute" }]);
  assertEquals(patched.metadata.labels, { b: "2" });
  assertEquals(patched.status.conditions[0], { type: "Ready", status: "True" });
});

Deno.test("strategic merge patch directives: delete an item, replace a list, replace a map, ignore the order", () => {
  const deleted = strategicMergePatch(node, {
    status: {
      "$setElementOrder/conditions": [{ type: "Ready" }],
      conditions: [{ type: "MemoryPressure", $patch: "delete" }],
    },
  });
  assertEquals(deleted.status.conditions, [{ type: "Ready", status: "True", reason: "KubeletReady" }]);
  assertEquals(Object.keys(deleted.status).sort(), ["addresses", "conditions"]);

  const replacedList = strategicMergePatch(node, {
    status: { conditions: [{ $patch: "replace" }, { type: "Only", status: "True" }] },
  });
  assertEquals(replacedList.status.conditions, [{ type: "Only", status: "True" }]);

  const replacedMap = strategicMergePatch(node, { metadata: { labels: { $patch: "replace", c: "3" } } });
  assertEquals(replacedMap.metadata.labels, { c: "3" });

  const deletedMap = strategicMergePatch(node, { spec: { $patch: "delete" } });
  assertEquals("spec" in deletedMap, false);

  const primitive = strategicMergePatch({ metadata: { finalizers: ["a", "b", "c"] } }, {
    metadata: { "$deleteFromPrimitiveList/finalizers": ["b"] },
  });
  assertEquals(primitive.metadata.finalizers, ["a", "c"]);
});

Deno.test("strategic merge patch rejects an item without its merge key and an unknown directive", () => {
  const error = assertThrows(
    () => strategicMergePatch(node, { status: { conditions: [{ status: "True" }] } }),
    PatchError,
    `no merge key "type"`,
  );
  assertEquals((error as PatchError).code, 400);
  assertThrows(() => strategicMergePatch(node, { spec: { $patch: "explode" } }), PatchError, "explode");
});

Deno.test("json patch applies add, remove, replace, move, copy and test", () => {
  const doc = { data: { a: "1", "x/y": "2", "t~": "3" }, list: [1, 2, 3] };
  const patched = jsonPatch(doc, [
    { op: "add", path: "/data/b", value: "new" },
    { op: "remove", path: "/data/x~1y" },
    { op: "replace", path: "/data/t~0", value: "4" },
    { op: "add", path: "/list/-", value: 4 },
    { op: "add", path: "/list/0", value: 0 },
    { op: "remove", path: "/list/1" },
    { op: "replace", path: "/list/1", value: 20 },
    { op: "copy", from: "/data/a", path: "/copied" },
    { op: "move", from: "/data/b", path: "/moved" },
    { op: "test", path: "/copied", value: "1" },
    { op: "test", path: "/list", value: [0, 20, 3, 4] },
  ]);
  assertEquals(patched, { data: { a: "1", "t~": "4" }, list: [0, 20, 3, 4], copied: "1", moved: "new" });
  assertEquals(doc.list, [1, 2, 3]);
});

Deno.test("json patch failures: a failed test and a missing path are 422, a malformed patch is 400", () => {
  const doc = { data: { a: "1" } };
  const failedTest = assertThrows(() => jsonPatch(doc, [{ op: "test", path: "/data/a", value: "2" }]), PatchError);
  assertEquals((failedTest as PatchError).code, 422);
  const missing = assertThrows(() => jsonPatch(doc, [{ op: "replace", path: "/data/b", value: "2" }]), PatchError);
  assertEquals((missing as PatchError).code, 422);
  const outOfBounds = assertThrows(() => jsonPatch({ l: [1] }, [{ op: "add", path: "/l/5", value: 2 }]), PatchError);
  assertEquals((outOfBounds as PatchError).code, 422);
  assertEquals((assertThrows(() => jsonPatch(doc, { op: "add" }), PatchError) as PatchError).code, 400);
  assertEquals((assertThrows(() => jsonPatch(doc, [{ op: "frob", path: "/a" }]), PatchError) as PatchError).code, 400);
  assertEquals(
    (assertThrows(() => jsonPatch(doc, [{ op: "add", path: "a", value: 1 }]), PatchError) as PatchError).code,
    400,
  );
});
