/** A missing log root names the DaemonSet volume that mounts it, and that volume mounts the log root the DaemonSet passes. */
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { LOG_ROOT_VOLUME, resolveLogRoot } from "../../host/log_walk.ts";

Deno.test("a missing log root names the volume to mount, the one the DaemonSet mounts at --dbcluster-log-dir", async () => {
  const missing = `${await Deno.makeTempDir()}/missing`;
  const error = await assertRejects(() => resolveLogRoot(missing), Error);
  assertEquals(
    error.message,
    `Cannot clean logs in "${missing}": it does not exist (in a pod, mount the host's folder there: volume "${LOG_ROOT_VOLUME}")`,
  );
  const manifest = await Deno.readTextFile(new URL("../../manifests/daemon_set.yaml", import.meta.url));
  const root = /--dbcluster-log-dir=(\S+?)\/?\s/.exec(manifest)?.[1];
  assert(root, "the DaemonSet passes --dbcluster-log-dir");
  assert(
    new RegExp(`- name: ${LOG_ROOT_VOLUME}\\s+mountPath: ${root}\\n`).test(manifest),
    `${LOG_ROOT_VOLUME} mounts ${root}`,
  );
});
