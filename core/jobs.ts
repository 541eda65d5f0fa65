/**
 * The one list of the daemon's jobs. The `once` tasks, every controller's name, the Events' `job` field and the
 * API's per-job routes all come from here.
 */

/** Every job: its task name and the path of its last result under `/api/v1`. */
export const JOBS = {
  portUsage: { name: "port-usage", route: "/ports" },
  coreVersion: { name: "core-version", route: "/versions" },
  logCleanup: { name: "log-cleanup", route: "/log-cleanup" },
  nodeNetwork: { name: "node-network", route: "/node-network" },
  floatingIp: { name: "floating-ip", route: "/floating-ips" },
  imageReplication: { name: "image-replication", route: "/images" },
} as const;

/** A job's task name, e.g. `port-usage`. */
export type JobName = (typeof JOBS)[keyof typeof JOBS]["name"];

/** The task names, in the order the daemon starts them. */
export const JOB_NAMES: readonly JobName[] = Object.values(JOBS).map((job) => job.name);

/** Whether text names a job. */
export function isJobName(text: string): text is JobName {
  return (JOB_NAMES as readonly string[]).includes(text);
}
