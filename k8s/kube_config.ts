/** Where the cluster is: --kubeconfig / --master, in-cluster service account, $KUBECONFIG, ~/.kube/config. */
import { load as loadYaml } from "js-yaml";

/** How to reach and authenticate to the API server. */
export interface ClusterConnection {
  /** Base URL of the API server, e.g. `https://10.0.0.1:6443`. */
  readonly server: string;
  /** PEM of the CA that signed the server's certificate, when not a public one. */
  readonly caCert?: string;
  /** A fixed bearer token. */
  readonly token?: string;
  /** A file that holds the bearer token; re-read because projected tokens rotate. */
  readonly tokenFile?: string;
  /** PEM client certificate and key. */
  readonly clientCert?: string;
  /** PEM client key. */
  readonly clientKey?: string;
  /** Where this came from, for logs: `in-cluster`, `kubeconfig /path`, `--master`. */
  readonly source: string;
}

/** Which source to use, decided without I/O. */
export type ClusterSource =
  | { readonly kind: "kubeconfig"; readonly path: string; readonly master?: string }
  | { readonly kind: "master"; readonly master: string }
  | { readonly kind: "in-cluster" }
  | { readonly kind: "local"; readonly reason: string };

/** What the decision looks at. */
export interface ClusterSourceInput {
  /** `--kubeconfig`. */
  readonly kubeconfig?: string;
  /** `--master`. */
  readonly master?: string;
  /** `--local`. */
  readonly local?: boolean;
  /** The process environment. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Whether a file exists. */
  readonly exists: (path: string) => boolean;
}

/** The in-cluster service account folder. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Picks the cluster configuration source in the documented order; throws when in a pod without its credentials. */
export function chooseClusterSource(input: ClusterSourceInput): ClusterSource {
  if (input.local) return { kind: "local", reason: "--local was given" };
  if (input.kubeconfig) {
    return { kind: "kubeconfig", path: input.kubeconfig, master: input.master || undefined };
  }
  if (input.master) return { kind: "master", master: input.master };
  const env = input.env;
  if (env.KUBERNETES_SERVICE_HOST) {
    // In a pod: running in local mode would report Ready and publish nothing, so a missing credential is fatal.
    const missing = [`${SERVICE_ACCOUNT_DIR}/token`, `${SERVICE_ACCOUNT_DIR}/ca.crt`].filter((p) => !input.exists(p));
    if (!env.KUBERNETES_SERVICE_PORT) missing.unshift("$KUBERNETES_SERVICE_PORT");
    if (missing.length === 0) return { kind: "in-cluster" };
    throw new Error(
      `Cannot use the in-cluster service account (KUBERNETES_SERVICE_HOST is set): missing ${
        missing.join(" and ")
      }; set automountServiceAccountToken: true on the pod or its ServiceAccount, or give --kubeconfig, --master or --local`,
    );
  }
  const fromEnv = (env.KUBECONFIG ?? "").split(":").find((p) => p && input.exists(p));
  if (fromEnv) return { kind: "kubeconfig", path: fromEnv };
  if (env.HOME && input.exists(`${env.HOME}/.kube/config`)) {
    return { kind: "kubeconfig", path: `${env.HOME}/.kube/config` };
  }
  return {
    kind: "local",
    reason: "no --kubeconfig or --master, no in-cluster service account, no $KUBECONFIG or ~/.kube/config",
  };
}

interface NamedEntry<T> {
  name?: string;
  cluster?: T;
  user?: T;
  context?: T;
}

type Dict = Record<string, unknown>;

function pick<T>(list: unknown, name: string | undefined, field: "cluster" | "user" | "context"): T | undefined {
  if (!Array.isArray(list)) return undefined;
  const entry = (list as NamedEntry<T>[]).find((e) => e?.name === name);
  return entry?.[field];
}

function decodeBase64(value: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(value.replace(/\s+/g, "")), (c) => c.charCodeAt(0)));
}

/** Reads the connection from kubeconfig text; `dir` resolves relative file paths. Pure but for `readFile`. */
export function parseKubeconfig(
  text: string,
  options: { path: string; readFile: (path: string) => string; master?: string },
): ClusterConnection {
  const where = `Kubeconfig "${options.path}"`;
  let doc: Dict;
  try {
    doc = (loadYaml(text) ?? {}) as Dict;
  } catch (error) {
    throw new Error(`${where} is not valid YAML: ${(error as Error).message}`);
  }
  const contextName = doc["current-context"] as string | undefined;
  const context = pick<Dict>(doc.contexts, contextName, "context");
  if (!context && !options.master) {
    throw new Error(`${where} has no current context "${contextName ?? ""}": set current-context`);
  }
  const cluster = pick<Dict>(doc.clusters, context?.cluster as string, "cluster") ?? {};
  const user = pick<Dict>(doc.users, context?.user as string, "user") ?? {};
  if (user.exec || user["auth-provider"]) {
    throw new Error(
      `${where} user "${context?.user}" uses exec or auth-provider credentials, which polarstack-daemon does not support: use a token, a token file or a client certificate`,
    );
  }
  if (cluster["insecure-skip-tls-verify"]) {
    throw new Error(
      `${where} cluster "${context?.cluster}" sets insecure-skip-tls-verify, which polarstack-daemon refuses: give its CA`,
    );
  }
  const dir = options.path.includes("/") ? options.path.slice(0, options.path.lastIndexOf("/")) : ".";
  const resolve = (p: string) => (p.startsWith("/") ? p : `${dir}/${p}`);
  const dataOrFile = (data: unknown, file: unknown): string | undefined => {
    if (typeof data === "string" && data) return decodeBase64(data);
    if (typeof file === "string" && file) return options.readFile(resolve(file));
    return undefined;
  };
  const server = options.master || (cluster.server as string | undefined);
  if (!server) throw new Error(`${where} cluster "${context?.cluster}" has no server`);
  return {
    server: server.replace(/\/+$/, ""),
    caCert: dataOrFile(cluster["certificate-authority-data"], cluster["certificate-authority"]),
    token: typeof user.token === "string" ? user.token : undefined,
    tokenFile: typeof user.tokenFile === "string" ? resolve(user.tokenFile) : undefined,
    clientCert: dataOrFile(user["client-certificate-data"], user["client-certificate"]),
    clientKey: dataOrFile(user["client-key-data"], user["client-key"]),
    source: `kubeconfig ${options.path}`,
  };
}

/** Loads the connection for a chosen source (reads files); null for local mode. */
export function loadConnection(
  source: ClusterSource,
  env: Readonly<Record<string, string | undefined>>,
): ClusterConnection | null {
  switch (source.kind) {
    case "local":
      return null;
    case "master":
      return { server: source.master.replace(/\/+$/, ""), source: "--master" };
    case "in-cluster": {
      const host = env.KUBERNETES_SERVICE_HOST!;
      return {
        server: `https://${host.includes(":") ? `[${host}]` : host}:${env.KUBERNETES_SERVICE_PORT}`,
        caCert: Deno.readTextFileSync(`${SERVICE_ACCOUNT_DIR}/ca.crt`),
        tokenFile: `${SERVICE_ACCOUNT_DIR}/token`,
        source: "in-cluster",
      };
    }
    case "kubeconfig": {
      let text: string;
      try {
        text = Deno.readTextFileSync(source.path);
      } catch (error) {
        throw new Error(`Cannot read kubeconfig "${source.path}": ${(error as Error).message}`);
      }
      return parseKubeconfig(text, {
        path: source.path,
        master: source.master,
        readFile: (p) => Deno.readTextFileSync(p),
      });
    }
  }
}
