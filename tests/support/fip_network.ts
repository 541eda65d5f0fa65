/**
 * The floating-IP test network: a `switch` namespace holding bridge br0, hosts h1, h2, h3 and a client c, each
 * joined to it by a veth pair whose host end is `bond1`, all in one /24 of 198.18.0.0/15 picked per run. The root
 * namespace joins the bridge too (port `api` on the switch side) with the subnet's .254, so a fake API server that
 * listens there is reachable from every host; taking that port down cuts the hosts off the API server while the
 * test keeps its own access. Each host can run its own daemon process and an HTTP listener that answers with the
 * host's name; the client is the referee (its neighbour table, a TCP connect with curl).
 */
import { canMakeNetns, createNetns, type NetNs, type NsProcess, run, startIn } from "./netns.ts";
import { daemonCommand, waitFor } from "./daemon_process.ts";
import { MALLOC_ENV } from "../../config/config.ts";
import { createDaemonHost, type DaemonHost } from "./faults_cluster.ts";
import { hasCommand } from "./prereq.ts";

/** The host names of the network, as the daemons' `--current-node-name`. */
export const HOSTS = ["h1", "h2", "h3"] as const;

/** One of h1, h2, h3. */
export type HostName = (typeof HOSTS)[number];

/** The HTTP API port of every host's daemon (each host is its own namespace). */
export const DAEMON_PORT = 8900;

/** The port of every host's HTTP listener, which answers with the host's name. */
export const LISTENER_PORT = 18080;

/** Whether this machine can make the network: root, iproute2, arping, sysctl and curl. */
export function canMakeFipNetwork(): boolean {
  return canMakeNetns() && hasCommand("arping") && hasCommand("sysctl") && hasCommand("curl");
}

/** An IPv4 address on one interface of a host, as `ip -j addr` lists it. */
export interface InterfaceAddress {
  /** The interface. */
  readonly ifname: string;
  /** The address. */
  readonly ip: string;
  /** Its prefix length. */
  readonly prefix: number;
  /** Its label. */
  readonly label: string;
}

/** Another namespace on the bridge that answers for an address (a planted conflict). */
export interface Squatter {
  /** The namespace. */
  readonly ns: NetNs;
  /** The MAC that answers. */
  readonly mac: string;
  /** Deletes it (the address goes with it). */
  remove(): Promise<void>;
}

/** One host's daemon process. */
export interface HostDaemon {
  /** The host. */
  readonly host: HostName;
  /** The process (`ip netns exec <host> deno run ... main.ts ...`). */
  readonly process: NsProcess;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
}

/** The network of one test run. */
export interface FipNetwork {
  /** The first three octets of the subnet, e.g. `198.18.7`. */
  readonly subnet: string;
  /** The root namespace's address on the bridge, where the fake API server listens. */
  readonly apiAddress: string;
  /** The switch namespace. */
  readonly sw: NetNs;
  /** The client namespace. */
  readonly c: NetNs;
  /** The host namespaces. */
  readonly hosts: Readonly<Record<HostName, NetNs>>;
  /** The host address of a host's bond1 (`<subnet>.1` for h1, ...). */
  hostAddress(host: HostName): string;
  /** The MAC of an interface of a host (bond1 by default). */
  mac(host: HostName, dev?: string): Promise<string>;
  /** Every IPv4 address of a host. */
  addresses(host: HostName): Promise<InterfaceAddress[]>;
  /** The hosts that carry `ip` right now, read in parallel. */
  holders(ip: string): Promise<HostName[]>;
  /** The client's neighbour entry (MAC) for `ip` on its bond1, or null when it has none. */
  neighbourMac(ip: string): Promise<string | null>;
  /** Sends ARP requests for `ip` from the client (arping): the MACs that answered, none when nobody did. */
  arpingFromClient(ip: string): Promise<string[]>;
  /** Starts each host's HTTP listener on LISTENER_PORT (answers the host's name). */
  startListeners(): Promise<void>;
  /** A TCP connect (HTTP GET) from the client to ip:LISTENER_PORT: the name of the host that answered, or null. */
  connect(ip: string): Promise<string | null>;
  /** Plants a namespace on the bridge that carries `ip` (another host answering for the address). */
  plantSquatter(ip: string): Promise<Squatter>;
  /** Cuts (false) or restores (true) the hosts' path to the API server. */
  setApiReachable(reachable: boolean): Promise<void>;
  /**
   * Starts a host's daemon with `args` after the common flags (its node name, bond1, its own log root and fake
   * Docker socket, the API port) and waits until /healthz answers.
   */
  startDaemon(host: HostName, args: readonly string[]): Promise<HostDaemon>;
  /** SIGKILL of a host's daemon: it leaves everything it made in place. */
  killDaemon(host: HostName): Promise<void>;
  /** SIGTERM of a host's daemon, waiting for its exit. */
  stopDaemon(host: HostName): Promise<void>;
  /** The running daemon of a host, if any. */
  daemon(host: HostName): HostDaemon | undefined;
  /** GET of a path of a host's daemon API (from inside the host), as JSON. */
  daemonGet(host: HostName, path: string): Promise<unknown>;
  /** Stops every process and deletes every namespace (their interfaces go with them). */
  remove(): Promise<void>;
}

