import { assertEquals, assertThrows } from "../support/assert.ts";
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, SelectorError } from "./selectors.ts";
import {
  configMapKeyErrors,
  dnsSubdomainErrors,
  invalidMessage,
  MAX_CONFIG_MAP_BYTES,
  validateObject,
} from "./validation.ts";

const objects: Record<string, Record<string, string>> = {
  web: { app: "web", tier: "front" },
  api: { app: "api", tier: "back" },
  db: { app: "db", tier: "back", "example.com/disk": "ssd" },
  bare: {},
};

function select(selector: string): string[] {
  const requirements = parseLabelSelector(selector);
  return Object.keys(objects).filter((name) => matchesLabels(requirements, objects[name]));
}

Deno.test("label selectors: every operator, with the real server's meaning for absent labels", () => {
  assertEquals(select(""), ["web", "api", "db", "bare"]);
  assertEquals(select("app=web"), ["web"]);
  assertEquals(select("app==web"), ["web"]);
  assertEquals(select("app!=web"), ["api", "db", "bare"]);
  assertEquals(select("app in (web, db)"), ["web", "db"]);
  assertEquals(select("app notin (web,db)"), ["api", "bare"]);
  assertEquals(select("example.com/disk"), ["db"]);
  assertEquals(select("!example.com/disk"), ["web", "api", "bare"]);
  assertEquals(select("tier=back,app!=db"), ["api"]);
  assertEquals(select(" tier = back , app in (db,web) "), ["db"]);
  assertEquals(select("tier,!tier"), []);
});

Deno.test("label selectors: gt and lt compare integers", () => {
  const requirements = parseLabelSelector("n>3,n<10");
  assertEquals(matchesLabels(requirements, { n: "5" }), true);
  assertEquals(matchesLabels(requirements, { n: "3" }), false);
  assertEquals(matchesLabels(requirements, { n: "x" }), false);
  assertEquals(matchesLabels(requirements, {}), false);
});

Deno.test("label selectors: malformed ones are SelectorErrors", () => {
  for (
    const bad of [
      "=web",
      "app in (web",
      "app in ()",
      "app=web,",
      "app=a b",
      "a b",
      "-app=web",
      "UPPER.prefix/app=x",
      "app>x",
      `app=${"v".repeat(64)}`,
    ]
  ) {
    assertThrows(() => parseLabelSelector(bad), SelectorError, "unable to parse requirement");
  }
  // An empty value is valid: it selects objects whose label is "".
  assertEquals(parseLabelSelector("app="), [{ key: "app", op: "=", values: [""] }]);
});

Deno.test("field selectors: =, == and != on allowed fields; a missing field is the empty string", () => {
  const pods = [
    { metadata: { name: "a", namespace: "ns1" }, spec: { nodeName: "n1" } },
    { metadata: { name: "b", namespace: "ns2" }, spec: { nodeName: "n2" } },
    { metadata: { name: "c", namespace: "ns1" }, spec: {} },
  ];
  const allowed = ["metadata.name", "metadata.namespace", "spec.nodeName"];
  const names = (selector: string) =>
    pods.filter((p) => matchesFields(parseFieldSelector(selector, allowed), p)).map((p) => p.metadata.name);
  assertEquals(names("spec.nodeName=n1"), ["a"]);
  assertEquals(names("spec.nodeName==n2"), ["b"]);
  assertEquals(names("spec.nodeName="), ["c"]);
  assertEquals(names("spec.nodeName!=n1,metadata.namespace=ns1"), ["c"]);
  assertEquals(names("metadata.name!=a"), ["b", "c"]);
  assertThrows(() => parseFieldSelector("spec.foo=x", allowed), SelectorError, "field label not supported: spec.foo");
  assertThrows(() => parseFieldSelector("spec.nodeName", allowed), SelectorError, "invalid selector");
});

Deno.test("validation: DNS subdomain names and ConfigMap keys as the real server checks them", () => {
  assertEquals(dnsSubdomainErrors("ccm-config.v1"), []);
  assertEquals(dnsSubdomainErrors("Bad").length, 1);
  assertEquals(dnsSubdomainErrors("-a").length, 1);
  assertEquals(dnsSubdomainErrors("a".repeat(254)).length, 1);
  assertEquals(configMapKeyErrors("Key_1.conf-x"), []);
  assertEquals(configMapKeyErrors("a b").length, 1);
  assertEquals(configMapKeyErrors("."), ["must not be '.'"]);
  assertEquals(configMapKeyErrors("..a"), ["must not start with '..'"]);
  assertEquals(configMapKeyErrors("k".repeat(254)), ["must be no more than 253 characters"]);
});

Deno.test("validation: ConfigMap size counts keys and values in bytes, binaryData decoded", () => {
  const at = (extra: number) => ({
    metadata: { name: "x" },
    // 1 + 2n + extra bytes of data ("é" is 2 bytes) and 1 + 2 of binaryData: exactly the limit at extra 0.
    data: { k: "é".repeat((MAX_CONFIG_MAP_BYTES - 4) / 2) + "a".repeat(extra) },
    binaryData: { b: btoa("zz") },
  });
  assertEquals(validateObject("ConfigMap", at(0)), []);
  const causes = validateObject("ConfigMap", at(1));
  assertEquals(causes.map((c) => c.reason), ["FieldValueTooLong"]);
  assertEquals(
    invalidMessage("ConfigMap", "x", causes),
    `ConfigMap "x" is invalid: []: Too long: must have at most 1048576 bytes`,
  );
});

Deno.test("validation: several causes are listed in brackets; Node events belong in default", () => {
  const causes = validateObject("ConfigMap", { metadata: { name: "x" }, data: { "a b": "1", "c d": "2" } });
  const message = invalidMessage("ConfigMap", "x", causes);
  assertEquals(message.startsWith(`ConfigMap "x" is invalid: [data[a b]: Invalid value: "a b": `), true);
  assertEquals(message.includes(`, data[c d]: Invalid value: "c d": `), true);
  assertEquals(
    validateObject("ConfigMap", { metadata: {} })[0].message,
    "Required value: name or generateName is required",
  );
  const event = (namespace: string, involved?: string) => ({
    metadata: { name: "e", namespace },
    involvedObject: { kind: "Node", name: "n1", namespace: involved },
  });
  assertEquals(validateObject("Event", event("default")), []);
  assertEquals(validateObject("Event", event("kube-system"))[0].field, "involvedObject.namespace");
  assertEquals(validateObject("Event", event("kube-system", "kube-system")), []);
});
