/** Test helper of the port-usage tests: `ss` as the referee. */

/** A TCP socket as `ss` lists it. */
export interface SsSocket {
  /** `LISTEN`, `ESTAB`, `TIME-WAIT`... */
  readonly state: string;
  /** Local address without brackets or interface: `127.0.0.1`, `::1`, `*`, `::ffff:127.0.0.1`. */
  readonly address: string;
  /** Local port. */
  readonly port: number;
  /** Peer address and port as ss prints them (`127.0.0.1:20000`, `*:*`): two connections may share a local port. */
  readonly peer: string;
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
    sockets.push({ state: columns[0], address, port: Number(local.slice(colon + 1)), peer: columns[4] });
  }
  return sockets;
}
