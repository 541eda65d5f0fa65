/** The floating-IP plan: per address, what this node does; the safety rules, each on its own and in a simulation. */
import { assert, assertEquals } from "../support/assert.ts";
import { desiredFloatingIp } from "../../controllers/floating_ip/desired.ts";
import { planFloatingIps } from "../../controllers/floating_ip/plan.ts";
import type {
  ClusterObserved,
  FloatingIpAction,
  FloatingIpObserved,
  FloatingIpPlanOptions,
  LeaseObserved,
  ProbeResult,
  TaggedAddress,
} from "../../controllers/floating_ip/types.ts";

const NOW = new Date("2026-12-01T10:00:00.000Z");
const OPTIONS: FloatingIpPlanOptions = {
  nodeName: "h1",
  addEnabled: true,
  delEnabled: true,
  leaseDurationSeconds: 15,
  renewIntervalMs: 5_000,
  probeRetryMs: 10_000,
};

/** The MPDCluster object of `db/<name>` asking for `address` on `leader` (null: no leader). */
function mpd(name: string, address: string, leader: string | null, fip: Record<string, unknown> = {}): unknown {
  return {
    metadata: { namespace: "db", name },
    spec: { netCfg: { leaderFloatingIP: { ipAddressCfgType: "manual", ipAddress: address, mask: 24, ...fip } } },
    status: leader === null
      ? {}
      : { leaderInstanceHost: leader, dbInstanceStatus: { rw: { nodeName: leader, insType: "rw" } } },
  };
}

function observedCluster(object: unknown, lease: LeaseObserved | null = null): ClusterObserved {
  const desired = desiredFloatingIp(object, { clientNic: "bond1" });
  return { desired, leaseName: `polarstack-fip-db-${desired.cluster?.name ?? "x"}`, lease };
}

/** A Lease held by `holder`, renewed `agoMs` before NOW. */
function lease(holder: string | null, agoMs = 1_000, resourceVersion = "41"): LeaseObserved {
  return {
    holderIdentity: holder,
    renewTime: new Date(NOW.getTime() - agoMs),
    leaseDurationSeconds: 15,
    resourceVersion,
  };
}

function tagged(address: string, fields: Partial<TaggedAddress> = {}): TaggedAddress {
  return { address, prefix: 24, mode: "VirtualIF", nic: "bond1", device: "fip0a1b2c3d", ...fields };
}

function observe(fields: Partial<FloatingIpObserved>): FloatingIpObserved {
  return {
    clusters: [],
    tagged: [],
    interfaces: ["lo", "bond1"],
    enableVip: true,
    apiReachable: true,
    probes: new Map(),
    now: NOW,
    ...fields,
  };
}

/** One line per action: address, kind, reason, what is removed, the Lease writes. */
function line(a: FloatingIpAction): string {
  const removed = a.remove.map((t) => `-${t.mode}@${t.nic}`).join("");
  const leases = a.leases.map((l) => `${l.op}(${l.resourceVersion ?? "new"})`).join(",");
  return [a.address, a.kind, a.reason, removed, leases].filter((s) => s !== "").join(" ");
}

function conditionLines(plan: ReturnType<typeof planFloatingIps>): string[] {
  return plan.conditions.map((c) => `${c.cluster.name} ${c.status} ${c.reason}`);
}

const A = "192.0.2.50";

