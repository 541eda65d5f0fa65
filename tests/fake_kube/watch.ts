/**
 * Watches of the fake Kubernetes API server, with the real server's semantics: a watch without a resourceVersion
 * (or with "0") first sends every matching object as ADDED, then the changes; one with a resourceVersion sends the
 * changes after it, or, when they are no longer kept, an ERROR event with the 410 Expired Status in a 200 stream,
 * and ends. A selector turns a change that makes an object match into ADDED and one that makes it stop matching
 * into DELETED. `allowWatchBookmarks=true` adds BOOKMARK events carrying only the resourceVersion;
 * `timeoutSeconds` ends the stream cleanly. The stream is one JSON object per line.
 */
import type { FakeFault } from "./faults.ts";
import { apiVersionOf, type KubeObject, RESOURCES } from "./resources.ts";
import { failure, failureStatus } from "./responses.ts";
import type { Route } from "./routes.ts";
import {
  type FieldRequirement,
  type LabelRequirement,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from "./selectors.ts";
import type { FakeStore, StoreEvent } from "./store.ts";

/** Options of the watches of a fake server. */
export interface WatchOptions {
  /** How often a watch that allows bookmarks gets one, in ms. */
  readonly bookmarkIntervalMs: number;
  /** How long a watch without `timeoutSeconds` lasts, in seconds (the real server's minimum request timeout). */
  readonly defaultTimeoutSeconds: number;
}

/** An open watch, as the fake server's control API lists it. */
export interface FakeWatchInfo {
  /** The URL path, e.g. `/api/v1/namespaces/kube-system/configmaps`. */
  readonly path: string;
  /** The raw query string without `?`. */
  readonly query: string;
  /** When it was opened, in ms since the epoch. */
  readonly since: number;
}

/** How a watch ends: the server closes the stream, or the connection is cut. */
type Ending = "close" | "cut";

interface OpenWatch {
  readonly info: FakeWatchInfo;
  /** Sends one event (held while the watch is stalled). */
  send(event: { type: string; object: KubeObject }): void;
  /** Holds every event for `ms`, as a hung server would. */
  stall(ms: number): void;
  /** Ends the stream. */
  end(how: Ending): void;
}

const ENCODER = new TextEncoder();

/** The open watches of one store, and the control over them. */
export class WatchHub {
  #store: FakeStore;
  #options: WatchOptions;
  #open = new Set<OpenWatch>();

  /** Serves the watches of `store`. */
  constructor(store: FakeStore, options: WatchOptions) {
    this.#store = store;
    this.#options = options;
  }

  /** The open watches. */
  list(): FakeWatchInfo[] {
    return [...this.#open].map((w) => w.info);
  }

  /** Ends every open watch, cleanly (`cut: false`, as on its timeout) or by cutting the connection; returns how many. */
  drop(options: { cut?: boolean } = {}): number {
    const count = this.#open.size;
    for (const watch of [...this.#open]) watch.end(options.cut ? "cut" : "close");
    return count;
  }

  /**
   * What a fault does to the open watches it matches (method GET or any, path prefix, `watch` not false): a drop
   * cuts them, a status ends them with an ERROR event of that Status, a delay alone stalls them for that long.
   */
  fault(fault: FakeFault): void {
    if (fault.watch === false || (fault.method && fault.method.toUpperCase() !== "GET")) return;
    for (const watch of [...this.#open]) {
      if (!watch.info.path.startsWith(fault.pathPrefix)) continue;
      if (fault.drop) watch.end("cut");
      else if (fault.status) {
        watch.send({ type: "ERROR", object: failureStatus(fault.status, `injected fault: ${fault.status}`) });
        watch.end("close");
      } else if (fault.delayMs) watch.stall(fault.delayMs);
    }
  }

  /** Opens a watch of a collection, or answers why not (400 for a bad selector or resourceVersion). */
  open(route: Route, url: URL): Response {
    const info = RESOURCES[route.resource];
    const params = url.searchParams;
    let labels: LabelRequirement[], fields: FieldRequirement[];
    try {
      labels = parseLabelSelector(params.get("labelSelector") ?? "");
      fields = parseFieldSelector(params.get("fieldSelector") ?? "", info.fields);
    } catch (error) {
      return failure(400, (error as Error).message);
    }
    const from = params.get("resourceVersion") ?? "";
    if (from !== "" && !/^[0-9]+$/.test(from)) return failure(400, `invalid resource version: ${JSON.stringify(from)}`);
    const timeout = params.get("timeoutSeconds");
    if (timeout !== null && !/^[0-9]+$/.test(timeout)) {
      return failure(400, `invalid timeoutSeconds: ${JSON.stringify(timeout)}`);
    }
    const bookmarks = ["1", "t", "true", "True", "TRUE"].includes(params.get("allowWatchBookmarks") ?? "");
    const matches = (object: KubeObject) =>
      (route.namespace === undefined || object.metadata?.namespace === route.namespace) &&
      matchesLabels(labels, object.metadata?.labels) && matchesFields(fields, object);
    const store = this.#store;
    const open = this.#open;
    const options = this.#options;
    const start = from === "" || from === "0" ? undefined : Number(from);
    // timeoutSeconds=0 means the default, as on the real server.
    const seconds = Number(timeout ?? 0) || options.defaultTimeoutSeconds;
    let opened: OpenWatch | undefined;

    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        let ended = false;
        let stalledUntil = 0;
        let held: { type: string; object: KubeObject }[] = [];
        const timers: ReturnType<typeof setTimeout>[] = [];
        const watch: OpenWatch = {
          info: { path: url.pathname, query: url.search.slice(1), since: Date.now() },
          send(event) {
            if (ended) return;
            if (held.length > 0 || Date.now() < stalledUntil) held.push(event);
            else controller.enqueue(ENCODER.encode(`${JSON.stringify(event)}\n`));
          },
          stall(ms) {
            stalledUntil = Math.max(stalledUntil, Date.now() + ms);
            timers.push(setTimeout(release, ms));
          },
          end(how) {
            if (ended) return;
            ended = true;
            unsubscribe();
            timers.forEach(clearTimeout);
            clearInterval(bookmarkTimer);
            open.delete(watch);
            try {
              if (how === "cut") controller.error(new Error("watch connection cut by the fake API server"));
              else controller.close();
            } catch {
              // The client has gone already.
            }
          },
        };
        /** Sends what a stall held, once the last stall is over. */
        function release(): void {
          const wait = stalledUntil - Date.now();
          if (ended || wait > 0) {
            if (!ended) timers.push(setTimeout(release, wait));
            return;
          }
          for (const event of held) controller.enqueue(ENCODER.encode(`${JSON.stringify(event)}\n`));
          held = [];
        }
        const unsubscribe = store.subscribe((event) => {
          if (event.resource === route.resource && (start === undefined || event.resourceVersion > start)) {
            deliver(event);
          }
        });
        function deliver(event: StoreEvent): void {
          const now = matches(event.object);
          const before = event.previous !== undefined && matches(event.previous);
          if (event.type !== "MODIFIED") {
            if (now) watch.send({ type: event.type, object: event.object });
          } else if (now) {
            watch.send({ type: before ? "MODIFIED" : "ADDED", object: event.object });
          } else if (before) {
            // The object left the selection: the watcher sees its last matching state, at the change's version.
            const left = structuredClone(event.previous);
            left.metadata.resourceVersion = String(event.resourceVersion);
            watch.send({ type: "DELETED", object: left });
          }
        }
        open.add(watch);
        opened = watch;
        const bookmarkTimer = bookmarks
          ? setInterval(() => {
            if (Date.now() < stalledUntil) return;
            watch.send({
              type: "BOOKMARK",
              object: {
                kind: info.kind,
                apiVersion: apiVersionOf(route.resource),
                metadata: { resourceVersion: store.resourceVersion },
              },
            });
          }, options.bookmarkIntervalMs)
          : undefined;
        timers.push(setTimeout(() => watch.end("close"), seconds * 1000));
        if (start === undefined) {
          for (const object of store.list(route.resource, route.namespace)) {
            if (matches(object)) watch.send({ type: "ADDED", object });
          }
          return;
        }
        const past = store.eventsSince(start);
        if (past === undefined) {
          watch.send({
            type: "ERROR",
            object: failureStatus(410, `too old resource version: ${start} (${store.oldestResourceVersion})`, {
              reason: "Expired",
            }),
          });
          watch.end("close");
          return;
        }
        for (const event of past) if (event.resource === route.resource) deliver(event);
      },
      cancel() {
        opened?.end("close");
      },
    });
    return new Response(body, {
      headers: { "Content-Type": "application/json", "Cache-Control": "no-cache, private" },
    });
  }
}
