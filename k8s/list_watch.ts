/** The list and watch calls of one REST collection, as an informer's source. */
import type { KubeClient } from "./client.ts";
import { KubeError } from "./errors.ts";
import type { KubeObjectLike, ListWatch, RawWatchEvent } from "./informer.ts";

/** One collection: its path (a namespace's or all namespaces') and selectors. */
export interface Collection<T = unknown> {
  /** The collection's URL path, e.g. `/apis/mpd.polardb.aliyun.com/v1/mpdclusters`. */
  readonly path: string;
  /** Names it in errors: `MPDClusters in all namespaces`. */
  readonly what: string;
  /** Label selector, e.g. `configtype=minor_version_info`. */
  readonly labelSelector?: string;
  /** Field selector, e.g. `metadata.name=ccm-config`. */
  readonly fieldSelector?: string;
  /**
   * What the cache keeps of each object (default: all of it). It gets any JSON value, however malformed, and must
   * keep `metadata`'s name, namespace and resourceVersion.
   */
  readonly keep?: (object: unknown) => T;
}

/** The source of an informer for one collection, through the client's rate limit and token. */
export function collectionSource<T extends KubeObjectLike>(kube: KubeClient, collection: Collection<T>): ListWatch<T> {
  const selectors = { labelSelector: collection.labelSelector, fieldSelector: collection.fieldSelector };
  const keep = collection.keep;
  return {
    what: collection.what,
    async list(signal) {
      // In pages, as client-go's reflector lists: what a page parses to is dropped (after `keep`) before the next
      // one is read, so a long list never sits in memory whole.
      const items: T[] = [];
      let version: string | undefined;
      let token: string | undefined;
      do {
        const answer = await kube.withSignal(signal).request("GET", collection.path, {
          what: `list ${collection.what}`,
          query: { ...selectors, limit: String(LIST_PAGE_SIZE), continue: token },
          // The informer backs off itself, and says why meanwhile.
          retries: 0,
          background: true,
        }) as { items?: unknown; metadata?: { resourceVersion?: unknown; continue?: unknown } } | null;
        const pageVersion = answer?.metadata?.resourceVersion;
        if (!Array.isArray(answer?.items) || typeof pageVersion !== "string") {
          throw new KubeError(`Cannot list ${collection.what}: the answer has no items or no resourceVersion`, {
            status: 200,
          });
        }
        for (const item of answer.items) items.push(keep ? keep(item) : item as T);
        version ??= pageVersion;
        const next = answer.metadata?.continue;
        token = typeof next === "string" && next !== "" ? next : undefined;
      } while (token !== undefined);
      return { items, resourceVersion: version! };
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
      return keep ? keptEvents(stream as AsyncIterable<RawWatchEvent>, keep) : stream as AsyncIterable<RawWatchEvent>;
    },
  };
}

// Objects per list page: 1,000 MPDClusters as the operator writes them are about 5 MB of JSON in one answer.
const LIST_PAGE_SIZE = 100;

// A bookmark's or an error's object is not one of the collection's: it passes as it is.
const OBJECT_EVENTS = new Set(["ADDED", "MODIFIED", "DELETED"]);

async function* keptEvents<T>(
  stream: AsyncIterable<RawWatchEvent>,
  keep: (object: unknown) => T,
): AsyncIterableIterator<RawWatchEvent> {
  for await (const event of stream) {
    yield OBJECT_EVENTS.has(event?.type as string) ? { type: event.type, object: keep(event.object) } : event;
  }
}