Deno.test("plan: one cluster, every situation of the leader's node and of another node", () => {
  const conflict = (agoMs: number) =>
    new Map<string, ProbeResult>([[A, { conflict: true, at: new Date(NOW.getTime() - agoMs) }]]);
  const table: Array<
    [string, Partial<FloatingIpObserved> & { lease?: LeaseObserved | null; leader?: string }, string, string[]]
  > = [
    ["leader, no Lease: create it", {}, `${A} acquire Acquiring take(new)`, ["pg1 False Acquiring"]],
    ["leader, free Lease", { lease: lease(null) }, `${A} acquire Acquiring take(41)`, ["pg1 False Acquiring"]],
    ["leader, Lease expired elsewhere", { lease: lease("h2", 16_000) }, `${A} acquire Acquiring take(41)`, [
      "pg1 False Acquiring",
    ]],
    ["leader, Lease live elsewhere: wait", { lease: lease("h2", 14_000) }, `${A} wait LeaseHeldElsewhere`, [
      "pg1 False LeaseHeldElsewhere",
    ]],
    ["leader, our Lease: probe then add", { lease: lease("h1") }, `${A} probe-then-add Probing renew(41)`, [
      "pg1 False Probing",
    ]],
    ["leader, our Lease in another case", { lease: lease("H1") }, `${A} probe-then-add Probing renew(41)`, [
      "pg1 False Probing",
    ]],
    [
      "leader, our Lease lapsed: renew before probing",
      { lease: lease("h1", 20_000) },
      `${A} acquire Acquiring renew(41)`,
      [
        "pg1 False Acquiring",
      ],
    ],
    ["leader, recent conflict: wait", { lease: lease("h1"), probes: conflict(3_000) }, `${A} wait IPConflict`, [
      "pg1 False IPConflict",
    ]],
    [
      "leader, recent conflict, renewal due",
      { lease: lease("h1", 6_000), probes: conflict(3_000) },
      `${A} wait IPConflict renew(41)`,
      [
        "pg1 False IPConflict",
      ],
    ],
    [
      "leader, old conflict: probe again",
      { lease: lease("h1"), probes: conflict(10_000) },
      `${A} probe-then-add Probing renew(41)`,
      [
        "pg1 False IPConflict",
      ],
    ],
    [
      "leader, silent probe before",
      {
        lease: lease("h1"),
        probes: new Map([[A, { conflict: false, at: NOW }]]),
      },
      `${A} probe-then-add Probing renew(41)`,
      ["pg1 False Probing"],
    ],
    ["leader, held, renewal not due", { lease: lease("h1", 4_000), tagged: [tagged(A)] }, `${A} hold Held`, [
      "pg1 True AddressHeld",
    ]],
    ["leader, held, renewal due", { lease: lease("h1", 5_000), tagged: [tagged(A)] }, `${A} hold Held renew(41)`, [
      "pg1 True AddressHeld",
    ]],
    [
      "leader, held, renewTime ahead (clock went back)",
      {
        lease: lease("h1", -3_000),
        tagged: [tagged(A)],
      },
      `${A} hold Held renew(41)`,
      ["pg1 True AddressHeld"],
    ],
    [
      "leader, held, Lease lapsed: renew",
      { lease: lease("h1", 30_000), tagged: [tagged(A)] },
      `${A} hold Held renew(41)`,
      [
        "pg1 True AddressHeld",
      ],
    ],
    [
      "leader, held after a restart, Lease free: take it",
      { lease: null, tagged: [tagged(A)] },
      `${A} acquire Acquiring take(new)`,
      [
        "pg1 False Acquiring",
      ],
    ],
    [
      "leader, held, Lease live elsewhere: remove ours",
      {
        lease: lease("h2"),
        tagged: [tagged(A)],
      },
      `${A} release LeaseHeldElsewhere -VirtualIF@bond1`,
      ["pg1 False LeaseHeldElsewhere"],
    ],
    ["leader, NIC missing", { interfaces: ["lo"] }, `${A} none InterfaceMissing`, ["pg1 False InterfaceMissing"]],
    ["leader, our Lease, NIC missing", { lease: lease("h1"), interfaces: ["lo"] }, `${A} none InterfaceMissing`, [
      "pg1 False InterfaceMissing",
    ]],
    ["other node, nothing here", { leader: "h2" }, `${A} none NotLeader`, []],
    ["other node, Lease elsewhere", { leader: "h2", lease: lease("h2") }, `${A} none NotLeader`, []],
    [
      "other node, held: remove, then clear our Lease",
      {
        leader: "h2",
        lease: lease("h1"),
        tagged: [tagged(A)],
      },
      `${A} release NotLeader -VirtualIF@bond1 clear(41)`,
      [],
    ],
    [
      "other node, removed before: clear our Lease",
      { leader: "h2", lease: lease("h1") },
      `${A} release NotLeader clear(41)`,
      [],
    ],
    [
      "other node, held, Lease not ours: remove only",
      {
        leader: "h2",
        lease: lease("h2"),
        tagged: [tagged(A)],
      },
      `${A} release NotLeader -VirtualIF@bond1`,
      [],
    ],
  ];
  for (const [name, { lease: l = null, leader = "h1", ...fields }, want, conditions] of table) {
    const plan = planFloatingIps(
      observe({ clusters: [observedCluster(mpd("pg1", A, leader), l)], ...fields }),
      OPTIONS,
    );
    assertEquals(plan.actions.map(line), [want], name);
    assertEquals(conditionLines(plan), conditions, name);
  }
});

