/** Test support of the node-network job: a fake sysfs folder, a movable clock, ipmitool fixtures, deps, options. */
import { getLogger } from "@logtape/logtape";
import { type Config, defaultConfig } from "../../config/config.ts";
import type { JobDeps } from "../../controllers/deps.ts";
import type { NodeNetworkOptions } from "../../controllers/node_network/job.ts";
import type { Clock, DaemonEvent } from "../../core/types.ts";
import { type CommandRunner, createCommandRunner } from "../../host/command.ts";
import type { InterfaceAddress } from "../../host/net_probe.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { nodeNetworkOptions } from "../../job_options.ts";
import { jobDeps } from "./job_deps.ts";
import { waitFor } from "./daemon_process.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

/** The ipmitool fixtures: a normal answer, a failure (exit 1 + stderr), a hang; `missing` runs no such command. */
export type IpmitoolMode = "ok" | "fail" | "hang" | "missing";

/** The path of an ipmitool fixture executable. */
export function ipmitoolFixture(mode: Exclude<IpmitoolMode, "missing">): string {
  return `${FIXTURES}${mode === "ok" ? "ipmitool" : `ipmitool_${mode}`}`;
}

/** A real command runner that runs the chosen fixture in place of `ipmitool`, and counts the runs. */
export function ipmitoolRunner(mode: IpmitoolMode): CommandRunner & { calls: number } {
  const real = createCommandRunner();
  const runner = ((argv, options) => {
    runner.calls++;
    const program = mode === "missing" ? "psd-test-no-such-ipmitool" : ipmitoolFixture(mode);
    return real([argv[0] === "ipmitool" ? program : argv[0], ...argv.slice(1)], options);
  }) as CommandRunner & { calls: number };
  runner.calls = 0;
  return runner;
}

/** Counts the runs of a runner that have finished, so a test can wait for an answer to land. */
export function finishing(runner: CommandRunner & { calls: number }) {
  let done = 0;
  const wrapped = ((argv, options) => runner(argv, options).finally(() => done++)) as CommandRunner;
  return {
    runner: wrapped,
    get calls() {
      return runner.calls;
    },
    // The controller reads the answer in the same turn as the run ends; one timer turn later it is recorded.
    landed: () =>
      waitFor(() => done === runner.calls, { what: "the ipmitool answer" }).then(() =>
        new Promise((r) => setTimeout(r, 0))
      ),
  };
}

/** A writable fake of /sys/class/net and the address list, for odd states without a namespace. */
export interface FakeHost {
  /** The fake sysfs folder. */
  readonly sysfsRoot: string;
  /** The address list to hand to the probe. */
  readonly interfaces: () => readonly InterfaceAddress[];
  /** Creates or changes an interface (operstate, flags, carrier; null carrier = unreadable). */
  setLink(nic: string, link: { operstate: string; flags?: number; carrier?: number | null }): Promise<void>;
  /** Sets the IPv4 addresses of an interface. */
  setAddresses(nic: string, addresses: string[]): void;
  /** Deletes an interface. */
  removeLink(nic: string): Promise<void>;
  /** Removes the folder. */
  cleanup(): Promise<void>;
}

/** Makes an empty fake host. */
export async function fakeHost(): Promise<FakeHost> {
  const sysfsRoot = await Deno.makeTempDir({ prefix: "psd-sysfs-" });
  const addresses = new Map<string, string[]>();
  return {
    sysfsRoot,
    interfaces: () =>
      [...addresses].flatMap(([name, list]) => list.map((address) => ({ name, family: "IPv4" as const, address }))),
    async setLink(nic, { operstate, flags = 0x1003, carrier = 1 }) {
      await Deno.mkdir(`${sysfsRoot}/${nic}`, { recursive: true });
      await Deno.writeTextFile(`${sysfsRoot}/${nic}/operstate`, `${operstate}\n`);
      await Deno.writeTextFile(`${sysfsRoot}/${nic}/flags`, `0x${flags.toString(16)}\n`);
      await Deno.remove(`${sysfsRoot}/${nic}/carrier`).catch(() => {});
      if (carrier !== null) await Deno.writeTextFile(`${sysfsRoot}/${nic}/carrier`, `${carrier}\n`);
    },
    setAddresses(nic, list) {
      addresses.set(nic, list);
    },
    async removeLink(nic) {
      await Deno.remove(`${sysfsRoot}/${nic}`, { recursive: true });
      addresses.delete(nic);
    },
    cleanup: () => Deno.remove(sysfsRoot, { recursive: true }),
  };
}

/** The job's options as the daemon builds them from its flags: the defaults, Node node-1, and the overrides. */
export function testOptions(config: Partial<Config> = {}): NodeNetworkOptions {
  // The tests' clients ask the server at every read: the settings' refresh is that of --cluster-cache=false.
  return nodeNetworkOptions(defaultConfig({ currentNodeName: "node-1", clusterCache: false, ...config }));
}

/** JobDeps for a test: the cluster (or null), a clock, a runner; events are collected. */
export function testDeps(
  options: { kube: KubeClient | null; clock: Clock; runCommand: CommandRunner },
): JobDeps & { recorded: DaemonEvent[] } {
  return jobDeps({ ...options, log: getLogger(["polarstack-daemon", "test", "node-network"]) });
}

/** A condition's status, reason and message, to compare in one assertion. */
export function statusReasonMessage(
  condition: { status?: string; reason?: string; message?: string } | undefined,
): (string | undefined)[] {
  return [condition?.status, condition?.reason, condition?.message];
}
