/**
 * End to end: hosts h1, h2, h3 and a client c in network namespaces on one bridge (tests/support/fip_network.ts),
 * each host running its own daemon process against the fake API server, which listens in the root namespace on the
 * same bridge. Two MPDClusters ask for a floating IP each, one VirtualIF and one MultiIP, and the test moves their
 * leader between h1 and h2. After each move: the address is on the new leader only, the client's neighbour entry
 * points at the right MAC, and a TCP connect from the client reaches the new leader's listener. Throughout, the
 * sampler reads every host's addresses every 50 ms and fails the test if two hosts carry one address at once.
 * The sequence also kills the holder's daemon, cuts the API server, plants a conflict, flips the switches and feeds
 * hostile MPDClusters. `FIP_E2E_FULL=1` runs 20 moves and a 30 s outage (the short run: 2 moves, an outage a little
 * longer than the Lease).
 */
import { assert, assertEquals } from "../support/assert.ts";
import { canMakeFipNetwork, createFipNetwork, type FipNetwork, type HostName, HOSTS } from "../support/fip_network.ts";
import { type FipSampler, startFipSampler } from "../support/fip_sampler.ts";
import { daemonCommand, waitFor } from "../support/daemon_process.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";
import { configMapObject, nodeObject } from "../support/faults_cluster.ts";
import { run } from "../support/netns.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";
import type { FakeKubeApiServer, KubeObject } from "../fake_kube/server.ts";
import {
  CLUSTER_NS as NS,
  type FipAddressState as AddressState,
  type FipMode,
  manualFip as manual,
  moveLeader,
  mpdClusterObject as mpdCluster,
} from "../support/fip_cluster.ts";
import { virtualIfMac, virtualIfName } from "../../host/ip_addr.ts";
import { floatingIpLeaseName } from "../../k8s/leases.ts";

const FULL = Deno.env.get("FIP_E2E_FULL") === "1";
const MOVES = FULL ? 20 : 2;
const LEASE_S = 6;
const RENEW_S = 2;
const OUTAGE_MS = FULL ? 30_000 : (LEASE_S + 2) * 1000;
const MOVE_MS = 30_000;
const DAEMON_NS = "kube-system";

interface Cluster {
  readonly name: string;
  readonly mode: FipMode;
  readonly ip: string;
}

/** Everything one step needs: the network, the fake API server, the sampler and the daemons' flags. */
class Bench {
  constructor(
    readonly net: FipNetwork,
    readonly server: FakeKubeApiServer,
    readonly sampler: FipSampler,
    readonly clusters: readonly Cluster[],
  ) {}

  daemonArgs(extra: readonly string[] = []): string[] {
    return [
      "--kubeconfig",
      this.server.kubeconfigPath,
      "--fip-lease-duration",
      `${LEASE_S}s`,
      "--fip-lease-renew-interval",
      `${RENEW_S}s`,
      ...extra,
    ];
  }

  async startDaemon(host: HostName, extra: readonly string[] = []): Promise<void> {
    await this.net.startDaemon(host, this.daemonArgs(extra));
  }

  async restartDaemon(host: HostName, extra: readonly string[] = []): Promise<void> {
    await this.net.stopDaemon(host);
    await this.startDaemon(host, extra);
  }

  /** Moves the leader of both clusters to `host`, as the operator writes it; returns when. */
  setLeader(host: string): number {
    return moveLeader(this.server, this.clusters.map((c) => c.name), host);
  }

  putConfig(enableVip: string): void {
    this.server.put(configMapObject("controller-config", { data: { isCheckOObIP: "false", enableVip } }));
  }

  condition(name: string): { status: string; reason: string; message: string } | undefined {
    const object: KubeObject = this.server.get("mpdclusters", NS, name);
    return object?.status?.conditions?.find((c: { type: string }) => c.type === "LeaderIPReady");
  }

  lease(name: string): KubeObject | undefined {
    return this.server.get("leases", DAEMON_NS, floatingIpLeaseName(NS, name));
  }

