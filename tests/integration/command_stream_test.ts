/** The streaming runner's standard input (host/command.ts): a real child that never reads it is killed after the stall. */
import { assert, assertEquals } from "../support/assert.ts";
import { WriteStalledError } from "../../core/byte_stream.ts";
import { createStreamingCommandRunner } from "../../host/command.ts";

/** `total` bytes of zeros in 64 KiB pieces. */
function zeros(total: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      controller.enqueue(new Uint8Array(64 * 1024));
      sent += 64 * 1024;
    },
  });
}

Deno.test("a command that takes none of its input for stdinStallMs is killed, and the run says it stalled", async () => {
  const runStreaming = createStreamingCommandRunner();
  // `sleep` never reads: once the pipe's buffer is full, the next write waits.
  const run = runStreaming(["sleep", "60"], { timeoutMs: 120_000, stdin: zeros(8 * 1024 * 1024), stdinStallMs: 300 });
  await run.stdout.cancel();
  const result = await run.finished;
  assert(result.stdinStalled instanceof WriteStalledError, JSON.stringify(result));
  assertEquals(result.stdinStalled.message, "the command took no data for 0.3 s");
  assertEquals(result.code, null, "killed, not exited after its 60 s");
  assertEquals(result.inputError, null);
  assertEquals(result.timedOut, false);
});

Deno.test("a command that reads all of its input is not stopped by the stall timeout", async () => {
  const runStreaming = createStreamingCommandRunner();
  const run = runStreaming(["wc", "-c"], { timeoutMs: 120_000, stdin: zeros(4 * 1024 * 1024), stdinStallMs: 300 });
  const output = await new Response(run.stdout).text();
  const result = await run.finished;
  assertEquals(output.trim(), String(4 * 1024 * 1024));
  assertEquals(result.code, 0);
  assertEquals(result.stdinStalled, null);
});
