/**
 * Helpers of the failure, hostile-data and soak tests: the daemon's flags for a temporary host, a tiny Docker
 * Engine API on a unix socket, a kubeconfig for an API server that does not listen yet, listeners in a port
 * range, and readers of the daemon's `/api/v1/status`.
 */
import type { JobStatus } from "../../controllers/scheduler.ts";

const CA = `${import.meta.dirname}/../fake_kube/certs/ca.pem`;

/** Temporary places of one daemon: its log root, its fake Docker socket. */
export interface DaemonHost {
  /** The temporary folder holding everything. */
  readonly dir: string;
  /** `--dbcluster-log-dir`. */
  readonly logRoot: string;
  /** The fake Docker socket path. */
  readonly dockerSocket: string;
  /** Stops the fake Docker API and removes the folder. */
  close(): Promise<void>;
}

/**
 * Makes a temporary host for one daemon with a fake Docker Engine API answering `/_ping` and `/images/json`
 * (so that core-version succeeds without dockerd) listing `images`.
 */
export async function createDaemonHost(options: { images?: string[] } = {}): Promise<DaemonHost> {
  const dir = await Deno.makeTempDir({ prefix: "psd-faults-" });
  const logRoot = `${dir}/logs`;
  await Deno.mkdir(logRoot);
  const dockerSocket = `${dir}/docker.sock`;
  const images = options.images ?? ["busybox:latest"];
  const docker = Deno.serve({ path: dockerSocket, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/_ping") return new Response("OK", { headers: { "API-Version": "1.43" } });
    if (/^\/v[\d.]+\/images\/json$/.test(path)) {
      return Response.json(images.map((tag, i) => ({ Id: `sha256:${String(i).padStart(64, "0")}`, RepoTags: [tag] })));
    }
    return Response.json({ message: `page not found: ${path}` }, { status: 404 });
  });
  return {
    dir,
    logRoot,
    dockerSocket,
    async close() {
      await docker.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** The daemon's flags for a temporary host (no real log folder, no real Docker, `lo` as the client NIC). */
export function hostArgs(host: DaemonHost, options: { nic?: string | null } = {}): string[] {
  const args = [
    "--dbcluster-log-dir",
    host.logRoot,
    "--docker-host",
    `unix://${host.dockerSocket}`,
    "--image-store",
    "docker",
    "--net-probe-interval",
    "500ms",
    "--node-status-report-frequency",
    "2s",
  ];
  const nic = options.nic === undefined ? "lo" : options.nic;
  return nic === null ? args : [...args, "--net-card-name", nic];
}

/** Writes a kubeconfig for `https://127.0.0.1:<port>` (the fake server's CA) with `token`; returns its path. */
export async function writeKubeconfig(dir: string, options: { port: number; token: string }): Promise<string> {
  const ca = await Deno.readTextFile(CA);
  const path = `${dir}/kubeconfig`;
  await Deno.writeTextFile(
    path,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: fake",
      "  cluster:",
      `    server: https://127.0.0.1:${options.port}`,
      `    certificate-authority-data: ${btoa(ca)}`,
      "users:",
      "- name: fake",
      "  user:",
      `    token: ${JSON.stringify(options.token)}`,
      "contexts:",
      "- name: fake",
      "  context: {cluster: fake, user: fake, namespace: kube-system}",
      "current-context: fake",
      "",
    ].join("\n"),
  );
  return path;
}

/** Every job's state from the daemon's `/api/v1/status`, by name. */
export async function jobStatus(url: string): Promise<Record<string, JobStatus>> {
  const response = await fetch(`${url}/api/v1/status`);
  const body = await response.json();
  return Object.fromEntries((body.data.jobs as JobStatus[]).map((job) => [job.name, job]));
}

/** `/readyz` as status and body. */
export async function readiness(url: string): Promise<{ status: number; body: Record<string, string> }> {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: await response.json() };
}

/** A Node object with no conditions. */
export function nodeObject(name: string): Record<string, unknown> {
  return { apiVersion: "v1", kind: "Node", metadata: { name }, status: { conditions: [] } };
}

/** The labels of the engine version ConfigMaps the daemon reads (`--core-version-cm-labels` default). */
export const VERSION_LABELS = { configtype: "minor_version_info", dbClusterMode: "WriteReadMore" };

/** A ConfigMap of kube-system. */
export function configMapObject(
  name: string,
  options: { data?: Record<string, string>; annotations?: Record<string, string>; labels?: Record<string, string> },
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: "kube-system", annotations: options.annotations, labels: options.labels },
    data: options.data ?? {},
  };
}

