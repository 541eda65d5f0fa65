/** The peer token reader: re-reads the projected token file when the kubelet swaps in a new one. */
import { assert, assertEquals } from "../support/assert.ts";
import type { Logger } from "../../core/types.ts";
import { createPeerTokenReader } from "../../k8s/peer_token.ts";

function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const record = (level: string) => (message: string, props?: Record<string, unknown>) =>
    lines.push(`${level} ${message.replace(/\{(\w+)\}/g, (_, k) => String(props?.[k]))}`);
  return { log: { warn: record("warn"), info: record("info") } as unknown as Logger, lines };
}

/** Replaces the token the way the kubelet's atomic writer does: a new file renamed over the old name. */
async function rotate(path: string, token: string): Promise<void> {
  await Deno.writeTextFile(`${path}.new`, `${token}\n`);
  await Deno.rename(`${path}.new`, path);
}

Deno.test("peer token reader: re-reads a rotated file, says once that it is missing, never returns an empty token", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-peer-token-" });
  const path = `${dir}/token`;
  try {
    const { log, lines } = recordingLog();
    const read = createPeerTokenReader(path, { log });
    assertEquals([read(), read()], [null, null]);
    assertEquals(lines.length, 1, lines.join("\n"));
    assert(lines[0].startsWith(`warn Cannot read the peer token ${path}: `), lines[0]);
    assert(lines[0].includes("audience polarstack-daemon"), lines[0]);
    await rotate(path, "first");
    assertEquals([read(), read()], ["first", "first"]);
    assertEquals(lines.at(-1), `info The peer token ${path} can be read again`);
    await rotate(path, "second");
    assertEquals(read(), "second", "a rotated token is read at once, not after a minute");
    await rotate(path, "");
    assertEquals(read(), null);
    await Deno.remove(path);
    assertEquals(read(), null);
    assertEquals(lines.filter((l) => l.startsWith("warn")).length, 2, "one warning per change, not per call");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