Deno.test("plan: the Lease writes carry this node, the duration, the time and the resourceVersion", () => {
  const plan = planFloatingIps(
    observe({ clusters: [observedCluster(mpd("pg1", A, "h1"), lease("h2", 20_000, "99"))] }),
    {
      ...OPTIONS,
      nodeName: "H1",
      leaseDurationSeconds: 30,
    },
  );
  assertEquals(plan.actions[0].leases, [{
    name: "polarstack-fip-db-pg1",
    op: "take",
    resourceVersion: "99",
    holderIdentity: "H1",
    leaseDurationSeconds: 30,
    at: NOW,
  }]);
  const wait = planFloatingIps(
    observe({ clusters: [observedCluster(mpd("pg1", A, "h1"), lease("h2", 5_000))] }),
    OPTIONS,
  );
  assertEquals(wait.actions[0].heldBy, { holder: "h2", expiresAt: new Date(NOW.getTime() + 10_000) });
  assertEquals(wait.actions[0].ip?.address, A);
  // a renewal interval longer than the Lease (a setting the flags should refuse) still renews a lapsed Lease
  const slow = planFloatingIps(
    observe({ clusters: [observedCluster(mpd("pg1", A, "h1"), lease("h1", 20_000))], tagged: [tagged(A)] }),
    { ...OPTIONS, renewIntervalMs: 60_000 },
  );
  assertEquals(slow.actions.map(line), [`${A} hold Held renew(41)`]);
  const clear = planFloatingIps(observe({ clusters: [observedCluster(mpd("pg1", A, "h2"), lease("h1"))] }), OPTIONS);
  assertEquals([clear.actions[0].leases[0].op, clear.actions[0].leases[0].holderIdentity], ["clear", null]);
});

Deno.test("plan: a Lease's expiry, from renewTime and from when this node saw it", () => {
  const at = (ms: number) => new Date(NOW.getTime() + ms);
  const table: Array<[string, LeaseObserved, string]> = [
    ["renewed 14.9 s ago", lease("h2", 14_900), "wait"],
    ["renewed 15 s ago", lease("h2", 15_000), "acquire"],
    ["no duration: ours (15 s) assumed", { ...lease("h2", 10_000), leaseDurationSeconds: null }, "wait"],
    ["duration 0: ours assumed", { ...lease("h2", 10_000), leaseDurationSeconds: 0 }, "wait"],
    ["duration 60", { ...lease("h2", 30_000), leaseDurationSeconds: 60 }, "wait"],
    ["no renewTime, never seen: free", { ...lease("h2"), renewTime: null }, "acquire"],
    ["no renewTime, seen 5 s ago", { ...lease("h2"), renewTime: null, observedAt: at(-5_000) }, "wait"],
    ["old renewTime (a slow clock), seen 5 s ago", { ...lease("h2", 60_000), observedAt: at(-5_000) }, "wait"],
    ["renewTime a year ahead is not relied on", { ...lease("h2", -365 * 86_400_000) }, "acquire"],
    ["renewTime a year ahead, seen 1 s ago", { ...lease("h2", -365 * 86_400_000), observedAt: at(-1_000) }, "wait"],
    ["renewTime 10 s ahead (skew) holds", lease("h2", -10_000), "wait"],
    ["invalid date", { ...lease("h2"), renewTime: new Date("x") }, "acquire"],
    ["empty holder is free", lease(""), "acquire"],
  ];
  for (const [name, l, want] of table) {
    const plan = planFloatingIps(observe({ clusters: [observedCluster(mpd("pg1", A, "h1"), l)] }), OPTIONS);
    assertEquals(plan.actions[0].kind, want, name);
  }
});

Deno.test("safety: a partitioned holder keeps its address and does nothing else", () => {
  const situations: Partial<FloatingIpObserved>[] = [
    // the leader moved while we could not see it: the cache still says us, or already says h2
    { clusters: [observedCluster(mpd("pg1", A, "h1"), lease("h1", 30_000))], tagged: [tagged(A)] },
    { clusters: [observedCluster(mpd("pg1", A, "h2"), lease("h1", 30_000))], tagged: [tagged(A)] },
    { clusters: [], tagged: [tagged(A), tagged("192.0.2.60", { mode: "MultiIP", device: "bond1" })] },
    { clusters: [observedCluster(mpd("pg1", A, "h1"), null)] },
    { clusters: [observedCluster(mpd("pg1", A, "h1"), lease("h1"))] },
  ];
  for (const [i, fields] of situations.entries()) {
    const plan = planFloatingIps(observe({ ...fields, apiReachable: false }), OPTIONS);
    assertEquals(plan.conditions, [], `situation ${i}`);
    assert(plan.actions.length > 0, `situation ${i}`);
    for (const a of plan.actions) {
      assertEquals(
        [a.kind, a.reason, a.remove.length, a.leases.length],
        ["none", "ApiUnreachable", 0, 0],
        `situation ${i}`,
      );
    }
  }
});

