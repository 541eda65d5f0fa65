/** Parsing an HTTP/1.1 request head: the request line, the header fields and what they say about framing. */

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HOST = /^[\w.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/** A parsed request head. */
export interface RequestHead {
  /** Method, e.g. `GET`. */
  readonly method: string;
  /** The request target, e.g. `/healthz?x=1`. */
  readonly target: string;
  /** `1.0` or `1.1`. */
  readonly version: "1.0" | "1.1";
  /** Header fields in order, names lower-cased. */
  readonly headers: [string, string][];
}

/** Why a request head was refused: the status to answer and a message. */
export class HeadError extends Error {
  /** The HTTP status to answer. */
  readonly status: number;
  /** Builds the error with its status. */
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Parses a request head (without its final empty line); throws {@linkcode HeadError}. */
export function parseHead(text: string): RequestHead {
  const lines = text.split("\r\n");
  const parts = lines[0].split(" ");
  if (parts.length !== 3 || !TOKEN.test(parts[0]) || parts[1] === "") {
    throw new HeadError(400, "Malformed request line");
  }
  const [method, target, protocol] = parts;
  if (!/^HTTP\/\d\.\d$/.test(protocol)) throw new HeadError(400, "Malformed request line");
  if (protocol !== "HTTP/1.1" && protocol !== "HTTP/1.0") throw new HeadError(505, `Unsupported protocol ${protocol}`);
  if (!target.startsWith("/") && !/^https?:\/\//i.test(target) && !(target === "*" && method === "OPTIONS")) {
    throw new HeadError(400, "Malformed request target");
  }
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    // A name with white space or folded lines is how requests are smuggled past proxies: refused, as RFC 9112 asks.
    if (colon <= 0 || !TOKEN.test(name)) throw new HeadError(400, "Malformed header field");
    const value = line.slice(colon + 1).trim();
    if (/[\0\r\n]/.test(value)) throw new HeadError(400, `Malformed value of header ${name}`);
    headers.push([name.toLowerCase(), value]);
  }
  return { method, target, version: protocol === "HTTP/1.1" ? "1.1" : "1.0", headers };
}

/** The body length a head announces: a byte count, or an error for what this server does not take. */
export function bodyLength(head: RequestHead): number {
  const lengths = new Set(head.headers.filter(([n]) => n === "content-length").map(([, v]) => v));
  if (head.headers.some(([n]) => n === "transfer-encoding")) {
    if (lengths.size > 0) throw new HeadError(400, "Both Transfer-Encoding and Content-Length");
    throw new HeadError(411, "Chunked request bodies are not accepted: send Content-Length");
  }
  if (lengths.size === 0) return 0;
  const [value] = lengths;
  if (lengths.size > 1 || !/^\d{1,15}$/.test(value)) throw new HeadError(400, "Invalid Content-Length");
  return Number(value);
}

/** The value of the first header field named `name` (lower case). */
export function header(head: RequestHead, name: string): string | undefined {
  return head.headers.find(([n]) => n === name)?.[1];
}

/** Whether the connection stays open after this request's response. */
export function keepsAlive(head: RequestHead): boolean {
  const connection = (header(head, "connection") ?? "").toLowerCase().split(",").map((s) => s.trim());
  if (head.version === "1.0") return connection.includes("keep-alive");
  return !connection.includes("close");
}

/** The request's absolute URL: an absolute target as sent, else the Host header's authority (or `origin`) and the path. */
export function requestUrl(head: RequestHead, origin: string): string {
  const host = header(head, "host");
  return /^https?:\/\//i.test(head.target)
    ? head.target
    : `http://${host && HOST.test(host) ? host : origin}${head.target === "*" ? "/" : head.target}`;
}
