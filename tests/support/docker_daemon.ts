/** A real Docker daemon for tests: dockerd on a temporary socket and data root (vfs, no iptables, no bridge). */
import { rootfsTar } from "./docker_tar.ts";
import { stopChild } from "./child.ts";

/** A running test daemon. */
export interface TestDockerDaemon {
  /** `unix:///tmp/.../docker.sock`, for `--docker-host`. */
  readonly host: string;
  /** The socket path. */
  readonly socketPath: string;
  /** Creates an image from a tiny root file system under every reference of `refs` (no registry); returns its id. */
  importImage(refs: readonly string[]): Promise<string>;
  /** Removes one reference (the image goes when its last reference does). */
  removeImage(ref: string): Promise<void>;
  /** A raw API call, for assertions. */
  request(method: string, path: string, body?: Uint8Array): Promise<{ status: number; text: string }>;
  /** Stops the daemon and removes its folders. */
  stop(): Promise<void>;
}

/** Whether dockerd is installed. */
export function hasDockerd(): boolean {
  for (const dir of ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"]) {
    try {
      if (Deno.statSync(`${dir}/dockerd`).isFile) return true;
    } catch {
      // not here
    }
  }
  return false;
}

function splitRef(ref: string): { repo: string; tag: string } {
  const colon = ref.lastIndexOf(":");
  if (colon > ref.lastIndexOf("/")) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: "latest" };
}

/** Starts dockerd as root and waits until `/_ping` answers (at most 60 s). */
export async function startDockerDaemon(): Promise<TestDockerDaemon> {
  const dir = await Deno.makeTempDir({ prefix: "pd-docker-" });
  const socketPath = `${dir}/docker.sock`;
  await Deno.writeTextFile(`${dir}/daemon.json`, "{}");
  const child = new Deno.Command("dockerd", {
    args: [
      `--host=unix://${socketPath}`,
      `--data-root=${dir}/data`,
      `--exec-root=${dir}/exec`,
      `--pidfile=${dir}/docker.pid`,
      `--config-file=${dir}/daemon.json`,
      "--storage-driver=vfs",
      "--iptables=false",
      "--ip6tables=false",
      "--bridge=none",
      "--log-level=warn",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Keep the last lines of the log for a failure message; draining also keeps dockerd from blocking on a full pipe.
  let logTail = "";
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) logTail = (logTail + decoder.decode(chunk)).slice(-4000);
  })();
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socketPath } });

  async function request(method: string, path: string, body?: Uint8Array) {
    const response = await fetch(`http://docker${path}`, {
      method,
      client,
      body: body as Uint8Array<ArrayBuffer> | undefined,
      headers: body ? { "Content-Type": "application/x-tar" } : {},
    });
    return { status: response.status, text: await response.text() };
  }

  let stopped = false;
  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    client.close();
    await stopChild(child, { killAfterMs: 15_000 });
    await drained;
    await Deno.remove(dir, { recursive: true });
  }

  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await request("GET", "/_ping")).status === 200) break;
    } catch {
      // not listening yet
    }
    const exited = await Promise.race([child.status.then(() => true), new Promise((r) => setTimeout(r, 200, false))]);
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(
        `Cannot start dockerd on ${socketPath}: ${exited ? "it exited" : "no answer in 60 s"}\n${logTail}`,
      );
    }
  }

  return {
    host: `unix://${socketPath}`,
    socketPath,
    request,
    async importImage(refs) {
      const { repo, tag } = splitRef(refs[0]);
      const query = new URLSearchParams({ fromSrc: "-", repo, tag });
      const created = await request("POST", `/images/create?${query}`, rootfsTar(refs.join(",")));
      const id = /"status":"(sha256:[0-9a-f]{64})"/.exec(created.text)?.[1];
      if (created.status !== 200 || !id) throw new Error(`Cannot import image ${refs[0]}: ${created.text}`);
      for (const ref of refs.slice(1)) {
        const more = splitRef(ref);
        const tagged = await request("POST", `/images/${id}/tag?${new URLSearchParams(more)}`);
        if (tagged.status !== 201) throw new Error(`Cannot tag image ${id} as ${ref}: ${tagged.text}`);
      }
      return id;
    },
    async removeImage(ref) {
      const removed = await request("DELETE", `/images/${ref}`);
      if (removed.status !== 200) throw new Error(`Cannot remove image ${ref}: ${removed.text}`);
    },
    stop,
  };
}

/**
 * The image-copy benchmarks' peer: `docker save | docker load` from `from` to `to` through a kernel pipe (arguments
 * passed as positional parameters, never spliced into the script); resolves to the seconds it took.
 */
export async function dockerSavePipe(from: TestDockerDaemon, to: TestDockerDaemon, ref: string): Promise<number> {
  const start = performance.now();
  const out = await new Deno.Command("sh", {
    args: ["-c", 'docker -H "$1" save "$3" | docker -H "$2" load -q', "sh", from.host, to.host, ref],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`docker save | docker load failed: ${new TextDecoder().decode(out.stderr)}`);
  return (performance.now() - start) / 1000;
}
