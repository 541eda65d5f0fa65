import { createHash } from "node:crypto";
import { assertEquals } from "../support/assert.ts";
import { sha256Hex } from "../../core/sha256.ts";

Deno.test("sha256Hex equals node:crypto's SHA-256 for empty, short, block-edge, long and non-ASCII texts", () => {
  const texts = ["", "abc", "db/pg", "x".repeat(55), "x".repeat(56), "x".repeat(64), "y".repeat(1000), "ns/名前-ü"];
  for (let n = 0; n < 200; n++) texts.push(`namespace-${n}/${"c".repeat(n)}`);
  for (const text of texts) assertEquals(sha256Hex(text), createHash("sha256").update(text).digest("hex"), text);
});
