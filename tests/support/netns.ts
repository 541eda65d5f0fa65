/** Network namespaces for tests: made by the test, addresses only inside them, removed afterwards. */
import { hasCommand, isRoot } from "./prereq.ts";
import { stopChild } from "./child.ts";

/** Whether network namespaces can be made here (root and iproute2's `ip`). */
export function canMakeNetns(): boolean {
  return isRoot() && hasCommand("ip");
}

/** The result of a command run by a test helper. */
export interface Ran {
  /** Exit code. */
  readonly code: number;
  /** Standard output. */
  readonly stdout: string;
  /** Standard error. */
  readonly stderr: string;
}

/** Runs a command with arguments (no shell) and collects its output. */
export async function run(argv: readonly string[]): Promise<Ran> {
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** A network namespace made for one test. */
export interface NetNs {
  /** Its name, `psd-test-<random>`. */
  readonly name: string;
  /** Runs `ip -n <name> <args>`; throws with ip's message when it fails. */
  ip(...args: string[]): Promise<void>;
  /** The argument list that runs `argv` inside the namespace (`ip netns exec <name> ...`). */
  wrap(argv: readonly string[]): string[];
  /** Runs `argv` inside the namespace and collects its output. */
  exec(argv: readonly string[]): Promise<Ran>;
  /** Deletes the namespace (its interfaces go with it). */
  remove(): Promise<void>;
}

/** Makes a namespace `psd-test-<random>` with `lo` up. */
export async function createNetns(): Promise<NetNs> {
  const name = `psd-test-${crypto.randomUUID().slice(0, 8)}`;
  const added = await run(["ip", "netns", "add", name]);
  if (added.code !== 0) throw new Error(`Cannot add network namespace "${name}": ${added.stderr.trim()}`);
  const ns: NetNs = {
    name,
    async ip(...args) {
      const r = await run(["ip", "-n", name, ...args]);
      if (r.code !== 0) throw new Error(`Cannot run "ip -n ${name} ${args.join(" ")}": ${r.stderr.trim()}`);
    },
    wrap: (argv) => ["ip", "netns", "exec", name, ...argv],
    exec: (argv) => run(["ip", "netns", "exec", name, ...argv]),
    async remove() {
      await run(["ip", "netns", "del", name]);
    },
  };
  try {
    await ns.ip("link", "set", "lo", "up");
  } catch (error) {
    await ns.remove();
    throw error;
  }
  return ns;
}

/** Adds a veth pair `nic` / `peer` with `cidr` on `nic`, both ends up. */
export async function addVeth(
  ns: NetNs,
  { nic, peer, cidr }: { nic: string; peer: string; cidr: string },
): Promise<void> {
  await ns.ip("link", "add", nic, "type", "veth", "peer", "name", peer);
  await ns.ip("addr", "add", cidr, "dev", nic);
  await ns.ip("link", "set", nic, "up");
  await ns.ip("link", "set", peer, "up");
}

/** A long-running process started inside a namespace, with its stderr collected. */
export interface NsProcess {
  /** The child. */
  readonly child: Deno.ChildProcess;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** Sends SIGTERM (SIGKILL after 5 s) and waits for the exit. */
  stop(): Promise<void>;
}

/** Starts `argv` inside the namespace; resolves once a stdout line matches `ready` (returns the match). */
export async function startIn(
  ns: NetNs,
  argv: readonly string[],
  options: { env?: Record<string, string>; cwd?: string; ready?: RegExp; timeoutMs?: number } = {},
): Promise<{ process: NsProcess; match: RegExpMatchArray | null }> {
  const full = ns.wrap(argv);
  const child = new Deno.Command(full[0], {
    args: full.slice(1),
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  let out = "";
  const decoder = new TextDecoder();
  const found = Promise.withResolvers<RegExpMatchArray | null>();
  if (!options.ready) found.resolve(null);
  const readErr = (async () => {
    for await (const chunk of child.stderr) err += decoder.decode(chunk, { stream: true });
  })();
  const readOut = (async () => {
    for await (const chunk of child.stdout) {
      out += decoder.decode(chunk, { stream: true });
      const m = options.ready ? out.match(options.ready) : null;
      if (m) found.resolve(m);
    }
    found.reject(new Error(`${argv.join(" ")} ended before it was ready; stderr:\n${err}`));
  })();
  const process: NsProcess = {
    child,
    stderr: () => err,
    async stop() {
      await stopChild(child, { killAfterMs: 5000 });
      await Promise.allSettled([readErr, readOut]);
    },
  };
  const timer = setTimeout(
    () => found.reject(new Error(`${argv.join(" ")} not ready within ${options.timeoutMs ?? 30_000} ms:\n${err}`)),
    options.timeoutMs ?? 30_000,
  );
  try {
    return { process, match: await found.promise };
  } catch (error) {
    await process.stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
