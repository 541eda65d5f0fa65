/** The TLS material of the fake Kubernetes API server: its test CA and a server certificate per listen address. */

const CERTS_DIR = `${import.meta.dirname}/certs`;
const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost", "0.0.0.0", "::"]);

const certificates = new Map<string, Promise<{ cert: string; key: string }>>();

/** The PEM of the CA that signs every certificate of the fake server. */
export function caCertificate(): Promise<string> {
  return Deno.readTextFile(`${CERTS_DIR}/ca.pem`);
}

/** The server certificate for a listen address: the pre-made loopback one, or one signed now (cached per process). */
export function certificateFor(hostname: string): Promise<{ cert: string; key: string }> {
  const host = LOOPBACK.has(hostname) ? "127.0.0.1" : hostname;
  let found = certificates.get(host);
  if (!found) {
    found = host === "127.0.0.1"
      ? Promise.all([
        Deno.readTextFile(`${CERTS_DIR}/server.pem`),
        Deno.readTextFile(`${CERTS_DIR}/server-key.pem`),
      ]).then(([cert, key]) => ({ cert, key }))
      : signCertificate(host);
    certificates.set(host, found);
  }
  return found;
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`Cannot run openssl ${args[0]}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

async function signCertificate(host: string): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "fake-kube-cert-" });
  try {
    const isIp = /^[0-9.]+$/.test(host) || host.includes(":");
    await Deno.writeTextFile(
      `${dir}/ext.cnf`,
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        `subjectAltName=${isIp ? "IP" : "DNS"}:${host}`,
      ].join("\n") + "\n",
    );
    await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${dir}/key.pem`]);
    await openssl(["req", "-new", "-key", `${dir}/key.pem`, "-subj", "/CN=fake-kube-apiserver", "-out", `${dir}/csr`]);
    const serial = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0"));
    await openssl([
      "x509",
      "-req",
      "-in",
      `${dir}/csr`,
      "-CA",
      `${CERTS_DIR}/ca.pem`,
      "-CAkey",
      `${CERTS_DIR}/ca-key.pem`,
      "-set_serial",
      `0x${serial.join("")}`,
      "-days",
      "3650",
      "-extfile",
      `${dir}/ext.cnf`,
      "-out",
      `${dir}/cert.pem`,
    ]);
    return { cert: await Deno.readTextFile(`${dir}/cert.pem`), key: await Deno.readTextFile(`${dir}/key.pem`) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
