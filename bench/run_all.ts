/** `deno task bench`: runs every `bench/*_bench.ts` in turn and prints each one's RESULT line at the end. */

const dir = new URL("./", import.meta.url);
const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith("_bench.ts")).sort();
const results: string[] = [];
let failed = 0;
for (const file of files) {
  console.log(`\n=== ${file}`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(file, dir).pathname],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const output = await child.output();
  const text = new TextDecoder().decode(output.stdout);
  console.log(text.trimEnd());
  results.push(...text.split("\n").filter((line) => line.startsWith("RESULT ")));
  if (!output.success) {
    failed++;
    console.error(`${file} failed with exit code ${output.code}`);
  }
}
console.log("\n=== results");
for (const line of results) console.log(line);
Deno.exit(failed > 0 ? 1 : 0);