  /** The last run's result on `host` (waiting for the first run of a daemon just started). */
  async result(host: HostName): Promise<{ node: string; enableVip: boolean; addresses: AddressState[] }> {
    type Body = { code: string; data: { node: string; enableVip: boolean; addresses: AddressState[] } | null };
    const body = await waitFor(async () => {
      const got = await this.net.daemonGet(host, "/api/v1/floating-ips") as Body;
      return got.data ? got : null;
    }, { what: `the first run of the daemon of ${host}` });
    assertEquals([body.code, body.data!.node], ["1", host]);
    return body.data!;
  }

  async state(host: HostName, ip: string): Promise<AddressState | undefined> {
    return (await this.result(host)).addresses.find((a) => a.address === ip);
  }

  expectedMac(c: Cluster, host: HostName): Promise<string> {
    return c.mode === "VirtualIF" ? Promise.resolve(virtualIfMac(c.ip)) : this.net.mac(host);
  }

  /** What each daemon says about the addresses, and the end of its log: for a failure's message. */
  async diagnosis(): Promise<string> {
    const parts: string[] = [];
    for (const host of HOSTS) {
      const d = this.net.daemon(host);
      if (!d) {
        parts.push(`${host}: no daemon`);
        continue;
      }
      const answer = await this.net.daemonGet(host, "/api/v1/floating-ips").catch((e) => String(e));
      parts.push(`${host}: ${JSON.stringify(answer).slice(0, 1500)}\n${d.stderr().slice(-1500)}`);
    }
    for (const c of this.clusters) {
      const lease = this.lease(c.name);
      parts.push(`${c.name}: ${JSON.stringify(this.condition(c.name))}`);
      parts.push(`  Lease: rv ${lease?.metadata.resourceVersion} ${JSON.stringify(lease?.spec)}`);
    }
    const writes = this.server.requests.filter((q) => q.path.includes("/leases/") && q.method !== "GET").slice(-8);
    for (const q of writes) {
      const body = JSON.parse(q.body || "{}");
      parts.push(
        `  ${q.method} ${q.path} ${q.status}: rv ${body.metadata?.resourceVersion} ${JSON.stringify(body.spec)}`,
      );
    }
    return parts.join("\n");
  }

  async until<T>(what: string, fn: () => Promise<T> | T, timeoutMs = MOVE_MS): Promise<NonNullable<T>> {
    try {
      return await waitFor(fn, { what, timeoutMs });
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await this.diagnosis()}`);
    }
  }

  /** The three checks of a move: only on `host`, the client's entry at the right MAC, a TCP connect reaches it. */
  async expectOn(
    host: HostName,
    since: number,
    { clusters = this.clusters, timeoutMs = MOVE_MS }: { clusters?: readonly Cluster[]; timeoutMs?: number } = {},
  ): Promise<number[]> {
    const took: number[] = [];
    for (const c of clusters) {
      await this.until(`${c.name} (${c.ip}) on ${host} only`, async () => {
        const holders = await this.net.holders(c.ip);
        return holders.length === 1 && holders[0] === host;
      }, timeoutMs);
      took.push(Date.now() - since);
    }
    for (const c of clusters) {
      const mac = await this.expectedMac(c, host);
      await this.until(
        `the client's entry for ${c.ip} at ${mac}`,
        async () => (await this.net.neighbourMac(c.ip)) === mac,
        10_000,
      );
    }
    for (const c of clusters) assertEquals(await this.net.connect(c.ip), host, `TCP to ${c.ip} reaches ${host}`);
    for (const c of clusters) {
      await this.until(`LeaderIPReady True for ${c.name}`, () => {
        const got = this.condition(c.name);
        return got?.status === "True" && got.reason === "AddressHeld";
      }, 10_000);
      const state = await this.state(host, c.ip);
      assertEquals(
        [state?.held, state?.mode, state?.cluster, state?.lease?.holder],
        [true, c.mode, `${NS}/${c.name}`, host],
        JSON.stringify(state),
      );
      assertEquals(state?.device, c.mode === "VirtualIF" ? virtualIfName(c.ip) : "bond1");
    }
    return took;
  }

  /** Nobody carries the address now, and `host` has not carried it since `since`. */
  async expectNowhere(c: Cluster, { host, since }: { host: HostName; since: number }): Promise<void> {
    assertEquals(await this.net.holders(c.ip), [], `${c.ip} is on no host`);
    const seen = this.sampler.lastSeen(c.ip, host);
    assert(seen === null || seen < since, `${host} carried ${c.ip} at ${seen}, after ${since}`);
  }
}

