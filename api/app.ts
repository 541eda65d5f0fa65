/** The HTTP API: health, readiness, metrics, and the original's `/api/v1` routes with its response envelope. */
import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { JobStatus } from "../controllers/scheduler.ts";
import { isIp } from "../core/addresses.ts";
import { type JobName, JOBS } from "../core/jobs.ts";
import type { Logger } from "../core/types.ts";
import type { KubeClient } from "../k8s/client.ts";
import { type CacheState, cacheTrouble } from "../k8s/config_map_cache.ts";
import type { ImageExportEndpoint } from "./image_export.ts";
import type { Metrics } from "./metrics.ts";

/** What the API reads; it never touches the host itself. */
export interface AppDeps {
  /** The jobs' state. */
  readonly jobs: {
    status(): JobStatus[];
    lastResult(name: string): unknown;
    notYetRun(): string[];
    trigger(name: string): "started" | "queued" | "stopping";
  };
  /** The cluster, or null in local mode. */
  readonly kube: KubeClient | null;
  /** Whether the cluster answered; null in local mode. */
  readonly clusterState: () => { reachable: boolean; reason: string } | null;
  /** Metrics to render and feed. */
  readonly metrics: Metrics;
  /** The API's logger. */
  readonly log: Logger;
  /** Starts the core-version fan-out to the other daemons (never waits). */
  readonly fanOut?: () => void;
  /** Extra data merged into `/api/v1/versions` (the fan-out's outcome). */
  readonly versionsExtra?: () => Record<string, unknown>;
  /** Checks a POST's caller; returns an HTTP status and message when refused. */
  readonly authorize?: (
    authorization: string | undefined,
  ) => Promise<{ status: 401 | 403 | 503; message: string } | null>;
  /** This node's name. */
  readonly node: string;
  /** The health of the cluster cache's informers (none without a cache). */
  readonly caches?: () => readonly CacheState[];
  /**
   * The watches a job holds itself (the floating-IP job's): in `/api/v1/status`, not in `/readyz`, because only that
   * job depends on them.
   */
  readonly jobCaches?: () => readonly CacheState[];
  /** The image export endpoint for the peers, mounted under `/api/v1` (it checks its callers itself). */
  readonly imageExport?: ImageExportEndpoint;
  /** Image replication: its transfers for `GET /api/v1/images`, and copies asked for by the POST. */
  readonly images?: {
    transfers(): { incoming: number; transfers: readonly unknown[] };
    request(request: { version: string }): void;
  };
}

type Env = { Variables: { requestId: string } };

const SHUTTING_DOWN = "The daemon is shutting down: no version check starts now";

/** The most a request body may hold. */
export const BODY_LIMIT = 1024 * 1024;

/** Routes and their methods, for JSON 405 answers and the route label of metrics. */
const ROUTES: Record<string, string[]> = {
  "/healthz": ["GET"],
  "/readyz": ["GET"],
  "/metrics": ["GET"],
  "/api/v1/TestConn": ["GET"],
  "/api/v1/status": ["GET"],
  "/api/v1/GetStandByIp": ["GET"],
  ...Object.fromEntries(Object.values(JOBS).map((job) => [`/api/v1${job.route}`, ["GET"]])),
  "/api/v1/RequestCheckCoreVersion": ["POST"],
  "/api/v1/InnerCheckCoreVersion": ["POST"],
  "/api/v1/ReplicateCoreVersion": ["POST"],
  "/api/v1/images/export": ["GET"],
};

const JOB_ROUTES: Record<string, JobName> = Object.fromEntries(Object.values(JOBS).map((job) => [job.route, job.name]));

/** The asking host of an InnerCheckCoreVersion body, or the reason the body is refused. */
function innerCheckHost(body: unknown): { host: string | undefined } | { error: string } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return { error: "expected a JSON object" };
  const host = (body as { HostName?: unknown }).HostName;
  if (host === undefined) return { host: undefined };
  if (typeof host !== "string") return { error: "HostName must be a string" };
  if (host.length > 253) return { error: "HostName is longer than 253 characters" };
  return { host };
}

/** The version of a ReplicateCoreVersion body, or the reason the body is refused. */
function replicateVersion(text: string): { version: string } | { error: string } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { error: "Request body is not valid JSON" };
  }
  const version = (body as { version?: unknown } | null)?.version;
  if (typeof version !== "string" || version.trim() === "") {
    return { error: 'Invalid request body: expected {"version": "<name>"}' };
  }
  if (version.length > 253) return { error: "Invalid request body: version is longer than 253 characters" };
  return { version: version.trim() };
}

/** The original's envelope for a success. */
function ok(c: Context<Env>, data: unknown) {
  return c.json({ code: "1", data, message: "", requestId: c.get("requestId") });
}