Deno.test("safety: nobody else adds before the Lease expired and the probe stayed silent", () => {
  // h2 is the new leader; h1 held the address and its Lease
  const h2 = { ...OPTIONS, nodeName: "h2" };
  const step = (l: LeaseObserved | null, probes: Map<string, ProbeResult> = new Map()) =>
    planFloatingIps(observe({ clusters: [observedCluster(mpd("pg1", A, "h2"), l)], probes }), h2).actions[0].kind;
  const kinds = [
    step(lease("h1", 0)),
    step(lease("h1", 14_999)),
    step(lease("h1", 15_000)), // expired: take it, still no add
    step(lease("h2", 0)), // ours now: probe first
    step(lease("h2", 0), new Map([[A, { conflict: true, at: NOW }]])), // h1 still answers: no add
    step(lease("h2", 0), new Map([[A, { conflict: true, at: new Date(NOW.getTime() - 10_000) }]])), // try again
  ];
  assertEquals(kinds, ["wait", "wait", "acquire", "probe-then-add", "wait", "probe-then-add"]);
  // and the only add there is comes with a renewal to write first, against the Lease's resourceVersion
  const add = planFloatingIps(observe({ clusters: [observedCluster(mpd("pg1", A, "h2"), lease("h2", 0, "77"))] }), h2);
  assertEquals(add.actions[0].leases.map((l) => [l.op, l.resourceVersion]), [["renew", "77"]]);
});

Deno.test("safety: two clusters claiming the same IP: neither holds it, both are reported", () => {
  const one = observedCluster(mpd("pg1", A, "h1"), lease("h1"));
  const two = observedCluster(mpd("pg2", A, "h1"), lease("h1", 1_000, "52"));
  const three = observedCluster(mpd("pg3", A, "h2"), lease(null));
  const plan = planFloatingIps(observe({ clusters: [one, two, three], tagged: [tagged(A)] }), OPTIONS);
  assertEquals(plan.actions.map(line), [`${A} release DuplicateAddress -VirtualIF@bond1 clear(41),clear(52)`]);
  assertEquals(plan.actions[0].cluster, null);
  assertEquals(conditionLines(plan), ["pg1 False DuplicateAddress", "pg2 False DuplicateAddress"]);
  assertEquals(plan.conditions[0].message, `${A}: db/pg1, db/pg2, db/pg3 all ask for it`);
  // on pg3's leader: no acquire, no add, and it reports its own cluster
  const onH2 = planFloatingIps(observe({ clusters: [one, two, three] }), { ...OPTIONS, nodeName: "h2" });
  assertEquals(onH2.actions.map(line), [`${A} none DuplicateAddress`]);
  assertEquals(conditionLines(onH2), ["pg3 False DuplicateAddress"]);
  // a duplicate whose leader is unknown counts too
  const keep = observedCluster(mpd("pg4", A, null), lease("h1"));
  const withKeep = planFloatingIps(observe({ clusters: [observedCluster(mpd("pg1", A, "h1")), keep] }), OPTIONS);
  assertEquals(withKeep.actions.map(line), [`${A} release DuplicateAddress clear(41)`]);
  assertEquals(conditionLines(withKeep), ["pg1 False DuplicateAddress", "pg4 False DuplicateAddress"]);
});

Deno.test("safety: after a restart every tagged address this node is not entitled to is removed", () => {
  const clusters = [
    observedCluster(mpd("mine", "192.0.2.10", "h1"), lease("h1")),
    observedCluster(mpd("moved", "192.0.2.11", "h2"), lease("h1", 20_000)),
    observedCluster(mpd("bad", "192.0.2.12", "h1", { mask: 33 }), lease("h1")),
    observedCluster(mpd("lost", "192.0.2.14", null), lease("h1")),
  ];
  const left = [
    tagged("192.0.2.10"),
    tagged("192.0.2.11", { mode: "MultiIP", device: "bond1" }),
    tagged("192.0.2.12"),
    tagged("192.0.2.13", { nic: "eth9", device: "fip99" }),
    tagged("192.0.2.14"),
  ];
  const plan = planFloatingIps(observe({ clusters, tagged: left }), OPTIONS);
  assertEquals(plan.actions.map(line), [
    "192.0.2.10 hold Held",
    "192.0.2.11 release NotLeader -MultiIP@bond1 clear(41)",
    "192.0.2.12 release NotDesired -VirtualIF@bond1",
    "192.0.2.13 release NotDesired -VirtualIF@eth9",
    "192.0.2.14 hold LeaderUnknown",
  ]);
  assertEquals(conditionLines(plan), ["mine True AddressHeld", "lost False LeaderUnknown", "bad False InvalidMask"]);
  // the removal names exactly what the host reported, so the host module removes only what it tagged
  assertEquals(plan.actions[1].remove, [left[1]]);
});

