/**
 * The fan-out's token, daemon as a process: read from the projected token file (re-read when the kubelet swaps in a
 * new one), never the token that opens the API server.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { startDaemon, waitFor } from "../support/daemon_process.ts";
import { DEFAULT_USER, startFakeKubeApiServer } from "../fake_kube/server.ts";
import { configMapObject, createDaemonHost, hostArgs, nodeObject } from "../support/faults_cluster.ts";

/** Replaces the token the way the kubelet's atomic writer does: a new file renamed over the old name. */
async function rotate(path: string, token: string): Promise<void> {
  await Deno.writeTextFile(`${path}.new`, `${token}\n`);
  await Deno.rename(`${path}.new`, path);
}

Deno.test("fan-out, daemon as a process: sends the projected token (rotated at once), never the API server's", async () => {
  const host = await createDaemonHost();
  const node = "node-peer-a";
  // The only other daemon is this one, seen as a pod on another node at 127.0.0.1: it calls itself.
  const server = await startFakeKubeApiServer({
    seed: [
      nodeObject(node),
      configMapObject("controller-config", { data: { isCheckOObIP: "false" } }),
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "polarstack-daemon-b", namespace: "kube-system", labels: { app: "polarstack-daemon" } },
        spec: { nodeName: "node-peer-b", containers: [{ name: "c", image: "x" }] },
        status: { podIP: "127.0.0.1" },
      },
    ],
  });
  const tokenFile = `${host.dir}/peer-token`;
  await rotate(tokenFile, server.peerToken);
  const daemon = await startDaemon([
    ...hostArgs(host),
    "--kubeconfig",
    server.kubeconfigPath,
    "--current-node-name",
    node,
    "--peer-token-file",
    tokenFile,
  ]);
  const reviewed = () =>
    server.requests.filter((r) => r.path.endsWith("/tokenreviews")).map((r) => JSON.parse(r.body).spec);
  const fanOut = async (token: string) => {
    server.clearRequests();
    const before = (await (await fetch(`${daemon.url}/api/v1/versions`)).json()).data?.fanOut?.time;
    const asked = await fetch(`${daemon.url}/api/v1/RequestCheckCoreVersion`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
    });
    assertEquals(asked.status, 200, await asked.text());
    return await waitFor(async () => {
      const found = (await (await fetch(`${daemon.url}/api/v1/versions`)).json()).data?.fanOut;
      return found && found.time !== before ? found : null;
    }, { what: "a new fan-out outcome" });
  };
  try {
    let outcome = await fanOut(server.peerToken);
    assertEquals(outcome.peers.map((p: { pod: string; status: number }) => [p.pod, p.status]), [
      ["polarstack-daemon-b", 200],
    ]);
    // The caller's token and the fan-out's are the same, so one review answers both (the second is cached).
    assertEquals(reviewed(), [{ token: server.peerToken, audiences: ["polarstack-daemon"] }]);

    const rotated = `rotated-${crypto.randomUUID()}`;
    server.addToken(rotated, { ...DEFAULT_USER, audiences: ["polarstack-daemon"] });
    await rotate(tokenFile, rotated);
    outcome = await fanOut(server.peerToken);
    assertEquals(outcome.peers[0].status, 200);
    assertEquals(
      reviewed().map((spec) => spec.token),
      [rotated],
      "the caller's review is cached; the new token is read",
    );

    await Deno.remove(tokenFile);
    outcome = await fanOut(server.peerToken);
    assertEquals(outcome.peers[0].status, 401, "no token sent: the peer refuses");
    assertEquals(reviewed(), [], "nothing was sent to review: not the API server's token either");
    assert(daemon.stderr().includes(`Cannot read the peer token ${tokenFile}`), daemon.stderr().slice(-2000));
  } finally {
    await daemon.stop();
    await server.close();
    await host.close();
  }
});
