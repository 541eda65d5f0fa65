/** Tiny tar archives for tests: a one-file root file system (`docker import`) and an OCI image layout (`ctr images import`). */
import { joinBytes } from "../../core/byte_stream.ts";

/** One file of an archive. */
export interface TarEntry {
  /** Path inside the archive (at most 100 bytes). */
  readonly name: string;
  /** Content. */
  readonly data: Uint8Array | string;
}

const encoder = new TextEncoder();

function setField(header: Uint8Array, field: { at: number; size: number; text: string }): void {
  header.set(encoder.encode(field.text).subarray(0, field.size), field.at);
}

function octal(value: number, length: number): string {
  return value.toString(8).padStart(length - 1, "0") + "\0";
}

/** Builds a ustar archive of regular files (mode 0644, mtime fixed so equal inputs give equal bytes). */
export function tarArchive(entries: readonly TarEntry[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const entry of entries) {
    const data = typeof entry.data === "string" ? encoder.encode(entry.data) : entry.data;
    const header = new Uint8Array(512);
    setField(header, { at: 0, size: 100, text: entry.name });
    setField(header, { at: 100, size: 8, text: octal(0o644, 8) });
    setField(header, { at: 108, size: 8, text: octal(0, 8) });
    setField(header, { at: 116, size: 8, text: octal(0, 8) });
    setField(header, { at: 124, size: 12, text: octal(data.length, 12) });
    setField(header, { at: 136, size: 12, text: octal(1_600_000_000, 12) });
    setField(header, { at: 148, size: 8, text: "        " });
    setField(header, { at: 156, size: 1, text: "0" });
    setField(header, { at: 257, size: 6, text: "ustar\0" });
    setField(header, { at: 263, size: 2, text: "00" });
    const sum = header.reduce((a, b) => a + b, 0);
    setField(header, { at: 148, size: 8, text: sum.toString(8).padStart(6, "0") + "\0 " });
    blocks.push(header);
    const padded = new Uint8Array(Math.ceil(data.length / 512) * 512);
    padded.set(data);
    blocks.push(padded);
  }
  blocks.push(new Uint8Array(1024));
  return joinBytes(blocks);
}

/** A root file system of one small file; `label` makes images distinct (different layer, different id). */
export function rootfsTar(label: string): Uint8Array {
  return tarArchive([{ name: "hello.txt", data: `image ${label}\n` }]);
}

async function sha256(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return "sha256:" + Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * An OCI image layout archive holding one image under every name of `names` (tiny, or with a file of `layerBytes`
 * random bytes); returns it, the manifest digest and the image ID (config digest).
 */
export async function ociImageTar(
  label: string,
  names: readonly string[],
  options: { layerBytes?: number } = {},
): Promise<{ tar: Uint8Array; digest: string; id: string }> {
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
  const layer = options.layerBytes
    ? tarArchive([{ name: "hello.txt", data: label }, { name: "data.bin", data: randomBytes(options.layerBytes) }])
    : rootfsTar(label);
  const layerDigest = await sha256(layer);
  const config = encoder.encode(JSON.stringify({
    architecture: arch,
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: [layerDigest] },
  }));
  const configDigest = await sha256(config);
  const manifest = encoder.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layerDigest, size: layer.length }],
  }));
  const digest = await sha256(manifest);
  const index = {
    schemaVersion: 2,
    manifests: names.map((name) => ({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest,
      size: manifest.length,
      platform: { architecture: arch, os: "linux" },
      annotations: { "io.containerd.image.name": name },
    })),
  };
  const blob = (d: string) => `blobs/sha256/${d.slice("sha256:".length)}`;
  const tar = tarArchive([
    { name: "oci-layout", data: JSON.stringify({ imageLayoutVersion: "1.0.0" }) },
    { name: "index.json", data: JSON.stringify(index) },
    { name: blob(layerDigest), data: layer },
    { name: blob(configDigest), data: config },
    { name: blob(digest), data: manifest },
  ]);
  return { tar, digest, id: configDigest };
}

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  // getRandomValues fills at most 64 KiB at a time.
  for (let at = 0; at < length; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536));
  return bytes;
}
