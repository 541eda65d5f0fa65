/**
 * The node-network job's two settings in the cluster: the interface (`ccm-config` / `NET_CARD_NAME`) and whether
 * the BMC address is reported (`controller-config` / `isCheckOObIP`), each re-read at most every `refreshMs`.
 */
import type { Logger } from "../../core/types.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { createSettingReader } from "../../k8s/config_maps.ts";
import { KubeError } from "../../k8s/errors.ts";
import { parseLenientBool } from "../../k8s/values.ts";

/** The interface when neither the flag nor `ccm-config` names one. */
export const DEFAULT_NIC = "bond1";

interface Cached<T> {
  readonly value: T;
  readonly readAt: number;
}

/** What the reader remembers between runs: the last value of each setting and when it was read. */
interface SettingsMemory {
  nic: Cached<string> | null;
  checkOob: Cached<boolean> | null;
}

/** The settings as one run reads them. */
export interface NodeNetworkSettings {
  /** The interface to probe: the flag's, else `ccm-config`'s, else bond1 (also in local mode). */
  interfaceName(api: KubeClient | null, now: number): Promise<string>;
  /** Whether to report NodeOobIP (true in local mode and when `controller-config` does not say). */
  checkOob(api: KubeClient | null, now: number): Promise<boolean>;
}

/** How one setting is read, and what is said when it cannot be. */
interface SettingRead<T> {
  /** What a failed first read uses; none: the run fails. */
  readonly fallback?: T;
  readonly load: () => Promise<T>;
  readonly warn: (value: T, error: string) => void;
}

/** Makes the settings reader; `netCardName` is the flag (empty: read `ccm-config`). */
export function createNodeNetworkSettings(
  log: Logger,
  options: { netCardName: string; refreshMs: number },
): NodeNetworkSettings {
  const readSetting = createSettingReader(log);
  const memory: SettingsMemory = { nic: null, checkOob: null };

  // A failed read keeps the last value (or the default, when there is one) until the next refresh; a stopped run gives
  // up. The interface has no such default: a ccm-config that cannot be read is not a missing one, and probing bond1
  // would report the wrong interface's state, so that run fails.
  async function refresh<T>(cached: Cached<T> | null, now: number, read: SettingRead<T>): Promise<Cached<T>> {
    if (cached && now - cached.readAt < options.refreshMs) return cached;
    try {
      return { value: await read.load(), readAt: now };
    } catch (error) {
      const value = cached ? cached.value : read.fallback;
      if ((error instanceof KubeError && error.stopped) || value === undefined) throw error;
      read.warn(value, (error as Error).message);
      return { value, readAt: now };
    }
  }

  return {
    async interfaceName(api, now) {
      if (options.netCardName) return options.netCardName;
      if (api === null) return DEFAULT_NIC;
      const before = memory.nic;
      memory.nic = await refresh(before, now, {
        load: async () =>
          (await readSetting(api, { configMap: "ccm-config", key: "NET_CARD_NAME", fallback: DEFAULT_NIC }))
            ?.trim() || DEFAULT_NIC,
        warn: (nic, error) => log.warn("Cannot read the interface name, using {nic}: {error}", { nic, error }),
      });
      if (before && before.value !== memory.nic.value) {
        log.info("Client-network interface is now {nic}", { nic: memory.nic.value });
      }
      return memory.nic.value;
    },
    async checkOob(api, now) {
      if (api === null) return true;
      memory.checkOob = await refresh(memory.checkOob, now, {
        // Only decides whether ipmitool runs: the default is safe to use.
        fallback: true,
        load: async () =>
          parseLenientBool(
            await readSetting(api, { configMap: "controller-config", key: "isCheckOObIP", fallback: "true" }),
            true,
          ),
        warn: (value, error) => log.warn("Cannot read isCheckOObIP, using {value}: {error}", { value, error }),
      });
      return memory.checkOob.value;
    },
  };
}
