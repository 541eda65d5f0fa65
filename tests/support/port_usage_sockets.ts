/** Test helpers of the port-usage tests: `ss` as the referee, and SO_REUSEPORT listeners in a child process. */

/** A TCP socket as `ss` lists it. */
export interface SsSocket {
  /** `LISTEN`, `ESTAB`, `TIME-WAIT`... */
  readonly state: string;
  /** Local address without brackets or interface: `127.0.0.1`, `::1`, `*`, `::ffff:127.0.0.1`. */
  readonly address: string;
  /** Local port. */
  readonly port: number;
}

/** The TCP sockets `ss -Hltn` (listening) or `ss -Hatn` (all) lists, from its Local Address:Port column. */
export async function ssTcpSockets(which: "listening" | "all"): Promise<SsSocket[]> {
  const args = [which === "listening" ? "-Hltn" : "-Hatn"];
  const output = await new Deno.Command("ss", { args, stdout: "piped", stderr: "piped" }).output();
  if (!output.success) throw new Error(`ss ${args[0]} failed: ${new TextDecoder().decode(output.stderr)}`);
  const sockets: SsSocket[] = [];
  for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
    const columns = line.trim().split(/\s+/);
    if (columns.length < 5) continue;
    const local = columns[3];
    const colon = local.lastIndexOf(":");
    const address = local.slice(0, colon).replace(/^\[|\]$/g, "").replace(/%.*$/, "");
    sockets.push({ state: columns[0], address, port: Number(local.slice(colon + 1)) });
  }
  return sockets;
}

/** The TCP ports `ss -Hltn` lists as listening. */
export async function ssListeningPorts(): Promise<Set<number>> {
  return new Set((await ssTcpSockets("listening")).map((s) => s.port));
}

/** Two TCP listeners sharing one port with SO_REUSEPORT, held by a child process (the flag is unstable in Deno). */
export interface ReusePortPair {
  /** The shared port. */
  readonly port: number;
  /** Closes both listeners and waits for the child to exit. */
  close(): Promise<void>;
}

const CHILD = `
const a = Deno.listen({ hostname: "127.0.0.1", port: 0, reusePort: true });
const port = a.addr.port;
const b = Deno.listen({ hostname: "127.0.0.1", port, reusePort: true });
console.log(port);
for await (const _ of Deno.stdin.readable) { /* wait for stdin to close */ }
a.close();
b.close();
`;

/** Starts the child and waits until both listeners are open. */
export async function openReusePortPair(): Promise<ReusePortPair> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-net", CHILD],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("The SO_REUSEPORT child exited before printing its port");
    text += value;
  }
  const port = Number(text.trim());
  return {
    port,
    async close() {
      await child.stdin.close();
      await reader.cancel();
      await child.status;
    },
  };
}
