/** Prints the README's flag table from the flag definitions; `--write` puts it into README.md. */
import { FLAGS } from "../config/flags.ts";

/** The Markdown table of every flag. */
export function flagsTable(): string {
  const rows = FLAGS.map((f) =>
    `| \`--${f.name}\` | ${
      f.defaultText === undefined ? "(see text)" : f.defaultText === "" ? "" : `\`${f.defaultText}\``
    } | ${f.description.replaceAll("|", "\\|")} |`
  );
  return ["| flag | default | what it does |", "| --- | --- | --- |", ...rows].join("\n");
}

if (import.meta.main) {
  const table = flagsTable();
  if (Deno.args.includes("--write")) {
    const path = new URL("../README.md", import.meta.url);
    const readme = Deno.readTextFileSync(path);
    const updated = readme.replace(
      /<!-- flags:start -->[\s\S]*<!-- flags:end -->/,
      `<!-- flags:start -->\n${table}\n<!-- flags:end -->`,
    );
    Deno.writeTextFileSync(path, updated);
  } else {
    console.log(table);
  }
}
