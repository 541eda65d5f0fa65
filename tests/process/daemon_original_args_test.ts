/**
 * A drop-in for the original: the daemon runs with exactly the argument list of the original's DaemonSet (plus
 * `--kubeconfig`) and every job works. It runs as a process in a network namespace (its default port 8900 and the
 * fake API server there) and in a mount namespace of its own where /disk1, /kube-log and /run are empty tmpfs, so
 * the original's paths (/disk1/polardb/, /kube-log, /var/run/docker.sock) are real paths and the host's stay
 * untouched. The test reads the outcome from the cluster: the port-usage and version ConfigMaps, the Node's
 * conditions, and the log root after the cleanup.
 */
import { assert, assertEquals, assertMatch, fail } from "../support/assert.ts";
import { INSTANCE_LABEL } from "../../controllers/log_cleanup/plan.ts";
import { stopChild } from "../support/child.ts";
import { daemonCommand, waitFor } from "../support/daemon_process.ts";
import { fakeKubeApiServerCommand, seededServerFlags } from "../fake_kube/server.ts";
import { configMapObject, nodeObject, VERSION_LABELS } from "../support/faults_cluster.ts";
import { canMakeNetns, createNetns, type NsProcess, run, startIn } from "../support/netns.ts";
import { hasCommand, skipUnless } from "../support/prereq.ts";

/** The original DaemonSet's arguments, as its Helm chart passes them. */
const ORIGINAL_ARGS = [
  "--v=5",
  "--logtostderr=false",
  "--log-dir=/kube-log",
  "--log-file=/kube-log/polardb-net.log",
  "--log-flush-frequency=2s",
  "--stderrthreshold=1",
  "--dbcluster-log-dir=/disk1/polardb/",
  "--ins-folder-overdue-days=7",
  "--events-enable-upload=true",
  "--events-upload-url=http://rds-redline-worker-log-api.rds:8080/",
  "--events-upload-timeout=3",
  "--job-enable-del-fip=true",
  "--job-enable-add-fip=true",
  "--polarstack-daemon-pod-labels=app=polarstack-daemon",
  "--core-version-cm-labels=configtype=minor_version_info,dbClusterMode=WriteReadMore",
  "--mpd-controller-cm-name=polardb4mpd-controller",
  "--service-owner-db-cluster=mpdcluster",
];

const ROOT = new URL("../../", import.meta.url).pathname;
const CA = `${ROOT}tests/fake_kube/certs/ca.pem`;
const NODE = "node-original";
const TOKEN = `original-${crypto.randomUUID()}`;
const DAY = 86_400_000;

const seed = [
  nodeObject(NODE),
  configMapObject("ccm-config", { data: { NET_CARD_NAME: "lo", NET_MASK: "255.0.0.0" } }),
  configMapObject("controller-config", { data: { isCheckOObIP: "true", enableVip: "false", sshUser: "root" } }),
  configMapObject("polardb4mpd-controller", {
    annotations: { "polarbox.mpd.engine.port.range": "8000-9000", "polarbox.mpd.reserved.port.ranges": "" },
  }),
  configMapObject("postgresql-1-0-minor-version-info-rwo-image-open", {
    labels: { ...VERSION_LABELS, dbType: "PostgreSQL", dbVersion: "1.0" },
    data: { name: "image-open", pgEngineImage: "busybox:latest", pfsdImage: "busybox" },
  }),
  {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "db-active", namespace: "default", labels: { [INSTANCE_LABEL]: "active-ins" } },
    spec: { nodeName: NODE, containers: [{ name: "c", image: "x" }] },
  },
];

