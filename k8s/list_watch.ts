/** The list and watch calls of one REST collection, as an informer's source. */
import type { KubeClient } from "./client.ts";
import { KubeError } from "./errors.ts";
import type { KubeObjectLike, ListWatch, RawWatchEvent } from "./informer.ts";

/** One collection: its path (a namespace's or all namespaces') and selectors. */
export interface Collection {
  /** The collection's URL path, e.g. `/apis/mpd.polardb.aliyun.com/v1/mpdclusters`. */
  readonly path: string;
  /** Names it in errors: `MPDClusters in all namespaces`. */
  readonly what: string;
  /** Label selector, e.g. `configtype=minor_version_info`. */
  readonly labelSelector?: string;
  /** Field selector, e.g. `metadata.name=ccm-config`. */
  readonly fieldSelector?: string;
}

/** The source of an informer for one collection, through the client's rate limit and token. */
export function collectionSource<T extends KubeObjectLike>(kube: KubeClient, collection: Collection): ListWatch<T> {
  const selectors = { labelSelector: collection.labelSelector, fieldSelector: collection.fieldSelector };
  return {
    what: collection.what,
    async list(signal) {
      const answer = await kube.withSignal(signal).request("GET", collection.path, {
        what: `list ${collection.what}`,
        query: selectors,
        // The informer backs off itself, and says why meanwhile.
        retries: 0,
        background: true,
      }) as { items?: unknown; metadata?: { resourceVersion?: unknown } } | null;
      const version = answer?.metadata?.resourceVersion;
      if (!Array.isArray(answer?.items) || typeof version !== "string") {
        throw new KubeError(`Cannot list ${collection.what}: the answer has no items or no resourceVersion`, {
          status: 200,
        });
      }
      return { items: answer.items as T[], resourceVersion: version };
    },
    async watch(resourceVersion, { signal, timeoutSeconds }) {
      const stream = await kube.openStream(collection.path, {
        what: `watch ${collection.what}`,
        query: {
          ...selectors,
          watch: "true",
          allowWatchBookmarks: "true",
          resourceVersion,
          timeoutSeconds: String(timeoutSeconds),
        },
        signal,
        background: true,
      });
      return stream as AsyncIterable<RawWatchEvent>;
    },
  };
}
