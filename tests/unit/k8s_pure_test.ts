import { assert, assertEquals, assertRejects, assertThrows } from "../support/assert.ts";
import { backoffDelay, isRetryableStatus, parseRetryAfter } from "../../k8s/backoff.ts";
import { RateLimiter } from "../../k8s/rate_limiter.ts";
import { chooseClusterSource, parseKubeconfig } from "../../k8s/kube_config.ts";

Deno.test("backoff grows exponentially with jitter and stops at the cap", () => {
  for (let attempt = 0; attempt < 40; attempt++) {
    const low = backoffDelay(attempt, { random: 0 });
    const high = backoffDelay(attempt, { random: 0.999 });
    assert(low > 0 && low <= high && high <= 30_000, `attempt ${attempt}: ${low}..${high}`);
  }
  assertEquals(backoffDelay(0, { random: 0 }), 100);
  assertEquals(backoffDelay(3, { random: 0 }), 800);
  assert(backoffDelay(30, { random: 0.999 }) >= 29_900);
  assertEquals(backoffDelay(5, { random: 0.5, capMs: 1000 }), 750);
});

Deno.test("retryable statuses: network errors, 429 and 5xx", () => {
  for (const s of [0, 429, 500, 502, 503, 504]) assert(isRetryableStatus(s), String(s));
  for (const s of [200, 400, 401, 403, 404, 409, 422]) assert(!isRetryableStatus(s), String(s));
});

Deno.test("Retry-After takes seconds or an HTTP date", () => {
  const now = new Date("2026-01-01T00:00:00Z");
  assertEquals(parseRetryAfter("3", now), 3000);
  assertEquals(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now), 5000);
  assertEquals(parseRetryAfter("soon", now), null);
  assertEquals(parseRetryAfter(null, now), null);
});

Deno.test("rate limiter: a burst goes at once, then QPS spaces the rest", async () => {
  const limiter = new RateLimiter({ qps: 40, burst: 3 });
  const start = performance.now();
  const granted: number[] = [];
  const all = Promise.all(
    Array.from({ length: 7 }, () => limiter.take().then(() => granted.push(performance.now() - start))),
  );
  await Promise.resolve();
  assertEquals(granted.length, 3, "the burst goes before any timer");
  await all;
  // Four more tokens at 40 per second take at least 100 ms.
  assert(granted[6] >= 95, `the seventh call went after ${granted[6]} ms`);
  assertEquals(limiter.waiting, { jobs: 0, background: 0 });
  assertThrows(() => new RateLimiter({ qps: 0, burst: 1 }), Error, "Invalid QPS 0");
});

Deno.test("rate limiter: a job's call gets the next token before the background calls waiting longer", async () => {
  const limiter = new RateLimiter({ qps: 50, burst: 1 });
  await limiter.take();
  const order: string[] = [];
  const caches = ["list a", "watch a", "list b"].map((name) =>
    limiter.take({ background: true }).then(() => order.push(name))
  );
  assertEquals(limiter.waiting, { jobs: 0, background: 3 });
  const job = limiter.take().then(() => order.push("job"));
  assertEquals(limiter.waiting, { jobs: 1, background: 3 });
  await Promise.all([...caches, job]);
  assertEquals(order, ["job", "list a", "watch a", "list b"]);
});

Deno.test("rate limiter: a stopped wait leaves the queue and takes no token", async () => {
  const limiter = new RateLimiter({ qps: 20, burst: 1 });
  await limiter.take();
  const stop = new AbortController();
  const order: string[] = [];
  const stopped = limiter.take({ signal: stop.signal }).then(() => order.push("stopped"), () => order.push("aborted"));
  const next = limiter.take().then(() => order.push("next"));
  stop.abort(new Error("run over"));
  await stopped;
  assertEquals(limiter.waiting, { jobs: 1, background: 0 });
  await next;
  assertEquals(order, ["aborted", "next"]);
  await assertRejects(() => limiter.take({ signal: stop.signal }), Error, "run over");
  // With nobody waiting no timer is left behind (the test's sanitizer would fail).
  const alone = new AbortController();
  const lone = limiter.take({ signal: alone.signal }).catch(() => "aborted");
  alone.abort();
  assertEquals(await lone, "aborted");
});

