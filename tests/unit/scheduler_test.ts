import { assert, assertEquals } from "../support/assert.ts";
import { type CronRegistrar, Scheduler, type Timers } from "../../controllers/scheduler.ts";
import { runWithLimit } from "../../controllers/run_limit.ts";
import { cronPeriodMs, spreadOffsetMs } from "../../controllers/spread.ts";
import type { Controller, RunContext } from "../../core/types.ts";
import { systemClock } from "../../core/types.ts";
import { getLogger } from "@logtape/logtape";
import { waitFor } from "../support/daemon_process.ts";

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

/** Waits until `scheduler` has finished `runs` runs of its first job. */
function finished(scheduler: Scheduler, runs: number) {
  return waitFor(() => scheduler.status()[0].runs === runs, { what: `run ${runs} finished` });
}

/** Waits until `job` has started `runs` runs. */
function started(job: { readonly runs: number }, runs: number) {
  return waitFor(() => job.runs === runs, { what: `run ${runs} started` });
}

/** A span in which nothing may happen: a test that asserts that no run follows waits this long first. */
const quietSpan = () => new Promise((r) => setTimeout(r, 20));

Deno.test("a job runs at start, never overlaps itself, and counts skipped ticks", async () => {
  const job = gatedJob("a", { runAtStart: true });
  const { cron, tick } = manualCron();
  const scheduler = new Scheduler([job.controller], { clock: systemClock, log, cron });
  scheduler.start();
  await started(job, 1);
  assertEquals(job.runs, 1);
  await tick("a");
  await tick("a");
  assertEquals(scheduler.status()[0].skippedTicks, 2);
  job.release();
  await finished(scheduler, 1);
  assertEquals(scheduler.status()[0].runs, 1);
  assertEquals(scheduler.lastResult("a"), { n: 1 });
  await tick("a");
  await started(job, 2);
  job.release();
  await finished(scheduler, 2);
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
  await started(job, 2);
  assertEquals(job.runs, 2);
  job.release();
  await finished(scheduler, 2);
  await quietSpan();
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
  await finished(scheduler, 1);
  await tick("flaky");
  await finished(scheduler, 2);
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
          // A job that finishes late, after its limit: part of the job, not a wait in the test.
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
  // The span whose runs are counted: about 6 of 20 ms each.
  await new Promise((r) => setTimeout(r, 130));
  await scheduler.stop(100);
  const after = runs;
  assert(after >= 4 && after <= 8, `expected about 6 runs, got ${after}`);
  // A span in which no run may start.
  await new Promise((r) => setTimeout(r, 60));
  assertEquals(runs, after, "no run after stop");
});

Deno.test("stop waits for a running job up to the grace time", async () => {
  const job = gatedJob("c", { runAtStart: true });
  const scheduler = new Scheduler([job.controller], { clock: systemClock, log, cron: manualCron().cron });
  scheduler.start();
  await started(job, 1);
  // The job ends 30 ms into stop's grace: an action during the stop, not a wait.
  setTimeout(() => job.release(), 30);
  assertEquals(await scheduler.stop(1000), true);
  const stuck = gatedJob("d", { runAtStart: true });
  const other = new Scheduler([stuck.controller], { clock: systemClock, log, cron: manualCron().cron });
  other.start();
  await started(stuck, 1);
  assertEquals(await other.stop(30), false);
  assert(stuck.contexts[0].signal.aborted, "the stuck job is told to stop");
  stuck.release();
});

/** Timers the test fires by hand: what was asked, with its delay. */
function manualTimers() {
  let nextId = 1;
  const waiting = new Map<number, { fn: () => void; ms: number }>();
  const timers: Timers = {
    setTimeout(fn, ms) {
      waiting.set(nextId, { fn, ms });
      return nextId++;
    },
    clearTimeout: (id) => void waiting.delete(id as number),
  };
  return {
    timers,
    delays: () => [...waiting.values()].map((t) => t.ms),
    /** Takes every waiting timer out, as the event loop does when they are due; returns their callbacks. */
    takeDue(): (() => void)[] {
      const due = [...waiting.values()].map((t) => t.fn);
      waiting.clear();
      return due;
    },
    /** Fires every waiting timer (not those they set). */
    fireAll() {
      for (const fn of this.takeDue()) fn();
    },
  };
}

function secondsHistogram(names: readonly string[], periodMs: number): number[] {
  const bins = new Array(periodMs / 1000).fill(0);
  for (const name of names) {
    const offset = spreadOffsetMs(name, { job: "port-usage", periodMs });
    assert(offset >= 0 && offset < periodMs, `${name}: ${offset}`);
    bins[Math.floor(offset / 1000)]++;
  }
  return bins;
}