Deno.test("safety: enableVip false or adding disabled: no Lease taken to add, no add (Disabled)", () => {
  for (
    const [name, enableVip, addEnabled] of [["enableVip false", false, true], ["add disabled", true, false]] as const
  ) {
    const options = { ...OPTIONS, addEnabled };
    for (const l of [null, lease(null), lease("h2", 20_000), lease("h1")]) {
      const plan = planFloatingIps(
        observe({ clusters: [observedCluster(mpd("pg1", A, "h1"), l)], enableVip }),
        options,
      );
      const [a] = plan.actions;
      assertEquals([a.kind, a.reason, a.leases.filter((w) => w.op === "take").length], ["none", "Disabled", 0], name);
      assertEquals(conditionLines(plan), ["pg1 False Disabled"], name);
    }
    assertEquals(
      planFloatingIps(observe({ clusters: [observedCluster(mpd("pg1", A, "h1"), null)], enableVip }), options)
        .conditions[0]
        .message,
      enableVip
        ? `Not adding ${A}: adding is disabled (--job-enable-add-fip=false)`
        : `Not adding ${A}: controller-config enableVip is false`,
    );
    // an address already held stays, with its fence
    const held = planFloatingIps(
      observe({ clusters: [observedCluster(mpd("pg1", A, "h1"), lease("h1", 6_000))], tagged: [tagged(A)], enableVip }),
      options,
    );
    assertEquals(held.actions.map(line), [`${A} hold Held renew(41)`], name);
    // what this node may not keep still goes (removing is the other switch)
    const moved = planFloatingIps(
      observe({ clusters: [observedCluster(mpd("pg1", A, "h2"), lease("h1"))], tagged: [tagged(A)], enableVip }),
      options,
    );
    assertEquals(moved.actions.map(line), [`${A} release NotLeader -VirtualIF@bond1 clear(41)`], name);
  }
});

Deno.test("safety: removing disabled: nothing is removed, and the Lease stays taken while the address is here", () => {
  const noDel = { ...OPTIONS, delEnabled: false };
  const situations: Array<[string, Partial<FloatingIpObserved>, string]> = [
    ["moved, Lease ours", {
      clusters: [observedCluster(mpd("pg1", A, "h2"), lease("h1", 6_000))],
      tagged: [tagged(A)],
    }, `${A} hold Disabled renew(41)`],
    ["moved, Lease not ours", {
      clusters: [observedCluster(mpd("pg1", A, "h2"), lease("h2"))],
      tagged: [tagged(A)],
    }, `${A} none Disabled`],
    ["no cluster", { tagged: [tagged(A)] }, `${A} none Disabled`],
    ["duplicate", {
      clusters: [observedCluster(mpd("pg1", A, "h1"), lease("h1")), observedCluster(mpd("pg2", A, "h1"))],
      tagged: [tagged(A)],
    }, `${A} hold Disabled`],
    ["Lease elsewhere", {
      clusters: [observedCluster(mpd("pg1", A, "h1"), lease("h2"))],
      tagged: [tagged(A)],
    }, `${A} none Disabled`],
    ["other shape", {
      clusters: [observedCluster(mpd("pg1", A, "h1"), lease("h1"))],
      tagged: [tagged(A, { mode: "MultiIP", device: "bond1" })],
    }, `${A} hold Held`],
    ["both shapes", {
      clusters: [observedCluster(mpd("pg1", A, "h1"), lease("h1"))],
      tagged: [tagged(A), tagged(A, { mode: "MultiIP", device: "bond1" })],
    }, `${A} hold Held`],
  ];
  for (const [name, fields, want] of situations) {
    const plan = planFloatingIps(observe(fields), noDel);
    assertEquals(plan.actions.map(line), [want], name);
    assert(plan.actions.every((a) => a.remove.length === 0 && a.leases.every((l) => l.op !== "clear")), name);
  }
  // with removing enabled, the same situations remove
  const withDel = planFloatingIps(observe(situations[0][1]), OPTIONS);
  assertEquals(withDel.actions.map(line), [`${A} release NotLeader -VirtualIF@bond1 clear(41)`]);
});