/** Listening sockets on 127.0.0.1 inside one port range, so that the port-usage job has something to find. */
export interface PortRangeListeners {
  /** The range `[start, end]`. */
  readonly range: readonly [number, number];
  /** Opens one more listener on a free port of the range; returns its port. */
  open(): number;
  /**
   * A port of the range that no TCP socket of this network namespace uses in any state (`ss`, when checked), and
   * that `open()` will never pick.
   */
  freePortInRange(): number;
  /** Closes every listener. */
  close(): void;
}

/**
 * Picks a random 200-port range in 20000..32599 and opens listeners there on demand. The range stays below the
 * kernel's default ephemeral range (32768-60999): an outgoing connection's local port counts as used, so a port there
 * that nothing of ours listens on could be taken at any moment.
 */
export function portRangeListeners(): PortRangeListeners {
  const start = 20000 + Math.floor(Math.random() * 63) * 200;
  const range = [start, start + 199] as const;
  const listeners: Deno.Listener[] = [];
  const keptFree = new Set<number>();
  const tryPorts = (use: (port: number) => boolean): number => {
    for (let i = 0; i < 400; i++) {
      const port = range[0] + Math.floor(Math.random() * 200);
      if (!keptFree.has(port) && use(port)) return port;
    }
    throw new Error(`No free port in ${range[0]}-${range[1]}`);
  };
  return {
    range,
    open: () =>
      tryPorts((port) => {
        try {
          listeners.push(Deno.listen({ hostname: "127.0.0.1", port }));
          return true;
        } catch {
          return false;
        }
      }),
    freePortInRange: () => {
      // A listen succeeds beside a TIME_WAIT socket (SO_REUSEADDR), which the daemon counts as used: ask ss.
      const used = tcpLocalPorts();
      const port = tryPorts((port) => !used.has(port));
      keptFree.add(port);
      return port;
    },
    close: () => listeners.forEach((l) => l.close()),
  };
}

/** The local port of every TCP socket of this network namespace, in any state, as `ss` lists them. */
function tcpLocalPorts(): Set<number> {
  const output = new Deno.Command("ss", { args: ["-Htan"], stdout: "piped", stderr: "piped" }).outputSync();
  if (!output.success) throw new Error(`Cannot list TCP sockets with ss: ${new TextDecoder().decode(output.stderr)}`);
  const ports = new Set<number>();
  for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
    // State, Recv-Q, Send-Q, local address:port, peer address:port
    const local = line.trim().split(/\s+/)[3];
    if (local) ports.add(Number(local.slice(local.lastIndexOf(":") + 1)));
  }
  return ports;
}

/** The daemon's JSON log lines on stderr, parsed (lines that are not JSON are left out). */
export function logLines(stderr: string): Array<Record<string, unknown> & { message: string; level: string }> {
  const lines = [];
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      lines.push(JSON.parse(line));
    } catch {
      // a line cut by the read in progress
    }
  }
  return lines;
}

/** Reason+message pairs that more than one Event object carries (an Event repeated must raise `count` instead). */
export function duplicateEvents(events: Array<{ reason?: string; message?: string }>): string[] {
  const seen = new Map<string, number>();
  for (const event of events) {
    const key = `${event.reason}: ${event.message}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  return [...seen].filter(([, n]) => n > 1).map(([key, n]) => `${n} x ${key}`);
}

/** Resident memory (kB) and open file descriptors of a process, from /proc. */
export async function processFootprint(pid: number): Promise<{ rssKb: number; fds: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rssKb = Number(status.match(/^VmRSS:\s+(\d+)\s+kB/m)?.[1] ?? NaN);
  let fds = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) fds++;
  return { rssKb, fds };
}