Deno.test("spread: 1,000 node names over a minute, no second holds more than 2% of them", () => {
  const sets = {
    numbered: Array.from({ length: 1000 }, (_, i) => `node-${i + 1}`),
    padded: Array.from({ length: 1000 }, (_, i) => `polardb-host-${String(i).padStart(4, "0")}`),
    addresses: Array.from({ length: 1000 }, (_, i) => `10-0-${Math.floor(i / 250)}-${(i % 250) + 1}`),
  };
  for (const [what, names] of Object.entries(sets)) {
    const bins = secondsHistogram(names, 60_000);
    assert(Math.max(...bins) <= 20, `${what}: ${Math.max(...bins)} names in one second`);
    assert(bins.every((n) => n > 0), `${what}: every second is used`);
    const tenMinutes = secondsHistogram(names, 600_000);
    assert(Math.max(...tenMinutes) <= 20, `${what}, 10 min: ${Math.max(...tenMinutes)}`);
  }
});

Deno.test("spread: stable for a name, different per job, within the period", () => {
  const a = spreadOffsetMs("node-17", { job: "port-usage", periodMs: 60_000 });
  assertEquals(spreadOffsetMs("node-17", { job: "port-usage", periodMs: 60_000 }), a);
  assert(spreadOffsetMs("node-17", { job: "core-version", periodMs: 60_000 }) !== a);
  assertEquals(cronPeriodMs("* * * * *"), 60_000);
  assertEquals(cronPeriodMs("*/10 * * * *"), 600_000);
  assertEquals(cronPeriodMs("0 */6 * * *"), 6 * 3_600_000);
  assertEquals(cronPeriodMs("5 * * * *"), 3_600_000);
  let error = "";
  try {
    cronPeriodMs("0 0 * * 1");
  } catch (e) {
    error = (e as Error).message;
  }
  assertEquals(error, 'Cannot tell the period of cron schedule "0 0 * * 1"');
});

Deno.test("spread: a cron tick starts this node's run after its offset, shown in the status", async () => {
  const job = gatedJob("port-usage");
  const { cron, tick } = manualCron();
  const clock = manualTimers();
  const scheduler = new Scheduler([job.controller], {
    clock: systemClock,
    log,
    cron,
    node: "node-7",
    timers: clock.timers,
  });
  scheduler.start();
  const offset = spreadOffsetMs("node-7", { job: "port-usage", periodMs: 60_000 });
  assert(offset > 0);
  assertEquals(scheduler.status()[0].offsetMs, offset);
  await tick("port-usage");
  assertEquals(job.runs, 0, "not on the tick itself");
  assertEquals(clock.delays(), [offset]);
  await tick("port-usage");
  assertEquals(clock.delays(), [offset], "a second tick while one waits adds no run");
  clock.fireAll();
  assertEquals(job.runs, 1);
  job.release();
  await waitFor(() => scheduler.status()[0].runs === 1, { what: "the run to finish" });
  await scheduler.stop(100);
});

Deno.test("stop: no run starts after stop() begins, neither a cron tick nor a probe inside the grace", async () => {
  const busy = gatedJob("busy", { runAtStart: true });
  const idle = gatedJob("idle");
  let probes = 0;
  const probe: Controller = {
    name: "probe",
    schedule: { everyMs: 3000 },
    runAtStart: false,
    timeoutMs: 1000,
    run() {
      probes++;
      return Promise.resolve({ summary: "probed", result: null });
    },
  };
  const { cron, tick } = manualCron();
  const clock = manualTimers();
  const scheduler = new Scheduler([busy.controller, idle.controller, probe], {
    clock: systemClock,
    log,
    cron,
    timers: clock.timers,
  });
  scheduler.start();
  assertEquals(busy.runs, 1);
  clock.fireAll();
  await waitFor(() => probes === 1 && clock.delays().length === 1, { what: "the first probe and its next timer" });

  // The probe's timer is due as stop() begins: its callback runs inside the grace and must start nothing.
  const dueProbe = clock.takeDue();
  const stopping = scheduler.stop(10_000);
  await tick("idle");
  for (const fn of dueProbe) fn();
  assertEquals(scheduler.trigger("idle"), "stopping");
  await Promise.resolve();
  assertEquals(idle.runs, 0, "no cron run inside the grace");
  assertEquals(probes, 1, "no probe inside the grace");
  busy.release();
  assertEquals(await stopping, true);
  assertEquals(idle.runs, 0);
  assertEquals(probes, 1);
});
