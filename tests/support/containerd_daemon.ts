/** A real containerd for tests: its own root, state and socket; images imported with `ctr images import`. */
import { ociImageTar } from "./docker_tar.ts";

/** A running test containerd. */
export interface TestContainerd {
  /** The socket, for `ctr --address`. */
  readonly address: string;
  /** Imports one tiny image as `repo:tag` for every tag into namespace k8s.io, plus `repo@sha256:...`; returns the digest. */
  importImage(repo: string, tags: readonly string[]): Promise<string>;
  /** Imports an image archive into namespace k8s.io as it is (no unpacking, names from its index). */
  importArchive(tar: Uint8Array): Promise<void>;
  /** Stops containerd and removes its folders. */
  stop(): Promise<void>;
}

async function ctr(address: string, args: string[], stdin?: Uint8Array): Promise<string> {
  const child = new Deno.Command("ctr", {
    args: ["--address", address, ...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  if (out.code !== 0) throw new Error(`ctr ${args.join(" ")} failed: ${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout);
}

/** Starts containerd (CRI plugin off) as root and waits until `ctr version` answers (at most 30 s). */
export async function startContainerd(): Promise<TestContainerd> {
  const dir = await Deno.makeTempDir({ prefix: "pd-containerd-" });
  const address = `${dir}/containerd.sock`;
  await Deno.writeTextFile(
    `${dir}/config.toml`,
    'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n',
  );
  const child = new Deno.Command("containerd", {
    args: ["--config", `${dir}/config.toml`, "--root", `${dir}/root`, "--state", `${dir}/state`, "--address", address],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();

  let stopped = false;
  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }

  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await ctr(address, ["version"]);
      break;
    } catch (error) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`Cannot start containerd on ${address}: ${(error as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  return {
    address,
    async importImage(repo, tags) {
      const { tar, digest } = await ociImageTar(repo, tags.map((tag) => `${repo}:${tag}`));
      // --digests adds `<base-name>@sha256:...`, as a pull by digest would.
      const args = ["-n", "k8s.io", "images", "import", "--no-unpack", "--digests", "--base-name", repo, "-"];
      await ctr(address, args, tar);
      return digest;
    },
    async importArchive(tar) {
      await ctr(address, ["-n", "k8s.io", "images", "import", "--no-unpack", "-"], tar);
    },
    stop,
  };
}