Deno.test("plan: a change of shape removes the old form first, keeping the Lease, then adds the new one", () => {
  const wantsMulti = observedCluster(mpd("pg1", A, "h1", { ipMode: "MultiIP" }), lease("h1", 6_000));
  const first = planFloatingIps(observe({ clusters: [wantsMulti], tagged: [tagged(A)] }), OPTIONS);
  assertEquals(first.actions.map(line), [`${A} release Reshaping -VirtualIF@bond1 renew(41)`]);
  assertEquals(conditionLines(first), ["pg1 False Probing"]);
  const then = planFloatingIps(observe({ clusters: [wantsMulti] }), OPTIONS);
  assertEquals(then.actions.map(line), [`${A} probe-then-add Probing renew(41)`]);
  assertEquals(then.actions[0].ip?.mode, "MultiIP");
  // the new form is there and the old one too: keep the new, drop the old
  const both = [tagged(A), tagged(A, { mode: "MultiIP", device: "bond1" })];
  const after = planFloatingIps(observe({ clusters: [wantsMulti], tagged: both }), OPTIONS);
  assertEquals(after.actions.map(line), [`${A} hold Held -VirtualIF@bond1 renew(41)`]);
  // another prefix is another shape
  const prefix = planFloatingIps(
    observe({ clusters: [wantsMulti], tagged: [tagged(A, { mode: "MultiIP", prefix: 16 })] }),
    OPTIONS,
  );
  assertEquals(prefix.actions[0].reason, "Reshaping");
});

Deno.test("plan: leader unknown or disagreeing: the holder keeps the address and its Lease, nobody takes it", () => {
  const disagree = {
    metadata: { namespace: "db", name: "pg1" },
    spec: { netCfg: { leaderFloatingIP: { ipAddress: A, mask: 24 } } },
    status: { leaderInstanceHost: "h1", dbInstanceStatus: { x: { nodeName: "h2", insType: "rw" } } },
  };
  for (const object of [mpd("pg1", A, null), disagree]) {
    const onHolder = planFloatingIps(
      observe({ clusters: [observedCluster(object, lease("h1", 6_000))], tagged: [tagged(A)] }),
      OPTIONS,
    );
    assertEquals(onHolder.actions.map((a) => [a.kind, a.remove.length, a.leases.map((l) => l.op)]), [["hold", 0, [
      "renew",
    ]]]);
    assertEquals(onHolder.conditions.length, 1);
    for (const node of ["h1", "h2", "h3"]) {
      for (const l of [null, lease(null), lease("h1", 30_000)]) {
        const plan = planFloatingIps(observe({ clusters: [observedCluster(object, l)] }), {
          ...OPTIONS,
          nodeName: node,
        });
        assert(plan.actions.every((a) => a.kind === "none" || (a.kind === "release" && a.remove.length === 0)), node);
        assert(plan.actions.every((a) => a.leases.length === 0), node);
      }
    }
  }
});

Deno.test("plan: refusals are reported by the leader's node only, and nothing is reported for clusters without a floating IP", () => {
  const clusters = [
    observedCluster(mpd("v6", "2001:db8::1", "h1")),
    observedCluster(mpd("wide", A, "h1", { mask: 33 })),
    observedCluster(mpd("auto", A, "h1", { ipAddressCfgType: "auto" })),
    observedCluster(mpd("elsewhere", A, "h2", { mask: 33 })),
    observedCluster({ metadata: { namespace: "db", name: "plain" }, status: { leaderInstanceHost: "h1" } }),
    observedCluster({ metadata: {}, spec: { netCfg: { leaderFloatingIP: { ipAddress: A, mask: 24 } } } }),
  ];
  const plan = planFloatingIps(observe({ clusters }), OPTIONS);
  assertEquals(plan.actions, []);
  assertEquals(conditionLines(plan), [
    "v6 False InvalidAddress",
    "wide False InvalidMask",
    "auto False AutoNotAssigned",
  ]);
});

