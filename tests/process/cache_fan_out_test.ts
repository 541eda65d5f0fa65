/**
 * The fan-out of one ConfigMap change to several daemon processes against one fake API server
 * (`bench/cache_fan_out_bench.ts` without its peer): each daemon publishes the new port in under 2 s, the steady load
 * stays under 1 request a second per 50 daemons, and no daemon's RSS passes the 96 MB budget. Three daemons by
 * default; `FAN_OUT_DAEMONS=50` runs the full case (about 4 GB of RAM, a few minutes).
 */
import { assert, assertEquals } from "../support/assert.ts";

const DAEMONS = Number(Deno.env.get("FAN_OUT_DAEMONS") ?? 3);

Deno.test({
  name:
    `fan-out: ${DAEMONS} daemons act on a ConfigMap change in under 2 s, < 1 request/s per 50 at rest, RSS <= 96 MB`,
  async fn() {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../../bench/cache_fan_out_bench.ts", import.meta.url).pathname],
      // Two minutes at rest: every daemon's heartbeat (one a minute) falls in it twice.
      env: { FAN_OUT_DAEMONS: String(DAEMONS), FAN_OUT_PEER: "false", FAN_OUT_STEADY_SECONDS: "120" },
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    console.log(text.trim());
    assertEquals(output.code, 0);
    const { cached } = JSON.parse(text.split("\n").find((line) => line.startsWith("RESULT "))!.slice(7));
    assert(cached.maxMs < 2000, `the last daemon acted ${cached.maxMs} ms after the change`);
    const per50 = cached.steadyPerSecond / DAEMONS * 50;
    assert(per50 < 1, `${per50.toFixed(2)} requests/s per 50 daemons at rest`);
    assert(cached.rssMaxMb <= 96, `a daemon's RSS reached ${cached.rssMaxMb} MB`);
  },
});
