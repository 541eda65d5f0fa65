/**
 * The floating-IP job's two settings in the cluster: the client NIC (`ccm-config` / `NET_CARD_NAME`, the default of
 * `basedNetIf`) and the switch (`controller-config` / `enableVip`), each re-read at most every `refreshMs`.
 */
import type { Logger } from "../../core/types.ts";
import type { KubeClient } from "../../k8s/client.ts";
import { createSettingReader } from "../../k8s/config_maps.ts";
import { parseLenientBool } from "../../k8s/values.ts";
import { DEFAULT_NIC } from "../node_network/settings.ts";

/** The settings as one run reads them; `known` is false when `controller-config` could not be read yet. */
export interface FloatingIpSettingValues {
  readonly clientNic: string;
  readonly enableVip: boolean;
  readonly known: boolean;
}

/** The settings reader: `read` at most every `refreshMs`, and `last()`, which reads nothing. */
export interface FloatingIpSettings {
  (api: KubeClient | null, now: number): Promise<FloatingIpSettingValues>;
  /** The values as last read, marked unknown (they may be stale). */
  last(): FloatingIpSettingValues;
}

/** Makes the reader; a failed read keeps the last values (and says so), and before any read `known` is false. */
export function createFloatingIpSettings(
  log: Logger,
  options: { netCardName: string; refreshMs: number },
): FloatingIpSettings {
  const readSetting = createSettingReader(log);
  let last: (FloatingIpSettingValues & { readAt: number }) | null = null;
  const read = async (api: KubeClient | null, now: number): Promise<FloatingIpSettingValues> => {
    if (api === null) return { clientNic: options.netCardName || DEFAULT_NIC, enableVip: false, known: false };
    if (last?.known && now - last.readAt < options.refreshMs) return last;
    try {
      const vip = await readSetting(api, { configMap: "controller-config", key: "enableVip", fallback: "false" });
      const nic = options.netCardName ||
        (await readSetting(api, { configMap: "ccm-config", key: "NET_CARD_NAME", fallback: DEFAULT_NIC }))?.trim() ||
        DEFAULT_NIC;
      last = { clientNic: nic, enableVip: parseLenientBool(vip, false), known: true, readAt: now };
    } catch (error) {
      log.warn("Cannot read enableVip and NET_CARD_NAME, keeping every floating IP as it is: {error}", {
        error: (error as Error).message,
      });
      last = {
        clientNic: last?.clientNic ?? (options.netCardName || DEFAULT_NIC),
        enableVip: false,
        known: false,
        readAt: now,
      };
    }
    return last;
  };
  return Object.assign(read, {
    last: (): FloatingIpSettingValues => ({
      clientNic: last?.clientNic ?? (options.netCardName || DEFAULT_NIC),
      enableVip: last?.enableVip ?? false,
      known: false,
    }),
  });
}