const step = (() => {
  let failed: string | null = null;
  return async (t: Deno.TestContext, name: string, fn: () => Promise<void>) => {
    await t.step(name, async () => {
      if (failed) throw new Error(`Not run: the step "${failed}" failed, and this one builds on it`);
      try {
        await fn();
      } catch (error) {
        failed = name;
        throw error;
      }
    });
  };
})();

async function rss(net: FipNetwork, host: HostName): Promise<number> {
  const pid = net.daemon(host)!.process.child.pid;
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

function metricSum(text: string, name: string): number {
  return text.split("\n").filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .reduce((sum, l) => sum + Number(l.trim().split(/\s+/).pop()), 0);
}

Deno.test({
  name:
    "floating IP end to end: moves in both modes, never two holders, kill, outage, conflict, switches, hostile data",
  ignore: skipUnless(
    canMakeFipNetwork() && hasCommand("promtool"),
    "needs root, iproute2 (ip), iputils-arping, procps (sysctl), curl and promtool",
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const net = await createFipNetwork();
    const clusters: Cluster[] = [
      { name: "vif", mode: "VirtualIF", ip: `${net.subnet}.101` },
      { name: "mip", mode: "MultiIP", ip: `${net.subnet}.102` },
    ];
    const [vif, mip] = clusters;
    const cluster = await startFakeCluster({
      hostname: net.apiAddress,
      seed: [
        ...HOSTS.map(nodeObject),
        configMapObject("ccm-config", { data: { NET_CARD_NAME: "bond1", NET_MASK: "24" } }),
        configMapObject("controller-config", { data: { isCheckOObIP: "false", enableVip: "true" } }),
        ...clusters.map((c) => mpdCluster(c.name, manual(c.ip, c.mode), "h1")),
      ],
    });
    const floating = (ip: string) => ip.startsWith(`${net.subnet}.`) && Number(ip.split(".")[3]) >= 100;
    const sampler = startFipSampler(net, floating);
    const b = new Bench(net, cluster.server, sampler, clusters);
    let holder: HostName = "h1";
    let killed: HostName | null = null;
    const other = (h: HostName): HostName => h === "h1" ? "h2" : "h1";
    try {
      await step(t, "three daemons start; the leader h1 takes both addresses and reports them", async () => {
        await net.startListeners();
        const t0 = Date.now();
        for (const host of HOSTS) await b.startDaemon(host);
        for (const c of clusters) {
          await b.until(`${c.ip} on h1`, async () => (await net.holders(c.ip)).join() === "h1");
          // The first connect gives the client its neighbour entries, which later moves must correct.
          assertEquals(await net.connect(c.ip), "h1");
        }
        await b.expectOn("h1", t0);
        for (const c of clusters) {
          const lease = b.lease(c.name);
          assertEquals([lease?.spec.holderIdentity, lease?.spec.leaseDurationSeconds], ["h1", LEASE_S]);
          const state = await b.state("h1", c.ip);
          assert(state?.announcedAt && state.lastChange, JSON.stringify(state));
          const h3 = await b.state("h3", c.ip);
          assertEquals([h3?.held, h3?.action, h3?.reason, h3?.lease?.holder], [false, "none", "NotLeader", "h1"]);
        }
      });

      await step(t, `${MOVES} moves between h1 and h2, three checks each`, async () => {
        const moveTimes: number[] = [];
        for (let i = 0; i < MOVES; i++) {
          const to = other(holder);
          const since = b.setLeader(to);
          moveTimes.push(...await b.expectOn(to, since));
          holder = to;
        }
        const sorted = [...moveTimes].sort((x, y) => x - y);
        console.log(
          `moves: ${sorted.length} address moves, median ${sorted[sorted.length >> 1]} ms, max ${sorted.at(-1)} ms`,
        );
      });

      await step(t, "kill -9 of the holder, then a move: the new leader waits for the Lease, then probes", async () => {
        const dead = holder;
        const to = other(holder);
        await net.killDaemon(dead);
        const leases = clusters.map((c) => b.lease(c.name));
        const since = b.setLeader(to);
        // Both clusters at once: each has its own Lease window.
        await Promise.all(clusters.map(async (c, i) => {
          const expires = Date.parse(leases[i].spec.renewTime) + leases[i].spec.leaseDurationSeconds * 1000;
          await b.until(`${to} waiting for the Lease of ${c.ip}`, async () => {
            const s = await b.state(to, c.ip);
            return s?.reason === "LeaseHeldElsewhere" && s.lease?.holder === dead && !s.held;
          });
          // The dead daemon's address still answers ARP, so the probe after the Lease expires finds it.
          await b.until(`IPConflict for ${c.name} on ${to}`, () => b.condition(c.name)?.reason === "IPConflict");
          const taken = b.lease(c.name);
          assertEquals(taken?.spec.holderIdentity, to);
          assert(
            Date.parse(taken.spec.acquireTime) >= expires,
            `${to} took the Lease at ${taken.spec.acquireTime}, before it expired at ${
              new Date(expires).toISOString()
            }`,
          );
          assertEquals(await net.holders(c.ip), [dead], "the address stays where the killed daemon left it");
          assert((sampler.lastSeen(c.ip, to) ?? 0) < since, `${to} never added ${c.ip}`);
        }));
        killed = dead;
      });

      await step(t, "the killed daemon, restarted, removes what it left; then the new leader adds", async () => {
        const restart = Date.now();
        await b.startDaemon(killed!);
        const to = other(killed!);
        await b.expectOn(to, restart);
        holder = to;
      });

      await step(t, `the API server cut for ${OUTAGE_MS / 1000} s during a move: the holder keeps it`, async () => {
        const to = other(holder);
        await net.setApiReachable(false);
        let restored = false;
        try {
          b.setLeader(to);
          const end = Date.now() + OUTAGE_MS;
          let checks = 0;
          // The outage itself is a span of time: the holder must keep its address all through it.
          while (Date.now() < end) {
            for (const c of clusters) assertEquals(await net.holders(c.ip), [holder], `${c.ip} during the outage`);
            checks++;
            await new Promise((r) => setTimeout(r, 250));
          }
          assert(checks > 4, `${checks} checks during the outage`);
          await net.setApiReachable(true);
          restored = true;
          // The old holder trusts the API server again only once its watches are current, after their backoff.
          const took = await b.expectOn(to, Date.now(), { timeoutMs: 90_000 });
          console.log(`after the outage: on ${to} ${Math.max(...took)} ms after the API server came back`);
          holder = to;
        } finally {
          if (!restored) await net.setApiReachable(true);
        }
      });

      await step(t, "a planted conflict: IPConflict and no add until it goes", async () => {
        const to = other(holder);
        const squatter = await net.plantSquatter(mip.ip);
        try {
          const since = b.setLeader(to);
          await b.expectOn(to, since, { clusters: [vif] });
          const first = await b.until(`IPConflict for ${mip.name}`, () => {
            const got = b.condition(mip.name);
            return got?.reason === "IPConflict" ? got.message : null;
          });
          assert(first.includes(mip.ip), first);
          // A second probe, at a later time, also finds the squatter: still no add.
          await b.until(`a second conflicting probe of ${mip.ip}`, () => {
            const got = b.condition(mip.name);
            return got?.reason === "IPConflict" && got.message !== first;
          });
          const state = await b.state(to, mip.ip);
          assertEquals([state?.held, state?.reason], [false, "IPConflict"], JSON.stringify(state));
          await b.expectNowhere(mip, { host: to, since });
        } finally {
          await squatter.remove();
        }
        await b.expectOn(to, Date.now());
        holder = to;
      });

      await step(t, 'switch: enableVip "false" lets the old holder remove and the new one not add', async () => {
        const to = other(holder);
        // A running daemon re-reads controller-config at most every minute; a restarted one reads it at once.
        b.putConfig("false");
        await b.restartDaemon(to);
        await b.until(`${to} reading enableVip "false"`, async () => (await b.result(to)).enableVip === false);
        const since = b.setLeader(to);
        for (const c of clusters) {
          await b.until(`Disabled for ${c.name} on ${to}`, () => b.condition(c.name)?.reason === "Disabled");
          await b.until(`${c.ip} removed from ${holder}`, async () => (await net.holders(c.ip)).length === 0);
          await b.expectNowhere(c, { host: to, since });
        }
        b.putConfig("true");
        await b.restartDaemon(to);
        await b.expectOn(to, Date.now());
        holder = to;
      });

      await step(t, "switch: --job-enable-add-fip=false on the new leader: no add", async () => {
        const to = other(holder);
        await b.restartDaemon(to, ["--job-enable-add-fip=false"]);
        const since = b.setLeader(to);
        for (const c of clusters) {
          await b.until(`Disabled for ${c.name} on ${to}`, () => b.condition(c.name)?.reason === "Disabled");
          await b.until(`${c.ip} removed from ${holder}`, async () => (await net.holders(c.ip)).length === 0);
          await b.expectNowhere(c, { host: to, since });
        }
        await b.restartDaemon(to);
        await b.expectOn(to, Date.now());
        holder = to;
      });

      await step(
        t,
        "switch: --job-enable-del-fip=false on the holder: it keeps the address and the Lease",
        async () => {
          const to = other(holder);
          const from = holder;
          await b.restartDaemon(from, ["--job-enable-del-fip=false"]);
          await b.expectOn(from, Date.now());
          const since = b.setLeader(to);
          for (const c of clusters) {
            await b.until(`${to} waiting for the Lease of ${c.ip}`, async () => {
              const s = await b.state(to, c.ip);
              return s?.reason === "LeaseHeldElsewhere" && s.lease?.holder === from;
            });
            // Renewed past the expiry of the Lease as it was at the move: the fence stays while the address does.
            await b.until(`${from} renewing the Lease of ${c.ip}`, () => {
              const lease = b.lease(c.name);
              return lease?.spec.holderIdentity === from && Date.parse(lease.spec.renewTime) > since + LEASE_S * 1000;
            }, (LEASE_S + 10) * 1000);
            assertEquals(await net.holders(c.ip), [from]);
            assert((sampler.lastSeen(c.ip, to) ?? 0) < since, `${to} never added ${c.ip}`);
          }
          await b.restartDaemon(from);
          await b.expectOn(to, Date.now());
          holder = to;
        },
      );

      await step(t, "hostile MPDClusters do not crash the daemons; each is reported", async () => {
        const dup = `${net.subnet}.131`;
        const hostile = [
          mpdCluster("not-ipv4", manual("fd00::5", "MultiIP"), "h3"),
          mpdCluster("mask-33", manual(`${net.subnet}.132`, "MultiIP", { mask: 33 }), "h3"),
          mpdCluster("no-nic", manual(`${net.subnet}.130`, "VirtualIF", { basedNetIf: "bond9" }), "h3"),
          mpdCluster("dup-a", manual(dup, "MultiIP"), "h3"),
          mpdCluster("dup-b", manual(dup, "VirtualIF"), "h3"),
          mpdCluster("not-an-object", "10.0.0.1", "h3"),
          mpdCluster("mask-text", manual(`${net.subnet}.133`, "MultiIP", { mask: "24" }), "h3"),
        ];
        for (const object of hostile) cluster.server.put(object);
        const reasons: Record<string, string> = {
          "not-ipv4": "InvalidAddress",
          "mask-33": "InvalidMask",
          "no-nic": "InterfaceMissing",
          "dup-a": "DuplicateAddress",
          "dup-b": "DuplicateAddress",
          "mask-text": "InvalidMask",
        };
        for (const [name, reason] of Object.entries(reasons)) {
          await b.until(`LeaderIPReady ${reason} on ${name}`, () => {
            const got = b.condition(name);
            return got?.status === "False" && got.reason === reason;
          });
        }
        const state = await b.state("h3", dup);
        assertEquals([state?.held, state?.reason, state?.cluster], [false, "DuplicateAddress", null]);
        for (const ip of [dup, `${net.subnet}.130`, `${net.subnet}.132`, `${net.subnet}.133`]) {
          assertEquals(await net.holders(ip), [], `${ip} is on no host`);
        }

        const many: Record<string, unknown>[] = [];
        for (let i = 0; i < 1000; i++) {
          const ip = `10.77.${i >> 8}.${(i & 255) + 1}`;
          many.push(mpdCluster(`many-${i}`, manual(ip, i % 2 ? "MultiIP" : "VirtualIF"), "elsewhere"));
        }
        for (const object of many) cluster.server.put(object);
        const to = other(holder);
        const since = b.setLeader(to);
        const took = await b.expectOn(to, since);
        holder = to;
        console.log(`a move with 1,000 more clusters in the cache: ${Math.max(...took)} ms`);
        for (const host of HOSTS) {
          const status = await Promise.race([net.daemon(host)!.process.child.status, Promise.resolve(null)]);
          assertEquals(status, null, `the daemon of ${host} still runs`);
          const health = await net.daemonGet(host, "/healthz") as { status: string };
          assertEquals(health.status, "ok");
          console.log(`${host}: RSS ${(await rss(net, host)).toFixed(1)} MB with 1,007 clusters in the cache`);
        }
      });

      await step(
        t,
        "metrics on the holder: addresses held, moves, the announce histogram; promtool accepts them",
        async () => {
          const r = await net.hosts[holder].exec(["curl", "-sS", `http://127.0.0.1:8900/metrics`]);
          assertEquals(r.code, 0, r.stderr);
          assertEquals(metricSum(r.stdout, "polarstack_daemon_floating_ip_held"), 2);
          assert(metricSum(r.stdout, "polarstack_daemon_floating_ip_moves_total") >= 1, "moves counted");
          assert(
            metricSum(r.stdout, "polarstack_daemon_floating_ip_announce_seconds_count") >= 2,
            "announcements timed",
          );
          assert(r.stdout.includes("polarstack_daemon_floating_ip_conflicts_total"), "conflicts counted");
          const file = await Deno.makeTempFile();
          try {
            await Deno.writeTextFile(file, r.stdout);
            const check = await run(["sh", "-c", `promtool check metrics < ${file}`]);
            assertEquals(check.code, 0, check.stdout + check.stderr);
          } finally {
            await Deno.remove(file);
          }
        },
      );

      await step(
        t,
        "once floating-ip --dry-run --json: the same shape, nothing changed on the host or the cluster",
        async () => {
          for (const host of HOSTS) await net.stopDaemon(host);
          const before = await Promise.all(clusters.map((c) => net.holders(c.ip)));
          cluster.server.clearRequests();
          const r = await net.hosts[holder].exec([
            "env",
            "NO_COLOR=1",
            ...daemonCommand(["once", "floating-ip", "--dry-run", "--json", ...b.daemonArgs()]),
            "--current-node-name",
            holder,
            "--net-card-name",
            "bond1",
          ]);
          assertEquals(r.code, 0, r.stderr);
          const data = JSON.parse(r.stdout) as { node: string; addresses: AddressState[] };
          assertEquals(data.node, holder);
          for (const c of clusters) {
            const a = data.addresses.find((x) => x.address === c.ip);
            assertEquals([a?.cluster, a?.mode, a?.nic], [`${NS}/${c.name}`, c.mode, "bond1"], JSON.stringify(a));
          }
          assertEquals(await Promise.all(clusters.map((c) => net.holders(c.ip))), before);
          const writes = cluster.server.requests.filter((q) => q.method !== "GET");
          assertEquals(writes.map((q) => `${q.method} ${q.path}`), [], "a dry run writes nothing");
        },
      );
    } finally {
      await sampler.stop();
      await net.remove();
      await cluster.close();
    }
    const report = sampler.report();
    console.log(`sampler: ${report.samples} samples, longest gap ${report.maxGapMs} ms, ${report.errors} errors`);
    sampler.assertNoDoubles("never two holders");
    assert(report.samples > 100, `${report.samples} samples`);
  },
});
