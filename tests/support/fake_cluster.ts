/** A fake cluster: the fake API server and the real client talking to it over HTTPS. */
import { createKubeClient, type KubeClient, type KubeClientOptions } from "../../k8s/client.ts";
import { type FakeKubeApiServer, type FakeKubeApiServerOptions, startFakeKubeApiServer } from "../fake_kube/server.ts";

/** Options of `startFakeCluster`: the fake server's, and the client's (user agent "test" unless given). */
export interface FakeClusterOptions extends FakeKubeApiServerOptions {
  /** Options of the client; `userAgent` defaults to "test". */
  readonly client?: Partial<KubeClientOptions>;
}

/** A running fake cluster. */
export interface FakeCluster {
  /** The fake API server: its store, requests, faults and tokens. */
  readonly server: FakeKubeApiServer;
  /** The real client, with the server's connection (CA and service-account token). */
  readonly kube: KubeClient;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Starts the fake API server and a real client on it. */
export async function startFakeCluster(options: FakeClusterOptions = {}): Promise<FakeCluster> {
  const { client, ...serverOptions } = options;
  const server = await startFakeKubeApiServer(serverOptions);
  const kube = createKubeClient(server.connection(), { userAgent: "test", ...client });
  return { server, kube, close: () => server.close() };
}