Deno.test("cluster source: flags, then in-cluster, then $KUBECONFIG, then ~/.kube/config, else local", () => {
  const files = new Set([
    "/sa/token",
    "/k/a",
    "/home/u/.kube/config",
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
    "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
  ]);
  const exists = (p: string) => files.has(p);
  const inCluster = {
    KUBERNETES_SERVICE_HOST: "10.0.0.1",
    KUBERNETES_SERVICE_PORT: "443",
    KUBECONFIG: "/k/a",
    HOME: "/home/u",
  };
  assertEquals(chooseClusterSource({ local: true, kubeconfig: "/x", env: inCluster, exists }).kind, "local");
  assertEquals(chooseClusterSource({ kubeconfig: "/x", master: "https://m", env: inCluster, exists }), {
    kind: "kubeconfig",
    path: "/x",
    master: "https://m",
  });
  assertEquals(chooseClusterSource({ master: "https://m", env: inCluster, exists }), {
    kind: "master",
    master: "https://m",
  });
  assertEquals(chooseClusterSource({ env: inCluster, exists }), { kind: "in-cluster" });
  assertEquals(chooseClusterSource({ env: { KUBECONFIG: "/missing:/k/a", HOME: "/home/u" }, exists }), {
    kind: "kubeconfig",
    path: "/k/a",
  });
  assertEquals(chooseClusterSource({ env: { HOME: "/home/u" }, exists }), {
    kind: "kubeconfig",
    path: "/home/u/.kube/config",
  });
  assertEquals(chooseClusterSource({ env: { HOME: "/nowhere" }, exists }).kind, "local");
});

Deno.test("cluster source: in a pod without the service account token or CA, never local: an error naming the file", () => {
  const inPod = { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443", HOME: "/home/u" };
  const only = (...paths: string[]) => (p: string) => paths.includes(p) || p === "/home/u/.kube/config";
  const sa = "/var/run/secrets/kubernetes.io/serviceaccount";
  const cases: [(p: string) => boolean, Record<string, string>, string][] = [
    [only(), inPod, `missing ${sa}/token and ${sa}/ca.crt;`],
    [only(`${sa}/ca.crt`), inPod, `missing ${sa}/token;`],
    [only(`${sa}/token`), inPod, `missing ${sa}/ca.crt;`],
    [only(`${sa}/token`, `${sa}/ca.crt`), { KUBERNETES_SERVICE_HOST: "10.0.0.1" }, "missing $KUBERNETES_SERVICE_PORT;"],
  ];
  for (const [exists, env, missing] of cases) {
    let message = "";
    try {
      chooseClusterSource({ env, exists });
    } catch (error) {
      message = (error as Error).message;
    }
    assertEquals(
      message,
      `Cannot use the in-cluster service account (KUBERNETES_SERVICE_HOST is set): ${missing} set automountServiceAccountToken: true on the pod or its ServiceAccount, or give --kubeconfig, --master or --local`,
    );
  }
  assertEquals(chooseClusterSource({ env: inPod, exists: only(), local: true }).kind, "local");
});

const KUBECONFIG = `
apiVersion: v1
kind: Config
current-context: ctx
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: ${btoa("CA PEM")}
users:
- name: u
  user:
    token: abc
    client-certificate: certs/client.pem
contexts:
- name: ctx
  context: {cluster: c, user: u}
`;

Deno.test("kubeconfig: server, CA data, token, relative file paths", () => {
  const read: string[] = [];
  const connection = parseKubeconfig(KUBECONFIG, {
    path: "/etc/kube/config",
    readFile: (p) => {
      read.push(p);
      return "CLIENT PEM";
    },
  });
  assertEquals(connection.server, "https://127.0.0.1:6443");
  assertEquals(connection.caCert, "CA PEM");
  assertEquals(connection.token, "abc");
  assertEquals(connection.clientCert, "CLIENT PEM");
  assertEquals(read, ["/etc/kube/config/../certs/client.pem".replace("/config/..", "")]);
  assertEquals(
    parseKubeconfig(KUBECONFIG, { path: "/k", readFile: () => "", master: "https://other:1" }).server,
    "https://other:1",
  );
});

Deno.test("kubeconfig: refuses what it cannot honour, naming the file", () => {
  const exec = KUBECONFIG.replace("token: abc", "exec: {command: aws}");
  assertThrows(
    () => parseKubeconfig(exec, { path: "/k", readFile: () => "" }),
    Error,
    `Kubeconfig "/k" user "u" uses exec`,
  );
  assertThrows(
    () => parseKubeconfig("{{{", { path: "/k", readFile: () => "" }),
    Error,
    `Kubeconfig "/k" is not valid YAML`,
  );
  const noContext = KUBECONFIG.replace("current-context: ctx", "current-context: nope");
  assertThrows(
    () => parseKubeconfig(noContext, { path: "/k", readFile: () => "" }),
    Error,
    'has no current context "nope"',
  );
});
