/** Prints `probeInterface(<nic>)` as JSON, for tests that run it inside a network namespace. */
import { probeInterface } from "../../host/net_probe.ts";

if (import.meta.main) {
  console.log(JSON.stringify(await probeInterface(Deno.args[0])));
}
