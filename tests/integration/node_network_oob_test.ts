/** The OOB address through real ipmitool fixture executables: answer, failure, hang, missing; never blocking. */
import { assert, assertEquals } from "../support/assert.ts";
import { createNodeNetworkController, type NodeNetworkResult } from "../../controllers/node_network/job.ts";
import type { Controller } from "../../core/types.ts";
import { readOobAddress } from "../../host/ipmi.ts";
import {
  type FakeHost,
  fakeHost,
  finishing,
  ipmitoolRunner,
  testDeps,
  testOptions,
} from "../support/node_network_fixtures.ts";
import { type ManualClock, testClock } from "../support/job_deps.ts";

const ctx = () => ({ signal: new AbortController().signal, dryRun: false });

async function upHost(): Promise<FakeHost> {
  const host = await fakeHost();
  await host.setLink("bond1", { operstate: "up" });
  host.setAddresses("bond1", ["192.0.2.10"]);
  return host;
}

function oobCondition(result: NodeNetworkResult) {
  return result.conditions.find((c) => c.type === "NodeOobIP");
}

Deno.test("readOobAddress: fixture answer, failure, hang and missing command", async () => {
  assertEquals(await readOobAddress(ipmitoolRunner("ok"), { timeoutMs: 5000 }), { ok: true, ip: "198.51.100.23" });
  assertEquals(await readOobAddress(ipmitoolRunner("fail"), { timeoutMs: 5000 }), {
    ok: false,
    error:
      "ipmitool cannot open the BMC device /dev/ipmi0 (nor /dev/ipmi/0, /dev/ipmidev/0): No such file or directory; " +
      "the host has no IPMI driver loaded or the container may not use the device: deploy with the kustomize component manifests/components/ipmi/",
  });
  const t0 = performance.now();
  assertEquals(await readOobAddress(ipmitoolRunner("hang"), { timeoutMs: 300 }), {
    ok: false,
    error: "ipmitool lan print 1 gave no answer within 300 ms",
  });
  assert(performance.now() - t0 < 3000, "the hung ipmitool was killed at the timeout");
  assertEquals(await readOobAddress(ipmitoolRunner("missing"), { timeoutMs: 5000 }), {
    ok: false,
    error: 'Cannot run "psd-test-no-such-ipmitool": command not found',
  });
});

Deno.test("controller: the first run shows the OOB answer; NodeOobIP True/PowerOn", async () => {
  const host = await upHost();
  try {
    const c = createNodeNetworkController(
      testDeps({ kube: null, clock: testClock(), runCommand: ipmitoolRunner("ok") }),
      testOptions(),
      host,
    );
    const { result } = await c.run(ctx());
    assertEquals(result.oobIp, "198.51.100.23");
    assertEquals(
      { ...oobCondition(result), lastHeartbeatTime: undefined, lastTransitionTime: undefined },
      {
        type: "NodeOobIP",
        status: "True",
        reason: "PowerOn",
        message: "198.51.100.23",
        lastHeartbeatTime: undefined,
        lastTransitionTime: undefined,
      },
    );
  } finally {
    await host.cleanup();
  }
});

Deno.test("controller: ipmitool failing or missing -> NodeOobIP False with the cause, message 0.0.0.0", async () => {
  const host = await upHost();
  try {
    for (
      const [mode, reason] of [
        ["fail", "error: ipmitool cannot open the BMC device /dev/ipmi0 (nor /dev/ipmi/0, /dev/ipmidev/0)"],
        ["missing", 'error: Cannot run "psd-test-no-such-ipmitool": command not found'],
      ] as const
    ) {
      const c = createNodeNetworkController(
        testDeps({ kube: null, clock: testClock(), runCommand: ipmitoolRunner(mode) }),
        testOptions(),
        host,
      );
      const { result } = await c.run(ctx());
      const oob = oobCondition(result)!;
      assertEquals(oob.status, "False", mode);
      assert(oob.reason!.startsWith(reason), `${mode}: ${oob.reason}`);
      if (mode === "fail") assert(oob.reason!.endsWith("kustomize component manifests/components/ipmi/"));
      assertEquals(oob.message, "0.0.0.0");
      assertEquals(result.oobIp, null);
      assertEquals(result.state, "UP", "the network part is unaffected");
    }
  } finally {
    await host.cleanup();
  }
});

Deno.test("controller: a hung ipmitool never blocks the probe; NodeOobIP appears once it times out", async () => {
  const host = await upHost();
  try {
    const runner = finishing(ipmitoolRunner("hang"));
    const c: Controller<NodeNetworkResult> = createNodeNetworkController(
      testDeps({ kube: null, clock: testClock(), runCommand: runner.runner }),
      testOptions(),
      { ...host, oobTimeoutMs: 1500, firstOobWaitMs: 200 },
    );
    let t0 = performance.now();
    let { result } = await c.run(ctx());
    assert(performance.now() - t0 < 1000, `first run took ${performance.now() - t0} ms`);
    assertEquals(oobCondition(result), undefined, "pending: NodeOobIP not reported yet");
    assertEquals(result.conditions.length, 3);
    assertEquals(result.state, "UP");
    for (let i = 0; i < 3; i++) {
      t0 = performance.now();
      ({ result } = await c.run(ctx()));
      assert(performance.now() - t0 < 100, `later run took ${performance.now() - t0} ms`);
      assertEquals(oobCondition(result), undefined);
    }
    await runner.landed();
    ({ result } = await c.run(ctx()));
    assertEquals(oobCondition(result)?.reason, "error: ipmitool lan print 1 gave no answer within 1500 ms");
    assertEquals(runner.calls, 1, "one ipmitool at a time");
  } finally {
    await host.cleanup();
  }
});

/** Probes every 3 s of the manual clock for `seconds`; returns the clock times (s) at which ipmitool ran. */
async function probeFor(
  c: Controller<NodeNetworkResult>,
  options: { clock: ManualClock; seconds: number; ipmi: ReturnType<typeof finishing> },
) {
  const at: number[] = [];
  for (let t = 0; t < options.seconds; t += 3) {
    const before = options.ipmi.calls;
    await c.run(ctx());
    if (options.ipmi.calls > before) {
      at.push(t);
      await options.ipmi.landed();
    }
    options.clock.advance(3000);
  }
  return at;
}

Deno.test("controller: a successful ipmitool answer holds for an hour", async () => {
  const host = await upHost();
  try {
    const clock = testClock();
    const ipmi = finishing(ipmitoolRunner("ok"));
    const c = createNodeNetworkController(
      testDeps({ kube: null, clock, runCommand: ipmi.runner }),
      testOptions(),
      host,
    );
    assertEquals(await probeFor(c, { clock, seconds: 2 * 3600 + 3, ipmi }), [0, 3600, 7200]);
  } finally {
    await host.cleanup();
  }
});

Deno.test("controller: a failed ipmitool is retried after 1 min, doubling to 1 h", async () => {
  const host = await upHost();
  try {
    const clock = testClock();
    const ipmi = finishing(ipmitoolRunner("fail"));
    const c = createNodeNetworkController(
      testDeps({ kube: null, clock, runCommand: ipmi.runner }),
      testOptions(),
      host,
    );
    const at = await probeFor(c, { clock, seconds: 3 * 3600, ipmi });
    assertEquals(at.slice(0, 7), [0, 60, 180, 420, 900, 1860, 3780]);
    assertEquals(at.slice(7).map((t, i) => t - at[i + 6]), at.slice(7).map(() => 3600), "then hourly");
  } finally {
    await host.cleanup();
  }
});
