/** The layers of the code base: no module imports from a layer above its own. */
import { assertEquals } from "../support/assert.ts";

// From the bottom up; a module may import its own layer and those below it.
const LAYERS: readonly (readonly string[])[] = [
  ["core"],
  ["host", "k8s"],
  ["controllers"],
  ["api"],
  ["config"],
  ["logging.ts", "job_options.ts", "cluster_cache.ts", "runtime.ts", "main.ts"],
];

function layerOf(path: string): number {
  const top = path.split("/")[0];
  return LAYERS.findIndex((layer) => layer.includes(top));
}

function* productionFiles(dir: string, prefix = ""): Generator<string> {
  for (const entry of Deno.readDirSync(dir)) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory && layerOf(path) >= 0) yield* productionFiles(`${dir}/${entry.name}`, path);
    else if (entry.isFile && entry.name.endsWith(".ts") && layerOf(path) >= 0) yield path;
  }
}

Deno.test("no module imports from a layer above its own, and every production file has a layer", () => {
  const root = new URL("../..", import.meta.url).pathname;
  const upward: string[] = [];
  let files = 0;
  for (const file of productionFiles(root)) {
    files++;
    const text = Deno.readTextFileSync(`${root}/${file}`);
    for (const [, spec] of text.matchAll(/^(?:import|export)[^"']*from\s+["'](\.{1,2}\/[^"']+)["']/gm)) {
      const target = new URL(spec, `file:///${file}`).pathname.slice(1);
      if (layerOf(target) > layerOf(file)) upward.push(`${file} imports ${target}`);
    }
  }
  assertEquals(upward, []);
  const unplaced = [...Deno.readDirSync(root)]
    .filter((e) => e.name.endsWith(".ts") && layerOf(e.name) < 0)
    .map((e) => e.name);
  assertEquals(unplaced, [], "a top-level module without a layer");
  assertEquals(files > 50, true, `only ${files} files read`);
});