Deno.test("plan: 1,000 clusters, one address each, on one node", () => {
  const address = (i: number) => `10.${Math.floor(i / 250)}.${i % 250}.${10 + (i % 7)}`;
  const nodes = ["h1", "h2", "h3", "h4"];
  const clusters: ClusterObserved[] = [];
  const held: TaggedAddress[] = [];
  for (let i = 0; i < 1000; i++) {
    const leader = nodes[i % 4];
    // h1 holds what it leads, and what it led before h2 took over (every 8th)
    const holder = leader === "h1" ? "h1" : i % 8 === 1 ? "h1" : leader;
    clusters.push(observedCluster(mpd(`pg${i}`, address(i), leader), lease(holder)));
    if (holder === "h1") held.push(tagged(address(i)));
  }
  held.push(tagged("10.9.9.9")); // left from a cluster deleted while the daemon was down
  const plan = planFloatingIps(observe({ clusters, tagged: held }), OPTIONS);
  const count = (kind: string) => plan.actions.filter((a) => a.kind === kind).length;
  assertEquals(plan.actions.length, 1001);
  assertEquals([count("hold"), count("release"), count("none")], [250, 126, 625]);
  assertEquals(new Set(plan.actions.map((a) => a.address)).size, 1001);
  assertEquals(plan.conditions.length, 250);
  assert(plan.conditions.every((c) => c.status === "True" && Number(c.cluster.name.slice(2)) % 4 === 0));
  const released = plan.actions.filter((a) => a.kind === "release");
  assert(released.every((a) => a.remove.length === 1 && a.remove[0].address === a.address));
  assertEquals(released.filter((a) => a.leases.length === 1).length, 125);
  // the answer does not depend on the order the cache lists the clusters in
  const reversed = planFloatingIps(
    observe({ clusters: [...clusters].reverse(), tagged: [...held].reverse() }),
    OPTIONS,
  );
  assertEquals(reversed.actions, plan.actions);
  const byName = (p: typeof plan) => p.conditions.map((c) => c.cluster.name).sort();
  assertEquals(byName(reversed), byName(plan));
});

// ---- a simulation: three nodes, one Lease store, one wire ----

interface SimNode {
  readonly name: string;
  alive: boolean;
  apiReachable: boolean;
  onWire: boolean;
  addresses: TaggedAddress[];
  probes: Map<string, ProbeResult>;
}

interface StoredLease {
  holderIdentity: string | null;
  renewTime: Date | null;
  leaseDurationSeconds: number;
  resourceVersion: string;
}

function simulation() {
  let time = NOW.getTime();
  let version = 1;
  const leases = new Map<string, StoredLease>();
  const nodes = ["h1", "h2", "h3"].map((name): SimNode => ({
    name,
    alive: true,
    apiReachable: true,
    onWire: true,
    addresses: [],
    probes: new Map(),
  }));
  let leader: string | null = "h1";
  let maxHolders = 0;
  let adds = 0;
  let conflicts = 0;

  function writeLease(w: FloatingIpAction["leases"][number]): boolean {
    const old = leases.get(w.name);
    if (w.resourceVersion === null ? old !== undefined : old?.resourceVersion !== w.resourceVersion) return false;
    leases.set(w.name, {
      holderIdentity: w.holderIdentity,
      renewTime: w.at,
      leaseDurationSeconds: w.leaseDurationSeconds,
      resourceVersion: String(++version),
    });
    return true;
  }

  function sample(): void {
    const holders = nodes.filter((n) => n.addresses.some((t) => t.address === A)).length;
    maxHolders = Math.max(maxHolders, holders);
  }

  function runNode(node: SimNode): void {
    const now = new Date(time);
    const l = leases.get("polarstack-fip-db-pg1");
    const plan = planFloatingIps({
      clusters: [observedCluster(mpd("pg1", A, leader), l ? { ...l } : null)],
      tagged: [...node.addresses],
      interfaces: ["bond1"],
      enableVip: true,
      apiReachable: node.apiReachable,
      probes: node.probes,
      now,
    }, { ...OPTIONS, nodeName: node.name });
    for (const a of plan.actions) {
      node.addresses = node.addresses.filter((t) => !a.remove.includes(t));
      sample();
      if (!a.leases.every(writeLease)) continue;
      // as the job does: probe-then-add, and an acquire that probes right after its take
      const probes = a.kind === "probe-then-add" || (a.kind === "acquire" && a.probeAfter === true);
      if (!probes || a.ip === null) continue;
      const answered = nodes.some((n) =>
        n !== node && n.onWire && node.onWire && n.addresses.some((t) => t.address === A)
      );
      node.probes.set(A, { conflict: answered, at: now });
      if (answered) {
        conflicts++;
        continue;
      }
      node.addresses.push({ address: A, prefix: a.ip.mask, mode: a.ip.mode, nic: a.ip.nic, device: "fip" });
      adds++;
      sample();
    }
  }

  return {
    nodes: Object.fromEntries(nodes.map((n) => [n.name, n])),
    /** Runs every live node once per simulated second, `seconds` times. */
    tick(seconds: number): void {
      for (let s = 0; s < seconds; s++) {
        time += 1000;
        for (const n of nodes) if (n.alive) runNode(n);
      }
    },
    moveTo(node: string | null): void {
      leader = node;
    },
    holders: () => nodes.filter((n) => n.addresses.some((t) => t.address === A)).map((n) => n.name),
    stats: () => ({ maxHolders, adds, conflicts }),
  };
}

