/**
 * A watch stopped after a full garbage collection, for `tests/integration/k8s_stream_test.ts`: prints one JSON line
 * `{"outcome", "ms"}` (the error the read ended with, and how long after the stop). Run with
 * `--v8-flags=--expose-gc`.
 */
import { startFakeCluster } from "./fake_cluster.ts";

const { kube, close } = await startFakeCluster({ rbac: false });
const stop = new AbortController();
const stream = await kube.openStream("/api/v1/namespaces/kube-system/configmaps", {
  what: "watch ConfigMaps",
  query: { watch: "true" },
  signal: stop.signal,
});
const reading = (async () => {
  try {
    for await (const _ of stream) { /* no event comes */ }
    return "ended without an error";
  } catch (error) {
    return (error as Error).message;
  }
})();
// The collection a long watch meets sooner or later, made now.
(globalThis as unknown as { gc(): void }).gc();
await new Promise((resolve) => setTimeout(resolve, 100));
(globalThis as unknown as { gc(): void }).gc();
const t0 = performance.now();
stop.abort();
let timer: ReturnType<typeof setTimeout> | undefined;
const outcome = await Promise.race([
  reading,
  new Promise<string>((resolve) => (timer = setTimeout(() => resolve("still reading 5 s after the stop"), 5000))),
]);
clearTimeout(timer);
console.log(JSON.stringify({ outcome, ms: Math.round(performance.now() - t0) }));
await close();
Deno.exit(0);
