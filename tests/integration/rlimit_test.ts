import { assertEquals } from "../support/assert.ts";
import { openFileLimit } from "../../host/rlimit.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";

const MODULE = new URL("../../host/rlimit.ts", import.meta.url).href;

/** The kernel's own account of a process's open-file limit, from /proc/<pid>/limits. */
function procLimit(text: string): { soft: number; hard: number } {
  const [soft, hard] = /^Max open files\s+(\d+)\s+(\d+)/m.exec(text)!.slice(1).map(Number);
  return { soft, hard };
}

Deno.test("openFileLimit reads what /proc/self/limits says", () => {
  assertEquals(openFileLimit(), procLimit(Deno.readTextFileSync("/proc/self/limits")));
});

Deno.test({
  name: "raiseOpenFileLimit lifts the soft limit to the hard one in a process whose soft limit is 512",
  ignore: skipUnless(hasCommand("prlimit"), "prlimit (util-linux) is not installed"),
  async fn() {
    // Deno raises its own soft limit as it starts, so the child lowers it again (libc's setrlimit) before the call.
    const script = `import { raiseOpenFileLimit } from "${MODULE}";
      const libc = Deno.dlopen("libc.so.6", { setrlimit: { parameters: ["i32", "buffer"], result: "i32" } });
      const hard = BigInt(Deno.args[0]);
      if (libc.symbols.setrlimit(7, new BigUint64Array([hard < 512n ? hard : 512n, hard])) !== 0) Deno.exit(3);
      const result = raiseOpenFileLimit();
      console.log(JSON.stringify({ result, limits: Deno.readTextFileSync("/proc/self/limits") }));`;
    const run = async (limit: string) => {
      const out = await new Deno.Command("prlimit", {
        args: [`--nofile=${limit}`, Deno.execPath(), "eval", "--no-check", script, limit.split(":")[1]],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      return JSON.parse(new TextDecoder().decode(out.stdout));
    };
    const raised = await run("512:4096");
    assertEquals(raised.result, { ok: true, before: { soft: 512, hard: 4096 }, after: { soft: 4096, hard: 4096 } });
    assertEquals(procLimit(raised.limits), { soft: 4096, hard: 4096 });
    const same = await run("300:300");
    assertEquals(same.result, { ok: true, before: { soft: 300, hard: 300 }, after: { soft: 300, hard: 300 } });
    assertEquals(procLimit(same.limits), { soft: 300, hard: 300 });
  },
});
