/** Logging: the file rotates at its size limit; routine per-run lines only at --v=4 and above. */
import { assert, assertEquals } from "../support/assert.ts";
import { levelForVerbosity, meetsStderrThreshold, setUpLogging, taskLogger } from "../../logging.ts";
import { type CronRegistrar, Scheduler } from "../../controllers/scheduler.ts";
import { type Controller, systemClock } from "../../core/types.ts";
import { waitFor } from "../support/daemon_process.ts";

const TMP = await Deno.makeTempDir({ prefix: "psd-logging-" });

async function jsonLines(path: string): Promise<{ message: string; n?: number }[]> {
  const text = await Deno.readTextFile(path);
  return text.trim() === "" ? [] : text.trim().split("\n").map((l) => JSON.parse(l));
}

Deno.test("the log file is renamed to .1 at its size limit and a new one started; no line is lost or split", async () => {
  const file = `${TMP}/daemon.log`;
  await Deno.writeTextFile(file, JSON.stringify({ message: "from before", n: -1 }) + "\n");
  setUpLogging({ v: 0, toStderr: false, stderrThreshold: 3, file, maxFileBytes: 4096 });
  const log = taskLogger("test");
  for (let n = 0; n < 200; n++) log.info("Line {n} of the rotation test, padded to make it longer", { n });
  const current = await jsonLines(file);
  const previous = await jsonLines(`${file}.1`);
  assert(Deno.statSync(file).size <= 4096, `${Deno.statSync(file).size} bytes`);
  assert(Deno.statSync(`${file}.1`).size <= 4096);
  assert(Deno.statSync(`${file}.1`).size > 3000, "rotated when nearly full");
  const numbers = [...previous, ...current].map((l) => l.n);
  assertEquals(numbers, Array.from({ length: numbers.length }, (_, i) => 200 - numbers.length + i), "contiguous");
  assertEquals(numbers.at(-1), 199);
});

function routineJob(): Controller {
  return {
    name: "node-network",
    schedule: { cron: "* * * * *" },
    runAtStart: false,
    timeoutMs: 1000,
    run: () =>
      Promise.resolve({ summary: "bond1 UP 192.0.2.10, OOB pending; nothing to write", result: {}, routine: true }),
  };
}

Deno.test("routine per-run lines ('nothing to write') are logged only at --v=4 and above", async () => {
  for (const [v, shown] of [[0, false], [2, false], [3, false], [4, true], [5, true]] as const) {
    const file = `${TMP}/routine-${v}.log`;
    setUpLogging({ v, toStderr: false, stderrThreshold: 3, file });
    let tick = () => Promise.resolve();
    const cron: CronRegistrar = (_name, _schedule, _options, handler) => {
      tick = handler;
      return Promise.resolve();
    };
    const scheduler = new Scheduler([routineJob()], { clock: systemClock, log: taskLogger("scheduler"), cron });
    scheduler.start();
    await tick();
    await waitFor(() => scheduler.status()[0].runs === 1, { what: "the run" });
    await scheduler.stop(100);
    const lines = await jsonLines(file);
    assertEquals(lines.some((l) => l.message.includes("nothing to write")), shown, `--v=${v}`);
  }
  assertEquals([0, 3, 4, 5].map(levelForVerbosity), ["info", "info", "debug", "trace"]);
  assertEquals(["info", "warning", "error", "fatal"].map((l) => meetsStderrThreshold(l as "info", 1)), [
    false,
    true,
    true,
    true,
  ]);
});
