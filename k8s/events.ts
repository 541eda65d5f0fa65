/** The one event sink: Kubernetes Events on this host's Node (repeats raise `count`), and the original's HTTP upload. */
import type { CoreV1Event } from "@kubernetes/client-node";
import type { Clock, DaemonEvent, EventSink, Logger } from "../core/types.ts";
import type { KubeClient } from "./client.ts";
import { KubeError } from "./errors.ts";
import { kubeTime } from "./values.ts";

/** Options of the original's event upload (`--events-enable-upload`). */
export interface EventUploadOptions {
  /** `--events-upload-url`; the sink posts to `<url>/data/upload`. */
  readonly url: string;
  /** `--events-upload-timeout` in milliseconds. */
  readonly timeoutMs: number;
  /** This host's IP, for `identityKey` and `source.ip`. */
  readonly ip: string;
  /** The fetch to use (tests hand in their own). */
  readonly fetch?: typeof fetch;
}

/** Options of the event sink. */
export interface EventSinkOptions {
  /** The cluster, or null in local mode (events are only logged). */
  readonly kube: KubeClient | null;
  /** This host's Node name. */
  readonly node: string;
  /** The daemon's logger. */
  readonly log: Logger;
  /** The logger of a job, so an event's log line carries its task name (default: `log`). */
  readonly jobLog?: (job: string) => Logger;
  /** The time. */
  readonly clock: Clock;
  /** The HTTP upload, when enabled. */
  readonly upload?: EventUploadOptions;
  /** Queue length past which the oldest events are dropped. */
  readonly maxQueue?: number;
}

/** The sink plus a way to wait for what is queued (shutdown, tests). */
export interface DaemonEventSink extends EventSink {
  /** Resolves when every queued event has been sent (or failed). */
  flush(): Promise<void>;
}

const NAMESPACE = "default";
const MAX_KEYS = 512;

/** The body of the original's event upload. */
export function uploadBody(event: DaemonEvent, options: { node: string; ip: string; now: Date; id: string }) {
  return {
    eventId: `Polardbstack-Daemon-${options.id}`,
    eventCode: event.reason,
    source: { resourceType: "polardb-o", insName: options.node, from: "Polardbstack-Daemon", ip: options.ip },
    level: event.type === "Warning" ? "WARN" : "INFO",
    time: options.now.getTime(),
    body: { describe: event.message },
  };
}

/** Creates the sink; `record()` queues and returns at once. */
export function createEventSink(options: EventSinkOptions): DaemonEventSink {
  const queue: DaemonEvent[] = [];
  const maxQueue = options.maxQueue ?? 100;
  // reason+message -> the Event already in the cluster, so a repeat raises its count.
  const seen = new Map<string, { name: string; count: number }>();
  let draining: Promise<void> | null = null;
  // An upload URL that does not answer fails every event: warn when that starts and when it ends, not per event.
  let uploadFailing = false;

  async function send(event: DaemonEvent): Promise<void> {
    const now = options.clock.now();
    const stamp = kubeTime(now);
    if (options.kube) {
      const about = event.regarding;
      const namespace = about?.namespace ?? NAMESPACE;
      const key = [event.type, event.reason, event.message, about?.kind, about?.namespace, about?.name].join("\u0000");
      const known = seen.get(key);
      try {
        if (known) {
          known.count++;
          await options.kube.patchEvent(known.name, namespace, { count: known.count, lastTimestamp: stamp });
          seen.delete(key);
          seen.set(key, known);
        } else {
          const name = `${options.node}.${now.getTime().toString(16)}${crypto.randomUUID().slice(0, 8)}`;
          const body: CoreV1Event = {
            apiVersion: "v1",
            kind: "Event",
            metadata: { name, namespace },
            involvedObject: about ?? { apiVersion: "v1", kind: "Node", name: options.node, uid: options.node },
            reason: event.reason,
            message: event.message,
            type: event.type,
            source: { component: "polarstack-daemon", host: options.node },
            reportingComponent: "polarstack-daemon",
            reportingInstance: options.node,
            firstTimestamp: stamp as unknown as Date,
            lastTimestamp: stamp as unknown as Date,
            count: 1,
          };
          try {
            await options.kube.createEvent(body);
          } catch (error) {
            // The name is new for every Event: AlreadyExists means an earlier attempt (timed out here) landed.
            if (!(error instanceof KubeError && error.status === 409 && error.reason === "AlreadyExists")) throw error;
          }
          seen.set(key, { name, count: 1 });
          if (seen.size > MAX_KEYS) seen.delete(seen.keys().next().value!);
        }
      } catch (error) {
        // A patch of an Event that expired (404) starts a new one next time.
        if (known) seen.delete(key);
        options.log.warn("Cannot record Event {reason} on {object}: {error}", {
          reason: event.reason,
          object: about ? `${about.kind} "${about.namespace}/${about.name}"` : `Node "${options.node}"`,
          error: (error as Error).message,
        });
      }
    }
    if (options.upload) await upload(event, now);
  }

  async function upload(event: DaemonEvent, now: Date): Promise<void> {
    const { url, timeoutMs, ip } = options.upload!;
    const target = `${url.replace(/\/+$/, "")}/data/upload`;
    try {
      const response = await (options.upload!.fetch ?? fetch)(target, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          header1: "event_resource;log;20210220001;POLAR_STACK",
          header2: "event",
          identityKey: `${options.node};${ip};`,
        },
        body: JSON.stringify(uploadBody(event, { node: options.node, ip, now, id: crypto.randomUUID() })),
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      if (uploadFailing) options.log.info("Event upload to {url} works again", { url: target });
      uploadFailing = false;
    } catch (error) {
      const line = { reason: event.reason, url: target, error: (error as Error).message };
      if (uploadFailing) {
        options.log.debug("Cannot upload event {reason} to {url}: {error}", line);
      } else {
        options.log.warn(
          "Cannot upload event {reason} to {url}: {error}; further failures are logged at debug level until an upload works",
          line,
        );
      }
      uploadFailing = true;
    }
  }

  async function drain(): Promise<void> {
    while (queue.length > 0) await send(queue.shift()!);
    draining = null;
  }

  return {
    record(event) {
      const log = options.jobLog?.(event.job) ?? options.log;
      if (event.type === "Warning") log.warn("Event {reason}: {message}", { ...event });
      else log.info("Event {reason}: {message}", { ...event });
      if (!options.kube && !options.upload) return;
      if (queue.length >= maxQueue) {
        const dropped = queue.shift()!;
        options.log.warn("Event queue full: dropped event {reason}", { reason: dropped.reason });
      }
      queue.push(event);
      draining ??= drain();
    },
    flush() {
      return draining ?? Promise.resolve();
    },
  };
}