Deno.test("simulation: moves, a killed holder, a partitioned holder: never two holders, and the leader ends up holding", () => {
  const sim = simulation();
  sim.tick(3);
  assertEquals(sim.holders(), ["h1"]);
  // plain moves, back and forth
  for (let i = 0; i < 10; i++) {
    const to = i % 2 === 0 ? "h2" : "h1";
    sim.moveTo(to);
    sim.tick(4);
    assertEquals(sim.holders(), [to], `move ${i}`);
  }
  // kill -9 of the holder's daemon (h1): its address stays on the wire; then a move to h2
  sim.nodes.h1.alive = false;
  sim.moveTo("h2");
  sim.tick(30);
  assertEquals(sim.holders(), ["h1"], "h2 waited for the Lease, then heard h1 and did not add");
  assert(sim.stats().conflicts > 0);
  // the killed daemon restarts and removes the address it left
  sim.nodes.h1.alive = true;
  sim.tick(15);
  assertEquals(sim.holders(), ["h2"]);
  // h2 loses the API server (but not the wire) for 30 s while the leader moves to h3
  sim.nodes.h2.apiReachable = false;
  sim.moveTo("h3");
  sim.tick(30);
  assertEquals(sim.holders(), ["h2"], "the partitioned holder keeps the address; h3 hears it");
  sim.nodes.h2.apiReachable = true;
  sim.tick(15);
  assertEquals(sim.holders(), ["h3"]);
  // leader unknown for a while: nothing moves
  sim.moveTo(null);
  sim.tick(20);
  assertEquals(sim.holders(), ["h3"]);
  sim.moveTo("h1");
  sim.tick(5);
  assertEquals(sim.holders(), ["h1"]);
  assertEquals(sim.stats().maxHolders, 1);
});

Deno.test("simulation: a holder cut off from both the API server and the wire is the one case left to the wire", () => {
  // the documented limit: with h1 unreachable everywhere, h2 adds after the Lease expired and the probe was silent
  const sim = simulation();
  sim.tick(3);
  sim.nodes.h1.apiReachable = false;
  sim.nodes.h1.onWire = false;
  sim.moveTo("h2");
  sim.tick(10);
  assertEquals(sim.holders(), ["h1"], "not before the Lease expired");
  sim.tick(10);
  assertEquals(sim.holders(), ["h1", "h2"]);
  // when h1 comes back, it sees it is not the leader and removes its copy
  sim.nodes.h1.apiReachable = true;
  sim.nodes.h1.onWire = true;
  sim.tick(1);
  assertEquals(sim.holders(), ["h2"]);
});

Deno.test("plan: a take probes right after the write when nothing of the address is here; not after a conflict", () => {
  const free = observedCluster(mpd("pg", A, "h1"));
  const plan = planFloatingIps(observe({ clusters: [free] }), OPTIONS);
  assertEquals(plan.actions.map((a) => [line(a), a.probeAfter]), [[`${A} acquire Acquiring take(new)`, true]]);
  const carried = planFloatingIps(observe({ clusters: [free], tagged: [tagged(A)] }), OPTIONS);
  assertEquals(carried.actions.map((a) => [a.kind, a.probeAfter]), [["acquire", false]]);
  const probes = new Map([[A, { conflict: true, at: new Date(NOW.getTime() - 1_000) }]]);
  const answered = planFloatingIps(observe({ clusters: [free], probes }), OPTIONS);
  assertEquals(answered.actions.map((a) => [a.kind, a.probeAfter]), [["acquire", false]]);
  const disabled = planFloatingIps(observe({ clusters: [free], tagged: [tagged(A)], enableVip: false }), OPTIONS);
  assertEquals(disabled.actions.map((a) => [a.kind, a.probeAfter]), [["acquire", false]]);
});
