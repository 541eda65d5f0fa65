/**
 * The ephemeral trap with the real kernel, in a network namespace made by the test (both sysctls are per namespace):
 * `once port-usage --json` reports the overlap, `--reserve-port-ranges` closes it (the kernel then hands out none of
 * those ports to a few hundred outgoing connections) and keeps the entries that were there.
 */
import { assert, assertEquals, assertMatch, assertNotMatch } from "../support/assert.ts";
import type { PortUsageResult } from "../../controllers/port_usage/job.ts";
import { canMakeNetns, createNetns, type NetNs } from "../support/netns.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = new URL("../support/port_usage_ns_cli.ts", import.meta.url).pathname;
const RANGE = "40000-40499";

/** Runs `argv` inside the namespace from the repository root; throws with its stderr when it fails. */
async function runIn(ns: NetNs, argv: string[]): Promise<{ stdout: string; stderr: string }> {
  const full = ns.wrap(argv);
  const out = await new Deno.Command(full[0], { args: full.slice(1), cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  const result = { stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
  assertEquals(out.code, 0, `${argv.join(" ")}: ${result.stderr}`);
  return result;
}

/** The daemon's `once port-usage --json` in local mode inside the namespace (the test's deno and cache). */
async function portUsage(ns: NetNs, ...flags: string[]): Promise<{ result: PortUsageResult; log: string }> {
  const { stdout, stderr } = await runIn(ns, [
    Deno.execPath(),
    "run",
    "-A",
    `${ROOT}main.ts`,
    "once",
    "port-usage",
    "--local",
    "--json",
    "--port-ranges",
    RANGE,
    ...flags,
  ]);
  return { result: JSON.parse(stdout), log: stderr };
}

/** The local ports the kernel gives `count` outgoing connections to a listener on 127.0.0.1:`port`. */
async function outgoingPorts(ns: NetNs, port: number, count: number): Promise<number[]> {
  const { stdout } = await runIn(ns, [Deno.execPath(), "run", "-A", CLI, "connect", String(port), String(count)]);
  return JSON.parse(stdout).local;
}

async function sysctl(ns: NetNs, name: string): Promise<string> {
  return (await runIn(ns, ["sysctl", "-n", name])).stdout.trim();
}

Deno.test({
  name: "ephemeral trap: the overlap is reported, --reserve-port-ranges closes it and keeps the entries there",
  ignore: skipUnless(canMakeNetns() && hasCommand("sysctl"), "network namespaces need root, iproute2 and procps"),
  async fn() {
    const ns = await createNetns();
    try {
      // A narrow ephemeral range that starts inside the scanned one, and two reserved entries of someone else's.
      await runIn(ns, ["sysctl", "-w", "net.ipv4.ip_local_port_range=40100 40999"]);
      await runIn(ns, ["sysctl", "-w", "net.ipv4.ip_local_reserved_ports=40950,50000-50010"]);

      const before = await portUsage(ns);
      assertEquals(before.result.ephemeralOverlap, [[40100, 40499]]);
      assertMatch(before.log, /"reason":"EphemeralPortOverlap"/);
      // The trap is real: outgoing connections take ports of the scanned range.
      const taken = (await outgoingPorts(ns, 40000, 300)).filter((p) => p >= 40000 && p <= 40499);
      assert(taken.length > 0, "without the reservation, the kernel hands out ports of the scanned range");

      const fixed = await portUsage(ns, "--reserve-port-ranges");
      assertEquals(fixed.result.ephemeralOverlap, []);
      assertMatch(fixed.log, /Added 40000-40499 to net\.ipv4\.ip_local_reserved_ports/);
      assertEquals(await sysctl(ns, "net.ipv4.ip_local_reserved_ports"), "40000-40499,40950,50000-50010");

      const ports = await outgoingPorts(ns, 40000, 300);
      assertEquals(ports.length, 300);
      assertEquals(ports.filter((p) => p < 40500 || p > 40999 || p === 40950), [], "only unreserved ports");

      // Already reserved: nothing is written, nothing reported.
      const again = await portUsage(ns, "--reserve-port-ranges");
      assertEquals(again.result.ephemeralOverlap, []);
      assertNotMatch(again.log, /Added|EphemeralPortOverlap/);
      assertEquals(await sysctl(ns, "net.ipv4.ip_local_reserved_ports"), "40000-40499,40950,50000-50010");
    } finally {
      await ns.remove();
    }
  },
});
