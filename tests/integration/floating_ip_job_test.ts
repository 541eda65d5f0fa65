/**
 * The floating-IP job on one host: real interfaces in a network namespace made by the test (`bond1`, a veth to a
 * neighbour namespace that plays the LAN), `ip`, `sysctl` and `arping` run by the job, the fake API server with the
 * manifests' RBAC. Each run is started by hand, so every step of a take, a hold, a release and a conflict is seen.
 */
import { getLogger } from "@logtape/logtape";
import { assert, assertEquals } from "../support/assert.ts";
import { createFloatingIpController, type FloatingIpOptions } from "../../controllers/floating_ip/job.ts";
import type { FloatingIpResult } from "../../controllers/floating_ip/result.ts";
import { systemClock } from "../../core/types.ts";
import { createCommandRunner } from "../../host/command.ts";
import { parseArpingOutput } from "../../host/arping.ts";
import { virtualIfMac, virtualIfName } from "../../host/ip_addr.ts";
import { floatingIpLeaseName } from "../../k8s/leases.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";
import { waitFor } from "../support/daemon_process.ts";
import { recordingSink } from "../support/job_deps.ts";
import { canMakeNetns, createNetns, type NetNs } from "../support/netns.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";

const ignore = skipUnless(
  canMakeNetns() && hasCommand("arping") && hasCommand("sysctl"),
  "network namespaces need root, iproute2, iputils-arping and procps",
);

const FIP = "10.77.0.50";
const NS = "kube-system";

function cluster(leader: string, fip: Record<string, unknown> = {}) {
  return {
    apiVersion: "mpd.polardb.aliyun.com/v1",
    kind: "MPDCluster",
    metadata: { name: "pg", namespace: "db" },
    spec: {
      netCfg: {
        leaderFloatingIP: { ipAddressCfgType: "manual", ipAddress: FIP, mask: 24, ipMode: "VirtualIF", ...fip },
      },
    },
    status: {
      leaderInstanceHost: leader,
      dbInstanceStatus: { ins1: { insType: "rw", nodeName: leader } },
      conditions: [{ type: "Ready", status: "True", reason: "Up", message: "kept" }],
    },
  };
}

function controllerConfig(enableVip: string) {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "controller-config", namespace: NS },
    data: { enableVip },
  };
}

/** The host `h` with `bond1` (10.77.0.1/24), its other end in `lan` (10.77.0.2/24). */
async function withHost(
  fn: (t: { host: NetNs; lan: NetNs }) => Promise<void>,
): Promise<void> {
  const host = await createNetns();
  const lan = await createNetns();
  try {
    await host.ip("link", "add", "bond1", "type", "veth", "peer", "name", "lan0", "netns", lan.name);
    await host.ip("addr", "add", "10.77.0.1/24", "dev", "bond1");
    await host.ip("link", "set", "bond1", "up");
    await lan.ip("addr", "add", "10.77.0.2/24", "dev", "lan0");
    await lan.ip("link", "set", "lan0", "up");
    await fn({ host, lan });
  } finally {
    await host.remove();
    await lan.remove();
  }
}

async function addressesOn(ns: NetNs): Promise<{ ifname: string; address: string; ips: string[] }[]> {
  const r = await ns.exec(["ip", "-j", "addr", "show"]);
  type Link = { ifname: string; address: string; addr_info: { family: string; local: string }[] };
  return (JSON.parse(r.stdout) as Link[]).map((l) => ({
    ifname: l.ifname,
    address: l.address,
    ips: l.addr_info.filter((a) => a.family === "inet").map((a) => a.local),
  }));
}

const options: FloatingIpOptions = {
  node: "h1",
  netCardName: "bond1",
  addEnabled: true,
  delEnabled: true,
  leaseDurationSeconds: 15,
  renewIntervalMs: 5_000,
  settingsRefreshMs: 0,
};

