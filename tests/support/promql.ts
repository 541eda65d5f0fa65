/** PromQL helpers for the monitoring tests: the metric names an expression selects, and promtool runs. */
import { dump } from "js-yaml";

const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "inf",
  "nan",
]);

/**
 * The metric names an expression selects: every identifier that is not a function, a keyword, a label (inside
 * `{...}` or a grouping list), a duration or part of a string.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, " ");
  const names = new Set<string>();
  for (const match of bare.matchAll(/(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (match[2] !== undefined || KEYWORDS.has(match[1].toLowerCase())) continue;
    names.add(match[1]);
  }
  return [...names].sort();
}

/** A Grafana expression as PromQL: interval variables become `5m`, other variables match anything. */
export function grafanaToPromql(expr: string): string {
  return expr.replace(/\$__\w+|\$\{__\w+\}/g, "5m").replace(/\$\{?\w+\}?/g, ".*");
}

/** Runs promtool with `args`; its exit code and everything it printed. */
export async function promtool(args: readonly string[], stdin?: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("promtool", {
    args: [...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, output: decode(out.stdout) + decode(out.stderr) };
}

/** `promtool check rules` on recording rules made of `exprs`: each must parse. */
export async function checkExpressions(
  exprs: readonly string[],
  dir: string,
): Promise<{ code: number; output: string }> {
  const file = `${dir}/expressions.yaml`;
  const rules = exprs.map((expr, i) => ({ record: `dashboard:expression_${i}`, expr }));
  await Deno.writeTextFile(file, dump({ groups: [{ name: "dashboard", rules }] }));
  return await promtool(["check", "rules", file]);
}

/**
 * The metric names of a /metrics text: each family's `# TYPE` name and every sample's name, so a histogram shows
 * as its family and as `_bucket`, `_sum` and `_count`.
 */
export function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) /.exec(line);
    if (type) names.add(type[1]);
    const sample = /^([a-zA-Z_:][\w:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1]);
  }
  return names;
}