/** Makes an empty folder at `path` on the host when there is none (a mount point); returns whether it did. */
async function mountPoint(path: string): Promise<boolean> {
  try {
    await Deno.mkdir(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  }
}

async function must(argv: string[]): Promise<void> {
  const r = await run(argv);
  assert(r.code === 0, `${argv.join(" ")}: ${r.stderr.trim()}`);
}

async function writeOld(path: string, ageDays: number): Promise<void> {
  await Deno.writeTextFile(path, "log\n");
  const when = new Date(Date.now() - ageDays * DAY);
  await Deno.utime(path, when, when);
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "the original's exact arguments (plus --kubeconfig): port usage, versions, node conditions and log cleanup work",
  ignore: skipUnless(
    canMakeNetns() && ["unshare", "nsenter", "mount", "curl", "sleep"].every(hasCommand),
    "needs root, iproute2 (ip), util-linux (unshare, nsenter, mount) and curl",
  ),
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "psd-original-" });
    const made = [await mountPoint("/disk1"), await mountPoint("/kube-log")];
    const ns = await createNetns();
    const holder = new Deno.Command("unshare", { args: ["-m", "--propagation", "private", "sleep", "600"] }).spawn();
    let fake: NsProcess | null = null;
    let daemon: Deno.ChildProcess | null = null;
    let docker: Deno.HttpServer | null = null;
    let stderr = "";
    try {
      const own = Deno.readLinkSync("/proc/self/ns/mnt");
      await waitFor(() => Deno.readLinkSync(`/proc/${holder.pid}/ns/mnt`) !== own, { what: "unshare -m" });
      const inside = (argv: string[]) => ["nsenter", "-t", String(holder.pid), "-m", "--", ...argv];
      for (const path of ["/disk1", "/kube-log", "/run"]) await must(inside(["mount", "-t", "tmpfs", "tmpfs", path]));
      // The host as the daemon sees it, reached from here through the holder's root.
      const view = `/proc/${holder.pid}/root`;
      const logRoot = `${view}/disk1/polardb`;
      await Deno.mkdir(`${logRoot}/active-ins`, { recursive: true });
      await Deno.mkdir(`${logRoot}/gone-ins`);
      await writeOld(`${logRoot}/active-ins/postgresql-10d.log`, 10);
      await writeOld(`${logRoot}/active-ins/postgresql-5d.log`, 5);
      await writeOld(`${logRoot}/gone-ins/postgresql-9d.log`, 9);
      // The Docker Engine API at the original's default socket, /var/run/docker.sock (= /run/docker.sock).
      docker = Deno.serve({ path: `${view}/run/docker.sock`, onListen: () => {} }, (request) => {
        const path = new URL(request.url).pathname;
        if (path === "/_ping") return new Response("OK", { headers: { "API-Version": "1.43" } });
        if (/^\/v[\d.]+\/images\/json$/.test(path)) {
          return Response.json([{ Id: `sha256:${"1".repeat(64)}`, RepoTags: ["busybox:latest"] }]);
        }
        return Response.json({ message: `page not found: ${path}` }, { status: 404 });
      });

      await Deno.writeTextFile(`${dir}/seed.json`, JSON.stringify(seed));
      const started = await startIn(
        ns,
        fakeKubeApiServerCommand(seededServerFlags(dir, { token: TOKEN })),
        { cwd: ROOT, ready: /listening on (https:\/\/\S+)/ },
      );
      fake = started.process;
      const url = started.match![1];
      const get = async (path: string) => {
        const r = await ns.exec([
          "curl",
          "-sS",
          "--fail",
          "--cacert",
          CA,
          "-H",
          `Authorization: Bearer ${TOKEN}`,
          `${url}${path}`,
        ]);
        return r.code === 0 ? JSON.parse(r.stdout) : null;
      };

      // One nsenter for both: it opens the network namespace's file before it enters the mount namespace.
      const argv = [
        "nsenter",
        "-t",
        String(holder.pid),
        "-m",
        `--net=/run/netns/${ns.name}`,
        "--",
        ...daemonCommand([]),
      ];
      daemon = new Deno.Command(argv[0], {
        args: [...argv.slice(1), ...ORIGINAL_ARGS, "--kubeconfig", `${dir}/kubeconfig`],
        cwd: ROOT,
        env: { NO_COLOR: "1", CURRENT_NODE_NAME: NODE },
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const reading = (async () => {
        const decoder = new TextDecoder();
        for await (const chunk of daemon!.stderr) {
          stderr = (stderr + decoder.decode(chunk, { stream: true })).slice(-20_000);
        }
      })();
      const diag = () => `daemon stderr (last part):\n${stderr.slice(-3000)}`;
      const wait = <T>(fn: () => Promise<T>, what: string) =>
        waitFor(fn, { what, timeoutMs: 45_000 }).catch((e) => fail(`${e.message}\n${diag()}`));

      const ports = await wait(
        () => get(`/_fake/objects/configmaps/kube-system/cloud-provider-port-usage-${NODE}`),
        "port usage",
      );
      assertEquals(ports.data["8900"], "the port already use", "its own listener on the original's port 8900");
      assertMatch(ports.metadata.annotations.updateTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

      const versions = await wait(
        () => get(`/_fake/objects/configmaps/kube-system/polarstack-daemon-version-availability-${NODE}`),
        "version availability",
      );
      assertEquals(versions.data.existingVersions, "image-open");

      const conditions = await wait(async () => {
        const node = await get(`/_fake/objects/nodes/${NODE}`);
        const byType = Object.fromEntries((node?.status?.conditions ?? []).map((c: { type: string }) => [c.type, c]));
        return byType.NodeClientIP && byType.NodeRefreshFlag ? byType : null;
      }, "node conditions");
      assertEquals(
        [conditions.NodeClientIP.status, conditions.NodeClientIP.reason, conditions.NodeClientIP.message],
        ["True", "lo", "127.0.0.1"],
      );
      assertEquals([conditions.NodeClientNetworkUnavailable.status, conditions.NodeRefreshFlag.status], [
        "False",
        "True",
      ]);

      await wait(() => Promise.resolve(!exists(`${logRoot}/gone-ins`)), "the cleanup of /disk1/polardb/");
      assertEquals(exists(`${logRoot}/active-ins/postgresql-10d.log`), false, "older than 7 days: removed");
      assertEquals(exists(`${logRoot}/active-ins/postgresql-5d.log`), true, "5 days: kept, the age is 7 days not 3");
      assert(Deno.statSync(`${view}/kube-log/polardb-net.log`).isFile, "the log file in /kube-log");

      const status = await stopChild(daemon, { killAfterMs: 40_000 });
      daemon = null;
      await reading;
      assertEquals(status.code, 0, diag());
    } finally {
      if (daemon) await stopChild(daemon, { killAfterMs: 5000 });
      await docker?.shutdown();
      await fake?.stop();
      await stopChild(holder, { killAfterMs: 2000 });
      await ns.remove();
      if (made[0]) await Deno.remove("/disk1");
      if (made[1]) await Deno.remove("/kube-log");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