/** The original's envelope for an error: `code` is the HTTP status as a string. */
function fail(c: Context<Env>, status: number, message: string) {
  return failWith(c, status, { message, data: null });
}

/** The error envelope with data, e.g. what a failed job last did. */
function failWith(c: Context<Env>, status: number, body: { message: string; data: unknown }) {
  return c.json(
    { code: String(status), data: body.data, message: body.message, requestId: c.get("requestId") },
    status as 400,
  );
}

/** Builds the Hono app; tests call `app.request()` with no listener. */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();

  app.use(async (c, next) => {
    const given = c.req.header("x-request-id");
    const requestId = given && /^[\w.:-]{1,128}$/.test(given) ? given : crypto.randomUUID();
    c.set("requestId", requestId);
    const t0 = performance.now();
    await next();
    c.header("X-Request-Id", requestId);
    const route = ROUTES[c.req.path] ? c.req.path : "other";
    deps.metrics.httpRequest(route, c.req.method, c.res.status);
    const line = {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(performance.now() - t0),
      requestId,
    };
    if (c.req.path === "/healthz" || c.req.path === "/readyz" || c.req.path === "/metrics") {
      deps.log.debug("{method} {path} {status}", line);
    } else {
      deps.log.info("{method} {path} {status}", line);
    }
  });

  app.use(bodyLimit({
    maxSize: BODY_LIMIT,
    onError: (c) => fail(c as Context<Env>, 413, `Request body is larger than ${BODY_LIMIT} bytes`),
  }));

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", (c) => {
    const reasons: string[] = [];
    const cluster = deps.clusterState();
    if (cluster && !cluster.reachable) reasons.push(`cluster not reachable: ${cluster.reason}`);
    const waiting = deps.jobs.notYetRun();
    if (waiting.length > 0) reasons.push(`jobs that have not run yet: ${waiting.join(", ")}`);
    const caches = deps.caches?.() ?? [];
    // A cache that never listed is not ready; one that lost its watch serves its last objects: ready, and says so.
    for (const state of caches.filter((s) => !s.synced && s.lastError)) reasons.push(cacheTrouble(state)!);
    if (reasons.length > 0) return c.json({ status: "not ready", reason: reasons.join("; ") }, 503);
    const degraded = caches.filter((s) => s.synced).map(cacheTrouble).filter((line) => line !== null);
    return c.json({
      status: "ready",
      mode: cluster ? "cluster" : "local",
      ...(degraded.length > 0 ? { degraded } : {}),
    });
  });

  app.get("/metrics", async (c) => {
    c.header("Content-Type", deps.metrics.registry.contentType);
    return c.body(await deps.metrics.registry.metrics());
  });

  const v1 = new Hono<Env>();

  v1.get("/TestConn", (c) => ok(c, { message: "connected" }));

  v1.get("/status", (c) =>
    ok(c, {
      node: deps.node,
      mode: deps.kube ? "cluster" : "local",
      jobs: deps.jobs.status().map(({ lastResult: _omitted, ...job }) => job),
      caches: [...deps.caches?.() ?? [], ...deps.jobCaches?.() ?? []].map((state) => ({
        ...state,
        lastError: state.lastError && { message: state.lastError.message, at: state.lastError.at.toISOString() },
      })),
    }));

  // The last good result; when the latest run failed, also that run (`lastRun`, with its error). A job that has
  // only failed answers 500 with the error, one that has not finished a run yet 503.
  for (const [path, job] of Object.entries(JOB_ROUTES)) {
    if (job === JOBS.imageReplication.name) continue;
    v1.get(path, (c) => {
      const lastRun = deps.jobs.status().find((j) => j.name === job)?.lastRun ?? null;
      const result = deps.jobs.lastResult(job);
      const extra = job === JOBS.coreVersion.name ? deps.versionsExtra?.() ?? {} : {};
      const failed = lastRun?.outcome === "failure" ? { lastRun } : {};
      if (result !== null && result !== undefined) {
        return ok(c, { ...(result as Record<string, unknown>), ...extra, ...failed });
      }
      if (lastRun?.outcome === "failure") {
        return failWith(c, 500, { message: `Job "${job}" failed: ${lastRun.error}`, data: { ...extra, lastRun } });
      }
      return failWith(c, 503, {
        message: `Job "${job}" has not finished a run yet: try again shortly`,
        data: Object.keys(extra).length > 0 ? extra : null,
      });
    });
  }

  // Copies take minutes: the transfers as they stand, whether a run has finished or not, and the exports served now
  // (the count the peers rank this host by).
  v1.get(JOBS.imageReplication.route, (c) => {
    const lastRun = deps.jobs.status().find((j) => j.name === JOBS.imageReplication.name)?.lastRun ?? null;
    const result = deps.jobs.lastResult(JOBS.imageReplication.name) as Record<string, unknown> | null;
    return ok(c, {
      ...result,
      ...(deps.images?.transfers() ?? { incoming: 0, transfers: [] }),
      exportsInProgress: deps.imageExport?.active() ?? 0,
      lastRun,
    });
  });

  v1.get("/GetStandByIp", async (c) => {
    const podName = c.req.query("podName")?.trim();
    const namespace = c.req.query("namespace")?.trim() || "default";
    if (!podName) return fail(c, 400, "Missing query parameter podName");
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(podName)) {
      return fail(c, 400, `Invalid query parameter podName: "${podName.slice(0, 64)}" is not a pod name`);
    }
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
      return fail(c, 400, `Invalid query parameter namespace: "${namespace.slice(0, 64)}" is not a namespace name`);
    }
    if (!deps.kube) return fail(c, 503, "No cluster in local mode: GetStandByIp needs one");
    try {
      const pods = await deps.kube.listPods({ namespace, fieldSelector: `metadata.name=${podName}` });
      const nodeName = pods[0]?.spec?.nodeName;
      if (pods.length === 0) return fail(c, 404, `Pod "${namespace}/${podName}" not found`);
      if (!nodeName) return fail(c, 404, `Pod "${namespace}/${podName}" is not scheduled on a node yet`);
      const node = await deps.kube.getNode(nodeName);
      if (!node) return fail(c, 404, `Node "${nodeName}" of pod "${namespace}/${podName}" not found`);
      const condition = node.status?.conditions?.find((cond) => cond.type === "StandbyIP");
      if (!condition) return fail(c, 404, `Node "${nodeName}" has no StandbyIP condition`);
      // Only False is an error, as in the original: True and Unknown answer the IP.
      if (condition.status === "False") {
        return fail(c, 404, `Condition StandbyIP of Node "${nodeName}" is False`);
      }
      const ip = (condition.message ?? "").trim();
      if (!isIp(ip)) {
        return fail(c, 422, `Condition StandbyIP of Node "${nodeName}" holds "${ip.slice(0, 64)}", which is not an IP`);
      }
      return ok(c, ip);
    } catch (error) {
      return fail(c, 502, (error as Error).message);
    }
  });

  const guard = async (c: Context<Env>) => {
    if (!deps.authorize) return null;
    const refused = await deps.authorize(c.req.header("authorization"));
    return refused ? fail(c, refused.status, refused.message) : null;
  };

  v1.post("/RequestCheckCoreVersion", async (c) => {
    const refused = await guard(c);
    if (refused) return refused;
    if (deps.jobs.trigger(JOBS.coreVersion.name) === "stopping") return fail(c, 503, SHUTTING_DOWN);
    deps.fanOut?.();
    return ok(c, "done");
  });

  v1.post("/InnerCheckCoreVersion", async (c) => {
    const refused = await guard(c);
    if (refused) return refused;
    const text = await c.req.text();
    if (text.trim() !== "") {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return fail(c, 400, "Request body is not valid JSON");
      }
      const parsed = innerCheckHost(body);
      if ("error" in parsed) return fail(c, 400, `Invalid request body: ${parsed.error}`);
      deps.log.info("Core version check asked by {host}", { host: parsed.host ?? "unknown" });
    }
    if (deps.jobs.trigger(JOBS.coreVersion.name) === "stopping") return fail(c, 503, SHUTTING_DOWN);
    return ok(c, "OK");
  });

  v1.post("/ReplicateCoreVersion", async (c) => {
    const refused = await guard(c);
    if (refused) return refused;
    const parsed = replicateVersion(await c.req.text());
    if ("error" in parsed) return fail(c, 400, parsed.error);
    if (!deps.images) return fail(c, 503, "Image replication is not available in this process");
    deps.images.request(parsed);
    const run = deps.jobs.trigger(JOBS.imageReplication.name);
    if (run === "stopping") return fail(c, 503, "The daemon is shutting down: no copy starts now");
    deps.log.info("Copy of version {version} asked for: {run}", { version: parsed.version, run });
    return ok(c, { version: parsed.version, run });
  });

  if (deps.imageExport) v1.route("/", deps.imageExport.app);
  app.route("/api/v1", v1);

  app.notFound((c) => {
    const allowed = ROUTES[c.req.path];
    if (allowed && !allowed.includes(c.req.method) && !(c.req.method === "HEAD" && allowed.includes("GET"))) {
      c.header("Allow", allowed.join(", "));
      return fail(c, 405, `Method ${c.req.method} is not allowed on ${c.req.path}: use ${allowed.join(", ")}`);
    }
    return fail(c, 404, `No route ${c.req.method} ${c.req.path.slice(0, 200)}`);
  });

  app.onError((error, c) => {
    deps.log.error("Unhandled error on {path}: {error}", { path: c.req.path, error: error.message });
    return fail(c, 500, `Internal error: ${error.message}`);
  });

  return app;
}
