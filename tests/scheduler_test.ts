import { assert, assertEquals } from "./support/assert.ts";
import { type CronRegistrar, runWithLimit, Scheduler } from "../controllers/scheduler.ts";
import type { Controller, RunContext } from "../controllers/types.ts";
import { systemClock } from "../controllers/types.ts";
import { getLogger } from "@logtape/logtape";

const log = getLogger(["test"]);

function manualCron() {
  const handlers = new Map<string, () => Promise<void>>();
  const cron: CronRegistrar = (name, _schedule, _options, handler) => {
    handlers.set(name, handler);
    return Promise.resolve();
  };
  return { cron, tick: (name: string) => handlers.get(name)!() };
}

function gatedJob(name: string, options: { runAtStart?: boolean; timeoutMs?: number } = {}) {
  let release = () => {};
  let runs = 0;
  let concurrent = 0;
  let maxConcurrent = 0;
  const contexts: RunContext[] = [];
  const controller: Controller<{ n: number }> = {
    name,
    schedule: { cron: "* * * * *" },
    runAtStart: options.runAtStart ?? false,
    timeoutMs: options.timeoutMs ?? 10_000,
    async run(ctx) {
      contexts.push(ctx);
      runs++;
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      await new Promise<void>((r) => (release = r));
      concurrent--;
      return { summary: `run ${runs}`, result: { n: runs } };
    },
  };
  return {
    controller,
    release: () => release(),
    get runs() {
      return runs;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    contexts,
  };
}

const settle = () => new Promise((r) => setTimeout(r, 10));

Deno.test("a job runs at start, never overlaps itself, and counts skipped ticks", async () => {
  const job = gatedJob("a", { runAtStart: true });
  const { cron, tick } = manualCron();
  const scheduler = new Scheduler([job.controller], { clock: systemClock, log, cron });
  scheduler.start();
  await settle();
  assertEquals(job.runs, 1);
  await tick("a");
  await tick("a");
  assertEquals(scheduler.status()[0].skippedTicks, 2);
  job.release();
  await settle();
  assertEquals(scheduler.status()[0].runs, 1);
  assertEquals(scheduler.lastResult("a"), { n: 1 });
  await tick("a");
  await settle();
  job.release();
  await settle();
  assertEquals(job.runs, 2);
  assertEquals(job.maxConcurrent, 1);
  assertEquals(scheduler.notYetRun(), []);
  await scheduler.stop(100);
});

Deno.test("100 triggers while a run is going leave exactly one more run", async () => {
  const job = gatedJob("b");
  const { cron } = manualCron();
  const scheduler = new Scheduler([job.controller], { clock: systemClock, log, cron });
  scheduler.start();
  assertEquals(scheduler.trigger("b"), "started");
  const answers = Array.from({ length: 100 }, () => scheduler.trigger("b"));
  assert(answers.every((a) => a === "queued"));
  job.release();
  await settle();
  assertEquals(job.runs, 2);
  job.release();
  await settle();
  assertEquals(job.runs, 2);
  assertEquals(scheduler.status()[0].runs, 2);
  await scheduler.stop(100);
});

Deno.test("a failing job is counted, not fatal, and the next run goes on", async () => {
  let calls = 0;
  const controller: Controller = {
    name: "flaky",
    schedule: { cron: "* * * * *" },
    runAtStart: false,
    timeoutMs: 1000,
    run() {
      calls++;
      if (calls === 1) return Promise.reject(new Error('Cannot read ConfigMap "x": 500 Internal Server Error'));
      return Promise.resolve({ summary: "fine", result: { ok: true } });
    },
  };
  const seen: string[] = [];
  const { cron, tick } = manualCron();
  const scheduler = new Scheduler([controller], {
    clock: systemClock,
    log,
    cron,
    onRun: (_name, run) => seen.push(run.outcome),
  });
  scheduler.start();
  await tick("flaky");
  await settle();
  await tick("flaky");
  await settle();
  const status = scheduler.status()[0];
  assertEquals(seen, ["failure", "success"]);
  assertEquals(status.failures, 1);
  assertEquals(status.runs, 2);
  assertEquals(status.lastRun?.outcome, "success");
  await scheduler.stop(100);
});

Deno.test("a job past its time limit is abandoned and its signal aborted", async () => {
  let aborted = false;
  const controller: Controller = {
    name: "slow",
    schedule: { cron: "* * * * *" },
    runAtStart: false,
    timeoutMs: 50,
    run(ctx) {
      return new Promise((resolve) => {
        ctx.signal.addEventListener("abort", () => {
          aborted = true;
          setTimeout(() => resolve({ summary: "late", result: null }), 20);
        });
      });
    },
  };
  const { run, outcome } = await runWithLimit(controller, { clock: systemClock });
  assertEquals(outcome, undefined);
  assertEquals(run.outcome, "failure");
  assert(run.error?.startsWith('Job "slow" took longer than 50 ms (it finished '), run.error);
  assert(aborted);
});

Deno.test("a job stopped by its time limit names its own cause; one that ignores the limit is abandoned", async () => {
  const job = (run: Controller["run"]): Controller => ({
    name: "slow",
    schedule: { cron: "* * * * *" },
    runAtStart: false,
    timeoutMs: 50,
    run,
  });
  const heeds = job((ctx) =>
    new Promise((_, reject) =>
      ctx.signal.addEventListener("abort", () => reject(new Error('Cannot get Node "n": 503 Service Unavailable')))
    )
  );
  const stopped = await runWithLimit(heeds, { clock: systemClock });
  assertEquals(stopped.run.error, 'Job "slow" took longer than 50 ms: Cannot get Node "n": 503 Service Unavailable');

  const t0 = performance.now();
  const ignores = job(() => new Promise(() => {}));
  const abandoned = await runWithLimit(ignores, { clock: systemClock });
  assertEquals(abandoned.run.error, 'Job "slow" took longer than 50 ms and was abandoned');
  assert(performance.now() - t0 >= 250, "abandoned only after a moment to stop by itself");

  const fails = job(() => Promise.reject(new Error("Cannot read socket table")));
  assertEquals((await runWithLimit(fails, { clock: systemClock })).run.error, "Cannot read socket table");
});

Deno.test("interval jobs run on a timer loop", async () => {
  let runs = 0;
  const controller: Controller = {
    name: "probe",
    schedule: { everyMs: 20 },
    runAtStart: true,
    timeoutMs: 1000,
    run() {
      runs++;
      return Promise.resolve({ summary: "probed", result: { runs } });
    },
  };
  const scheduler = new Scheduler([controller], { clock: systemClock, log, cron: manualCron().cron });
  scheduler.start();
  await new Promise((r) => setTimeout(r, 130));
  await scheduler.stop(100);
  const after = runs;
  assert(after >= 4 && after <= 8, `expected about 6 runs, got ${after}`);
  await new Promise((r) => setTimeout(r, 60));
  assertEquals(runs, after, "no run after stop");
});

Deno.test("stop waits for a running job up to the grace time", async () => {
  const job = gatedJob("c", { runAtStart: true });
  const scheduler = new Scheduler([job.controller], { clock: systemClock, log, cron: manualCron().cron });
  scheduler.start();
  await settle();
  setTimeout(() => job.release(), 30);
  assertEquals(await scheduler.stop(1000), true);
  const stuck = gatedJob("d", { runAtStart: true });
  const other = new Scheduler([stuck.controller], { clock: systemClock, log, cron: manualCron().cron });
  other.start();
  await settle();
  assertEquals(await other.stop(30), false);
  assert(stuck.contexts[0].signal.aborted, "the stuck job is told to stop");
  stuck.release();
});
