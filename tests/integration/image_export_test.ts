/**
 * The export endpoint with `app.request()` against a real dockerd and the fake API server: 401 without a token
 * bound to the daemon's audience, 403 for an image of no version, the stream loads into a second dockerd with the
 * advertised ID, and beyond the concurrency limit 429 with Retry-After.
 */
import { Hono } from "hono";
import { getLogger } from "@logtape/logtape";
import { assert, assertEquals } from "../support/assert.ts";
import { createTokenReviewAuthorizer } from "../../api/auth.ts";
import { createImageExport } from "../../api/image_export.ts";
import { parseVersionConfigMap } from "../../controllers/core_version/versions.ts";
import { systemClock } from "../../core/types.ts";
import { createDockerApiClient } from "../../host/docker_api.ts";
import { dockerImageInfo, exportDockerImage, loadDockerImage } from "../../host/image_stream.ts";
import { startFakeCluster } from "../support/fake_cluster.ts";
import { hasDockerd, startDockerDaemon } from "../support/docker_daemon.ts";
import { importLargeImage } from "../support/large_image.ts";
import { isRoot, skipUnless } from "../support/prereq.ts";

const LABELS = "configtype=minor_version_info,dbClusterMode=WriteReadMore";
const ENGINE = "registry.local:5000/polardb/engine:1.0";
const PFSD_ABSENT = "registry.local:5000/polardb/pfsd:1.0";
const SECRET = "polardb/secret:1";

const versionConfigMap = {
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: {
    name: "postgresql-1-0-minor-version-info-rwo-image-open",
    namespace: "kube-system",
    labels: { configtype: "minor_version_info", dbClusterMode: "WriteReadMore", dbType: "PostgreSQL" },
  },
  data: { name: "image-open", pgEngineImage: ENGINE, pfsdImage: PFSD_ABSENT },
};

Deno.test({
  name: "export endpoint: token, version ConfigMaps, a stream another dockerd loads, and the concurrency limit",
  ignore: skipUnless(isRoot() && hasDockerd(), "needs root and dockerd (Debian package docker.io)"),
  async fn(t) {
    const cluster = await startFakeCluster({ seed: [versionConfigMap] });
    const [a, b] = await Promise.all([startDockerDaemon(), startDockerDaemon()]);
    const clientA = createDockerApiClient(a.host);
    const clientB = createDockerApiClient(b.host);
    try {
      const id = await importLargeImage(a.socketPath, ENGINE, { bytes: 4 * 1024 * 1024, seed: 3 });
      await importLargeImage(a.socketPath, SECRET, { bytes: 1024 * 1024, seed: 4 });
      const endpoint = createImageExport({
        authorize: createTokenReviewAuthorizer({
          kube: cluster.kube,
          allowedUsers: ["system:serviceaccount:kube-system:polarstack-daemon"],
          clock: systemClock,
        }),
        versionImages: async () =>
          (await cluster.kube.listConfigMaps(LABELS)).flatMap((cm) => {
            const parsed = parseVersionConfigMap(cm);
            return parsed.kind === "version" ? parsed.version.images : [];
          }),
        exportImage: async (ref, { signal }) =>
          (await dockerImageInfo(clientA, ref)) ? await exportDockerImage(clientA, ref, { signal }) : null,
        concurrency: 1,
        retryAfterSeconds: 7,
        log: getLogger(["test"]),
      });
      const app = new Hono().route("/api/v1", endpoint.app);
      const peer = { Authorization: `Bearer ${cluster.server.peerToken}` };
      const get = (ref: string | null, headers: Record<string, string> = peer) =>
        app.request(`/api/v1/images/export${ref === null ? "" : `?ref=${encodeURIComponent(ref)}`}`, { headers });

      await t.step("401 without a token, and with the token that opens the API server", async () => {
        const refused: Record<string, string>[] = [{}, { Authorization: `Bearer ${cluster.server.token}` }];
        for (const headers of refused) {
          const res = await get(ENGINE, headers);
          assertEquals(res.status, 401);
          assertEquals((await res.json()).code, "401");
        }
        assertEquals(endpoint.active(), 0);
      });

      await t.step("403 for an image that is in the store but in no version ConfigMap", async () => {
        const res = await get(SECRET);
        assertEquals(res.status, 403);
        assertEquals((await res.json()).message, `Image ${SECRET} may not be exported: it is in no version ConfigMap`);
        assertEquals((await get(id)).status, 403, "an ID that no version lists is refused too");
        assertEquals((await get(null)).status, 400);
      });

      await t.step("404 for a version's image this host does not have", async () => {
        assertEquals((await get(PFSD_ABSENT)).status, 404);
        assertEquals(endpoint.active(), 0);
      });

      await t.step("the stream carries X-Image-Id and loads into another dockerd with that ID", async () => {
        const res = await get(ENGINE);
        assertEquals(res.status, 200);
        assertEquals(res.headers.get("X-Image-Id"), id);
        assert(Number(res.headers.get("X-Image-Size")) >= 4 * 1024 * 1024);
        assertEquals(endpoint.active(), 1);
        assertEquals(await loadDockerImage(clientB, res.body!), [ENGINE]);
        assertEquals((await dockerImageInfo(clientB, ENGINE))?.id, id);
        assertEquals(endpoint.active(), 0);
      });

      await t.step("beyond the limit 429 with Retry-After; a receiver that hangs up frees its slot", async () => {
        const first = await get(ENGINE);
        assertEquals(first.status, 200);
        const second = await get(ENGINE);
        assertEquals(second.status, 429);
        assertEquals(second.headers.get("Retry-After"), "7");
        // The receiver reads a little, then goes away.
        const reader = first.body!.getReader();
        assert(!(await reader.read()).done);
        await reader.cancel();
        assertEquals(endpoint.active(), 0);
        const third = await get(ENGINE);
        assertEquals(third.status, 200);
        await third.body!.cancel();
        assertEquals(endpoint.active(), 0);
      });
    } finally {
      clientA.close();
      clientB.close();
      await Promise.all([a.stop(), b.stop(), cluster.close()]);
    }
  },
});
