/** What every controller is given: the cluster (null in local mode), clock, events, logger, command runner. */
import type { CommandRunner } from "../host/command.ts";
import type { KubeClient } from "../k8s/client.ts";
import type { Clock, EventSink, Logger } from "../core/types.ts";

/** The dependencies handed to every controller factory by the wiring (and by tests); a job's flags come as its options. */
export interface JobDeps {
  /** The cluster, or null in local mode (publish nothing, delete no instance folder). */
  readonly kube: KubeClient | null;
  /** The time. */
  readonly clock: Clock;
  /** Where notable actions and failures go (Events on this host's Node). */
  readonly events: EventSink;
  /** The job's logger (LogTape). */
  readonly log: Logger;
  /** The one command runner. */
  readonly runCommand: CommandRunner;
}
