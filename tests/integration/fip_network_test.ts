/**
 * The floating-IP test network itself, before any daemon: hosts and client reach each other over the bridge, every
 * host reaches the fake API server in the root namespace (and stops reaching it when its port is cut), a squatter
 * answers the duplicate-address probe, the sampler catches an address on two hosts, and nothing is left afterwards.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { canMakeFipNetwork, createFipNetwork, HOSTS } from "../support/fip_network.ts";
import { startFipSampler } from "../support/fip_sampler.ts";
import { run } from "../support/netns.ts";
import { skipUnless } from "../support/prereq.ts";
import { waitFor } from "../support/daemon_process.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";

const CA = new URL("../fake_kube/certs/ca.pem", import.meta.url).pathname;

Deno.test({
  name: "the floating-IP network: hosts, client and API server reach each other; the referees work",
  ignore: skipUnless(canMakeFipNetwork(), "needs root, iproute2 (ip), iputils-arping, procps (sysctl) and curl"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const net = await createFipNetwork();
    const names = [net.sw, net.c, ...Object.values(net.hosts)].map((ns) => ns.name);
    const cluster = await startFakeCluster({ hostname: net.apiAddress });
    const fip = `${net.subnet}.150`;
    try {
      await t.step("the client resolves every host to its bond1 MAC and connects to its listener", async () => {
        await net.startListeners();
        for (const host of HOSTS) {
          const ip = net.hostAddress(host);
          const mac = await net.mac(host);
          assertEquals(await net.arpingFromClient(ip), [mac]);
          assertEquals(await net.connect(ip), host);
          assertEquals(await net.neighbourMac(ip), mac, "the connect left the kernel's entry");
        }
        assertEquals(await net.arpingFromClient(fip), [], "nobody answers for the floating IP yet");
      });

      await t.step("every host reaches the fake API server over the bridge, and not once its port is cut", async () => {
        const healthz = (host: (typeof HOSTS)[number]) =>
          net.hosts[host].exec(["curl", "-sS", "--max-time", "2", "--cacert", CA, `${cluster.server.url}/healthz`]);
        for (const host of HOSTS) assertEquals((await healthz(host)).stdout, "ok", host);
        await net.setApiReachable(false);
        assert((await healthz("h1")).code !== 0, "the API server is cut off");
        await net.setApiReachable(true);
        await waitFor(async () => (await healthz("h1")).stdout === "ok", { what: "the API server again" });
      });

      await t.step("a squatter answers the duplicate-address probe of a host; gone, the probe is silent", async () => {
        const squatter = await net.plantSquatter(fip);
        const probe = await net.hosts.h1.exec(["arping", "-D", "-c", "2", "-w", "2", "-I", "bond1", fip]);
        assertEquals(probe.code, 1, probe.stdout);
        assert(probe.stdout.toLowerCase().includes(squatter.mac), probe.stdout);
        await squatter.remove();
        const silent = await net.hosts.h1.exec(["arping", "-D", "-c", "2", "-w", "2", "-I", "bond1", fip]);
        assertEquals(silent.code, 0, silent.stdout);
      });

      await t.step("the sampler records an address on two hosts, and only while it is on both", async () => {
        const sampler = startFipSampler(net, (ip) => ip === fip);
        await waitFor(() => sampler.report().samples >= 3, { what: "three clean samples" });
        assertEquals(sampler.report().doubles, []);
        await net.hosts.h1.ip("addr", "add", `${fip}/24`, "dev", "bond1");
        await waitFor(() => sampler.report().samples >= 6, { what: "samples with h1 alone" });
        assertEquals(sampler.report().doubles, [], "one holder is no double");
        await net.hosts.h3.ip("addr", "add", `${fip}/24`, "dev", "bond1");
        const double = await waitFor(() => sampler.report().doubles[0], { what: "a double holder" });
        assertEquals([double.ip, double.hosts], [fip, ["h1", "h3"]]);
        await net.hosts.h3.ip("addr", "del", `${fip}/24`, "dev", "bond1");
        const seen = sampler.report().doubles.length;
        const after = sampler.report().samples;
        await waitFor(() => sampler.report().samples >= after + 5, { what: "five more samples" });
        const report = await sampler.stop();
        assert(report.doubles.length <= seen + 1, "the sample in flight at the removal may still see both");
        assertEquals(report.errors, 0);
        assert(report.maxGapMs < 1000, `samples at most 1 s apart on a loaded machine, got ${report.maxGapMs} ms`);
        let threw = false;
        try {
          sampler.assertNoDoubles("the planted double");
        } catch (error) {
          threw = (error as Error).message.includes(`${fip} on h1, h3`);
        }
        assert(threw, "assertNoDoubles fails the test and names the hosts");
        console.log(`sampler: ${report.samples} samples, longest gap ${report.maxGapMs} ms`);
      });
    } finally {
      await cluster.close();
      await net.remove();
    }
    const left = await run(["ip", "netns", "list"]);
    for (const name of names) assert(!left.stdout.includes(name), `${name} is removed`);
    const links = await run(["ip", "-br", "addr", "show"]);
    assert(!links.stdout.includes(`${net.apiAddress}/24`), "the root namespace's end is removed");
  },
});