Deno.test({
  name: "one host: takes the Lease, probes, adds the macvlan with its MAC, reports LeaderIPReady True; " +
    "releases when the leader moves, and adds nothing when another host answers the probe",
  ignore,
  async fn() {
    await withHost(async ({ host, lan }) => {
      const fake = await startFakeCluster({ seed: [cluster("h1"), controllerConfig("true")] });
      const sink = recordingSink();
      const controller = createFloatingIpController(
        {
          kube: fake.kube,
          clock: systemClock,
          events: sink,
          log: getLogger(["polarstack-daemon", "test"]),
          runCommand: createCommandRunner({ prefix: host.wrap([]) }),
        },
        options,
        { informers: { backoffBaseMs: 50 } },
      );
      const run = async () =>
        (await controller.run({ signal: AbortSignal.timeout(20_000), dryRun: false })).result as FloatingIpResult;
      const lease = () => fake.server.get("leases", NS, floatingIpLeaseName("db", "pg"));
      const condition = () =>
        (fake.server.get("mpdclusters", "db", "pg")?.status as { conditions: Record<string, string>[] })
          .conditions.find((c) => c.type === "LeaderIPReady");
      try {
        // Run 1: the Lease is free, so it is taken; right after the take, the probe (silent), the add, the announcement.
        let result = await run();
        assertEquals(result.addresses.map((a) => [a.address, a.action, a.held, a.device]), [[
          FIP,
          "acquire",
          true,
          virtualIfName(FIP),
        ]]);
        assertEquals((lease()?.spec as { holderIdentity: string }).holderIdentity, "h1");
        // The report is written beside the runs, right after this one.
        await waitFor(() => condition()?.reason === "AddressHeld", { what: "LeaderIPReady AddressHeld" });
        const macvlan = (await addressesOn(host)).find((l) => l.ifname.startsWith(virtualIfName(FIP)));
        assertEquals(macvlan?.ips, [FIP]);
        assertEquals(macvlan?.address, virtualIfMac(FIP));
        assert(sink.events.some((e) => e.reason === "FloatingIPAdded" && e.regarding?.name === "pg"));
        // The neighbour is answered by the macvlan's MAC, not by bond1's.
        const asked = await lan.exec(["arping", "-c", "1", "-w", "1", "-I", "lan0", FIP]);
        assertEquals(parseArpingOutput(asked.stdout).replies.map((r) => r.mac), [virtualIfMac(FIP)]);
        // Run 2: held; LeaderIPReady True; the operator's other condition is untouched.
        result = await run();
        assertEquals(result.addresses.map((a) => [a.action, a.held]), [["hold", true]]);
        await waitFor(() => condition()?.status === "True", { what: "LeaderIPReady True" });
        const ready = (fake.server.get("mpdclusters", "db", "pg")?.status as { conditions: Record<string, string>[] })
          .conditions.find((c) => c.type === "Ready");
        assertEquals(ready, { type: "Ready", status: "True", reason: "Up", message: "kept" });

        // The leader moves away: the address goes, then the Lease is cleared.
        fake.server.put(cluster("h2"));
        await waitFor(async () => (await run()).addresses[0]?.held === false, {
          timeoutMs: 10_000,
          what: "the release of the floating IP after the move",
        });
        assertEquals((await addressesOn(host)).filter((l) => l.ips.includes(FIP)), []);
        await waitFor(() => !(lease()?.spec as { holderIdentity?: string }).holderIdentity, {
          timeoutMs: 5_000,
          what: "the cleared Lease",
        });
        assert(sink.events.some((e) => e.reason === "FloatingIPRemoved"));

        // A conflict: the leader is back here, but the neighbour answers for the address.
        await lan.ip("addr", "add", `${FIP}/24`, "dev", "lan0");
        fake.server.put(cluster("h1"));
        // runs until the watch has brought the move and the probe was answered (the take and its probe)
        const conflict = await waitFor(async () => {
          const r = await run();
          return r.addresses[0]?.reason === "IPConflict" ? r : null;
        }, { timeoutMs: 10_000, what: "IPConflict in the result" });
        assertEquals(conflict.addresses[0].held, false);
        assertEquals((await addressesOn(host)).filter((l) => l.ips.includes(FIP)), []);
        assert(sink.events.some((e) => e.reason === "IPConflict" && e.type === "Warning"));
        await waitFor(() => condition()?.reason === "IPConflict", { timeoutMs: 10_000, what: "IPConflict" });
      } finally {
        await controller.close?.();
        await fake.close();
      }
    });
  },
});

Deno.test({
  name: "enableVip false: nothing is taken or added, and LeaderIPReady says Disabled",
  ignore,
  async fn() {
    await withHost(async ({ host }) => {
      const fake = await startFakeCluster({ seed: [cluster("h1"), controllerConfig("false")] });
      const controller = createFloatingIpController({
        kube: fake.kube,
        clock: systemClock,
        events: recordingSink(),
        log: getLogger(["polarstack-daemon", "test"]),
        runCommand: createCommandRunner({ prefix: host.wrap([]) }),
      }, options);
      try {
        for (let i = 0; i < 2; i++) await controller.run({ signal: AbortSignal.timeout(20_000), dryRun: false });
        assertEquals(fake.server.get("leases", NS, floatingIpLeaseName("db", "pg")), undefined);
        assertEquals((await addressesOn(host)).filter((l) => l.ips.includes(FIP)), []);
        const reason = () =>
          (fake.server.get("mpdclusters", "db", "pg")?.status as { conditions: Record<string, string>[] }).conditions
            .find((c) => c.type === "LeaderIPReady")?.reason;
        await waitFor(() => reason() === "Disabled", { what: "LeaderIPReady Disabled" });
      } finally {
        await controller.close?.();
        await fake.close();
      }
    });
  },
});
