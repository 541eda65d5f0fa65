/** The OOB address through real ipmitool fixture executables: answer, failure, hang, missing; never blocking. */
import assert from "node:assert/strict";
import { createNodeNetworkController, type NodeNetworkResult } from "../controllers/node_network.ts";
import type { Controller } from "../controllers/types.ts";
import { readOobAddress } from "../host/ipmi.ts";
import { type FakeHost, fakeHost, ipmitoolRunner, manualClock, testDeps } from "./support/node_network_fixtures.ts";

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
  assert.deepEqual(await readOobAddress(ipmitoolRunner("ok"), { timeoutMs: 5000 }), { ok: true, ip: "198.51.100.23" });
  assert.deepEqual(await readOobAddress(ipmitoolRunner("fail"), { timeoutMs: 5000 }), {
    ok: false,
    error:
      "ipmitool lan print 1 exited with 1: Could not open device at /dev/ipmi0 or /dev/ipmi/0 or /dev/ipmidev/0: No such file or directory",
  });
  const t0 = performance.now();
  assert.deepEqual(await readOobAddress(ipmitoolRunner("hang"), { timeoutMs: 300 }), {
    ok: false,
    error: "ipmitool lan print 1 gave no answer within 300 ms",
  });
  assert.ok(performance.now() - t0 < 3000, "the hung ipmitool was killed at the timeout");
  assert.deepEqual(await readOobAddress(ipmitoolRunner("missing"), { timeoutMs: 5000 }), {
    ok: false,
    error: 'Cannot run "psd-test-no-such-ipmitool": command not found',
  });
});

Deno.test("controller: the first run shows the OOB answer; NodeOobIP True/PowerOn", async () => {
  const host = await upHost();
  try {
    const c = createNodeNetworkController(
      testDeps({ kube: null, clock: manualClock(), runCommand: ipmitoolRunner("ok") }),
      host,
    );
    const { result } = await c.run(ctx());
    assert.equal(result.oobIp, "198.51.100.23");
    assert.deepEqual(
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
        ["fail", "error: ipmitool lan print 1 exited with 1: Could not open device at /dev/ipmi0"],
        ["missing", 'error: Cannot run "psd-test-no-such-ipmitool": command not found'],
      ] as const
    ) {
      const c = createNodeNetworkController(
        testDeps({ kube: null, clock: manualClock(), runCommand: ipmitoolRunner(mode) }),
        host,
      );
      const { result } = await c.run(ctx());
      const oob = oobCondition(result)!;
      assert.equal(oob.status, "False", mode);
      assert.ok(oob.reason!.startsWith(reason), `${mode}: ${oob.reason}`);
      assert.equal(oob.message, "0.0.0.0");
      assert.equal(result.oobIp, null);
      assert.equal(result.state, "UP", "the network part is unaffected");
    }
  } finally {
    await host.cleanup();
  }
});

Deno.test("controller: a hung ipmitool never blocks the probe; NodeOobIP appears once it times out", async () => {
  const host = await upHost();
  try {
    const runner = ipmitoolRunner("hang");
    const c: Controller<NodeNetworkResult> = createNodeNetworkController(
      testDeps({ kube: null, clock: manualClock(), runCommand: runner }),
      { ...host, oobTimeoutMs: 1500, firstOobWaitMs: 200 },
    );
    let t0 = performance.now();
    let { result } = await c.run(ctx());
    assert.ok(performance.now() - t0 < 1000, `first run took ${performance.now() - t0} ms`);
    assert.equal(oobCondition(result), undefined, "pending: NodeOobIP not reported yet");
    assert.equal(result.conditions.length, 3);
    assert.equal(result.state, "UP");
    for (let i = 0; i < 3; i++) {
      t0 = performance.now();
      ({ result } = await c.run(ctx()));
      assert.ok(performance.now() - t0 < 100, `later run took ${performance.now() - t0} ms`);
      assert.equal(oobCondition(result), undefined);
    }
    await new Promise((r) => setTimeout(r, 1800));
    ({ result } = await c.run(ctx()));
    assert.equal(oobCondition(result)?.reason, "error: ipmitool lan print 1 gave no answer within 1500 ms");
    assert.equal(runner.calls, 1, "one ipmitool at a time");
  } finally {
    await host.cleanup();
  }
});

Deno.test("controller: ipmitool runs at most hourly, whatever the answer", async () => {
  const host = await upHost();
  try {
    for (const mode of ["ok", "fail"] as const) {
      const clock = manualClock();
      const runner = ipmitoolRunner(mode);
      const c = createNodeNetworkController(testDeps({ kube: null, clock, runCommand: runner }), host);
      for (let i = 0; i < 1199; i++) {
        await c.run(ctx());
        clock.advance(3000);
      }
      assert.equal(runner.calls, 1, `${mode}: one run in the first hour`);
      clock.advance(3000);
      await c.run(ctx());
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(runner.calls, 2, `${mode}: again after an hour`);
    }
  } finally {
    await host.cleanup();
  }
});
