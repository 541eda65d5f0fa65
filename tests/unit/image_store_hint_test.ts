/** What a missing image-store socket's error says. */
import { assert, assertEquals } from "../support/assert.ts";
import { missingSocketHint } from "../../host/image_store.ts";

Deno.test("a missing socket names the DaemonSet volume that mounts it", async () => {
  assertEquals(
    missingSocketHint("/var/run/docker.sock"),
    `no such socket (in a pod, mount the host's /var/run/docker.sock: volume "docker-sock")`,
  );
  assertEquals(
    missingSocketHint("/run/containerd/containerd.sock"),
    `no such socket (in a pod, mount the host's /run/containerd/containerd.sock: volume "containerd-sock")`,
  );
  // The volumes named are the DaemonSet's, mounted where the daemon looks.
  const manifest = await Deno.readTextFile(new URL("../../manifests/daemon_set.yaml", import.meta.url));
  for (
    const [volume, path] of [["docker-sock", "/var/run/docker.sock"], [
      "containerd-sock",
      "/run/containerd/containerd.sock",
    ]]
  ) {
    assert(new RegExp(`- name: ${volume}\\s+mountPath: ${path}\\n`).test(manifest), `${volume} mounts ${path}`);
  }
});
