/**
 * Serves a one-route app through api/server.ts and prints `{"port": N}` on stdout: a process of its own, so a test can
 * run it under a file-descriptor limit that the connection cap does not know about (`--max-connections`).
 */
import { serveApp } from "../../api/server.ts";
import { setUpLogging, taskLogger } from "../../logging.ts";

setUpLogging({ v: 0, toStderr: true, json: true });
const max = Deno.args.indexOf("--max-connections");
const server = serveApp(() => Response.json({ status: "ok" }), {
  port: 0,
  hostname: "127.0.0.1",
  maxConnections: max >= 0 ? Number(Deno.args[max + 1]) : undefined,
  log: taskLogger("api"),
});
console.log(JSON.stringify({ port: server.port }));
Deno.addSignalListener("SIGTERM", async () => {
  await server.shutdown();
  Deno.exit(0);
});
