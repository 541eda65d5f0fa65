/**
 * The fake Kubernetes API server as its own process (prints `listening on https://127.0.0.1:PORT` when ready, stops on
 * SIGTERM or SIGINT): `deno run -A tests/fake_kube/cli.ts --port 0 --seed FILE --kubeconfig-out FILE
 * [--hostname ADDR] [--token TOKEN] [--rbac manifests|off] [--history-limit N] [--bookmark-interval-ms MS]`.
 * The seed file is a JSON array of objects of any kind the server serves. Such a process is controlled over HTTPS
 * with the same bearer token (see `control.ts`):
 * - `GET /_fake/requests` (the request log as JSON), `DELETE /_fake/requests` (clears it);
 * - `POST /_fake/faults` (a fault or a list of faults, as `injectFault` takes), `DELETE /_fake/faults`;
 * - `POST /_fake/tokens` (`{"token", "username", "groups", "audiences"}`, as `addToken`);
 * - `GET /_fake/objects/<resource>[/<namespace>][/<name>]` (an object, or a list when the name is left out),
 *   `PUT /_fake/objects` (an object or a list, stored as `put` does), `DELETE /_fake/objects/<resource>[/<namespace>]/<name>`;
 * - `POST /_fake/compact` (forgets past events, as `compact`);
 * - `GET /_fake/watches` (the open watches), `POST /_fake/watches/drop` (ends them; body `{"cut": true}` cuts their
 *   connections), answering `{"dropped": N}`.
 * Any listen address other than loopback gets a certificate signed by the same CA at start (needs `openssl`);
 * loopback uses the pre-made one in `certs/`.
 */
import { parseArgs } from "node:util";
import { startFakeKubeApiServer } from "./server.ts";

function positive(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) {
    throw new Error(`Invalid ${flag} "${value}": must be a positive integer`);
  }
  return number;
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string", default: "0" },
      hostname: { type: "string", default: "127.0.0.1" },
      seed: { type: "string" },
      "kubeconfig-out": { type: "string" },
      token: { type: "string" },
      rbac: { type: "string", default: "manifests" },
      "history-limit": { type: "string" },
      "bookmark-interval-ms": { type: "string" },
    },
  });
  if (values.rbac !== "manifests" && values.rbac !== "off") {
    throw new Error(`Invalid --rbac "${values.rbac}": must be manifests or off`);
  }
  const seed = values.seed ? JSON.parse(await Deno.readTextFile(values.seed)) : [];
  if (!Array.isArray(seed)) throw new Error(`Seed file "${values.seed}" must hold a JSON array of objects`);
  const server = await startFakeKubeApiServer({
    port: Number(values.port),
    hostname: values.hostname,
    seed,
    token: values.token,
    rbac: values.rbac === "off" ? false : "manifests",
    historyLimit: positive(values["history-limit"], "--history-limit"),
    bookmarkIntervalMs: positive(values["bookmark-interval-ms"], "--bookmark-interval-ms"),
  });
  if (values["kubeconfig-out"]) await Deno.copyFile(server.kubeconfigPath, values["kubeconfig-out"]);
  const stop = async () => {
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  console.log(`listening on ${server.url}`);
}

if (import.meta.main) await main(Deno.args);
