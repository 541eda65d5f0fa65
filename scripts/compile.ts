/** `deno task compile`: one executable in dist/, or one clear line saying why not. */
import { V8_FLAGS } from "../config/config.ts";

const args = [
  "compile",
  // Deno asks for all permissions to read /proc and /sys (the port and network probes), so no narrower set works.
  "--allow-all",
  "--unstable-cron",
  `--v8-flags=${V8_FLAGS.join(",")}`,
  "--include",
  "deno.json",
  "--output",
  "dist/polarstack-daemon",
  "main.ts",
];

const output = await new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "piped" }).output();
const stderr = new TextDecoder().decode(output.stderr);
if (output.success) {
  console.log("Wrote dist/polarstack-daemon");
  Deno.exit(0);
}
if (
  /denort|download|dl\.deno\.land|error sending request|dns error|Connection refused/i.test(stderr) &&
  !Deno.env.get("DENORT_BIN")
) {
  console.error(
    "Cannot compile: deno compile must download Deno's runtime base (denort) and this machine cannot reach it; " +
      "copy denort for Deno 2.9.6 here and run again with DENORT_BIN=/path/to/denort",
  );
  Deno.exit(1);
}
console.error(stderr.trim().split("\n").slice(-5).join("\n"));
Deno.exit(1);