interface RawLink {
  ifname: string;
  address?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number; label?: string }[];
}

function mustSucceed(r: { code: number; stderr: string }, what: string): void {
  if (r.code !== 0) throw new Error(`Cannot ${what}: ${r.stderr.trim()}`);
}

async function joinBridge(sw: NetNs, ns: NetNs, port: string, cidr: string): Promise<void> {
  await ns.ip("link", "add", "bond1", "type", "veth", "peer", "name", port, "netns", sw.name);
  await sw.ip("link", "set", port, "master", "br0");
  await sw.ip("link", "set", port, "up");
  await ns.ip("addr", "add", cidr, "dev", "bond1");
  await ns.ip("link", "set", "bond1", "up");
}

const LISTENER = `Deno.serve({ hostname: "0.0.0.0", port: ${LISTENER_PORT},
  onListen: () => console.log("listening") }, () => new Response(Deno.args[0]));`;

/** Makes the network; on a failure part-way, removes what it made. Call `remove()` in a `finally`. */
export async function createFipNetwork(): Promise<FipNetwork> {
  const subnet = `198.${18 + Math.floor(Math.random() * 2)}.${Math.floor(Math.random() * 256)}`;
  const apiAddress = `${subnet}.254`;
  const rootEnd = `psf${crypto.randomUUID().slice(0, 8)}`;
  const made: NetNs[] = [];
  const processes: NsProcess[] = [];
  const daemons = new Map<HostName, HostDaemon>();
  const daemonHosts = new Map<HostName, DaemonHost>();
  const make = async () => {
    const ns = await createNetns();
    made.push(ns);
    return ns;
  };
  const removeAll = async () => {
    for (const d of daemons.values()) await d.process.stop();
    daemons.clear();
    for (const p of processes.reverse()) await p.stop();
    for (const ns of made.reverse()) await ns.remove();
    await run(["ip", "link", "del", rootEnd]);
    for (const h of daemonHosts.values()) await h.close();
  };
  try {
    const sw = await make();
    await sw.ip("link", "add", "br0", "type", "bridge");
    await sw.ip("link", "set", "br0", "up");
    const hosts = {} as Record<HostName, NetNs>;
    for (const [i, name] of HOSTS.entries()) {
      hosts[name] = await make();
      await joinBridge(sw, hosts[name], name, `${subnet}.${i + 1}/24`);
    }
    const c = await make();
    await joinBridge(sw, c, "c", `${subnet}.200/24`);
    mustSucceed(
      await run(["ip", "link", "add", rootEnd, "type", "veth", "peer", "name", "api", "netns", sw.name]),
      `add ${rootEnd}`,
    );
    await sw.ip("link", "set", "api", "master", "br0");
    await sw.ip("link", "set", "api", "up");
    mustSucceed(await run(["ip", "addr", "add", `${apiAddress}/24`, "dev", rootEnd]), `address ${rootEnd}`);
    mustSucceed(await run(["ip", "link", "set", rootEnd, "up"]), `set ${rootEnd} up`);

    const addresses = async (host: HostName): Promise<InterfaceAddress[]> => {
      const r = await hosts[host].exec(["ip", "-j", "addr", "show"]);
      mustSucceed(r, `list the addresses of ${host}`);
      return (JSON.parse(r.stdout) as RawLink[]).flatMap((l) =>
        (l.addr_info ?? []).filter((a) => a.family === "inet").map((a) => ({
          ifname: l.ifname,
          ip: a.local ?? "",
          prefix: a.prefixlen ?? 0,
          label: a.label ?? l.ifname,
        }))
      );
    };
    const mac = async (ns: NetNs, dev: string) => {
      const r = await ns.exec(["ip", "-j", "link", "show", dev]);
      mustSucceed(r, `read the MAC of ${dev} in ${ns.name}`);
      return (JSON.parse(r.stdout) as RawLink[])[0].address ?? "";
    };
    const curl = (ns: NetNs, url: string) => ns.exec(["curl", "-sS", "--max-time", "3", url]);

    const network: FipNetwork = {
      subnet,
      apiAddress,
      sw,
      c,
      hosts,
      hostAddress: (host) => `${subnet}.${HOSTS.indexOf(host) + 1}`,
      mac: (host, dev = "bond1") => mac(hosts[host], dev),
      addresses,
      async holders(ip) {
        const lists = await Promise.all(HOSTS.map(addresses));
        return HOSTS.filter((_, i) => lists[i].some((a) => a.ip === ip));
      },
      async neighbourMac(ip) {
        const r = await c.exec(["ip", "-j", "neigh", "show", ip, "dev", "bond1"]);
        mustSucceed(r, `read the client's neighbour entry for ${ip}`);
        const entries = JSON.parse(r.stdout) as { dst: string; lladdr?: string }[];
        return entries.find((e) => e.dst === ip)?.lladdr ?? null;
      },
      async arpingFromClient(ip) {
        const r = await c.exec(["arping", "-c", "2", "-w", "2", "-I", "bond1", ip]);
        return [
          ...new Set([...r.stdout.matchAll(/reply from \S+ \[([0-9A-Fa-f:]+)\]/g)].map((m) => m[1].toLowerCase())),
        ];
      },
      async startListeners() {
        for (const host of HOSTS) {
          const started = await startIn(hosts[host], [Deno.execPath(), "eval", LISTENER, host], {
            ready: /listening/,
          });
          processes.push(started.process);
        }
      },
      async connect(ip) {
        const r = await curl(c, `http://${ip}:${LISTENER_PORT}/`);
        return r.code === 0 ? r.stdout.trim() : null;
      },
      async plantSquatter(ip) {
        const ns = await make();
        const port = `x${made.length}`;
        await joinBridge(sw, ns, port, `${subnet}.250/24`);
        await ns.ip("addr", "add", `${ip}/24`, "dev", "bond1");
        return {
          ns,
          mac: await mac(ns, "bond1"),
          async remove() {
            // A namespace's interfaces go some time after `ip netns del` returns: the link is deleted first, at once.
            await ns.ip("link", "del", "bond1");
            await ns.remove();
            made.splice(made.indexOf(ns), 1);
          },
        };
      },
      async setApiReachable(reachable) {
        await sw.ip("link", "set", "api", reachable ? "up" : "down");
      },
      async startDaemon(host, args) {
        if (daemons.has(host)) throw new Error(`The daemon of ${host} is already running`);
        let dh = daemonHosts.get(host);
        if (!dh) {
          dh = await createDaemonHost();
          daemonHosts.set(host, dh);
        }
        const argv = daemonCommand([
          "--port",
          String(DAEMON_PORT),
          "--current-node-name",
          host,
          "--net-card-name",
          "bond1",
          "--dbcluster-log-dir",
          dh.logRoot,
          "--docker-host",
          `unix://${dh.dockerSocket}`,
          "--image-store",
          "docker",
          ...args,
        ]);
        const { process } = await startIn(hosts[host], argv, {
          cwd: new URL("../../", import.meta.url).pathname,
          env: { ...MALLOC_ENV, HOME: dh.dir },
        });
        const daemon: HostDaemon = { host, process, stderr: () => process.stderr() };
        daemons.set(host, daemon);
        let exited = false;
        process.child.status.then(() => exited = true, () => exited = true);
        const up = await waitFor(async () => {
          if (exited) return "exited";
          const r = await curl(hosts[host], `http://127.0.0.1:${DAEMON_PORT}/healthz`);
          return r.code === 0 ? "up" : null;
        }, { what: `the daemon of ${host} to answer /healthz`, timeoutMs: 30_000 }).catch((error) => error.message);
        if (up !== "up") {
          daemons.delete(host);
          await process.stop();
          throw new Error(`The daemon of ${host} did not start (${up}); stderr:\n${process.stderr().slice(-3000)}`);
        }
        return daemon;
      },
      async killDaemon(host) {
        const d = daemons.get(host);
        if (!d) throw new Error(`No daemon runs on ${host}`);
        d.process.child.kill("SIGKILL");
        await d.process.stop();
        daemons.delete(host);
      },
      async stopDaemon(host) {
        const d = daemons.get(host);
        if (!d) throw new Error(`No daemon runs on ${host}`);
        await d.process.stop();
        daemons.delete(host);
      },
      daemon: (host) => daemons.get(host),
      async daemonGet(host, path) {
        const r = await curl(hosts[host], `http://127.0.0.1:${DAEMON_PORT}${path}`);
        mustSucceed(r, `GET ${path} from the daemon of ${host}`);
        return JSON.parse(r.stdout);
      },
      remove: removeAll,
    };
    return network;
  } catch (error) {
    await removeAll();
    throw error;
  }
}
