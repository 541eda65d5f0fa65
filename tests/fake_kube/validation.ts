/** The validation the real API server does on the objects the fake one stores, as pure functions. */

/** One validation failure, as in a Status object's `details.causes`. */
export interface FieldCause {
  /** `FieldValueInvalid`, `FieldValueRequired` or `FieldValueTooLong`. */
  readonly reason: string;
  /** What is wrong, e.g. `Invalid value: "a b": a valid config key must ...`. */
  readonly message: string;
  /** The field path, e.g. `data[a b]`. */
  readonly field: string;
}

/** The most bytes of `data` plus `binaryData` (keys included) a ConfigMap may hold. */
export const MAX_CONFIG_MAP_BYTES = 1048576;

const DNS_SUBDOMAIN = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS_SUBDOMAIN_RE = new RegExp(`^${DNS_SUBDOMAIN}$`);
const CONFIG_KEY_RE = /^[-._a-zA-Z0-9]+$/;

function invalid(field: string, value: string, detail: string): FieldCause {
  return { reason: "FieldValueInvalid", message: `Invalid value: ${JSON.stringify(value)}: ${detail}`, field };
}

/** Why a name is not a DNS-1123 subdomain (empty when it is one). */
export function dnsSubdomainErrors(value: string): string[] {
  const errors: string[] = [];
  if (value.length > 253) errors.push("must be no more than 253 characters");
  if (!DNS_SUBDOMAIN_RE.test(value)) {
    errors.push(
      `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '${DNS_SUBDOMAIN}')`,
    );
  }
  return errors;
}

/** Why a ConfigMap key is not valid (empty when it is). */
export function configMapKeyErrors(key: string): string[] {
  const errors: string[] = [];
  if (key.length > 253) errors.push("must be no more than 253 characters");
  if (!CONFIG_KEY_RE.test(key)) {
    errors.push(
      "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
    );
  }
  if (key === ".") errors.push("must not be '.'");
  else if (key === "..") errors.push("must not be '..'");
  else if (key.startsWith("..")) errors.push("must not start with '..'");
  return errors;
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

function base64Length(value: string): number | null {
  try {
    return atob(value).length;
  } catch {
    return null;
  }
}

// deno-lint-ignore no-explicit-any
type Obj = any;

/** What is wrong with an object of `kind` before it is stored (empty when it is valid). */
export function validateObject(kind: string, object: Obj): FieldCause[] {
  const causes: FieldCause[] = [];
  const name: string = object?.metadata?.name ?? "";
  if (name === "") {
    causes.push({
      reason: "FieldValueRequired",
      message: "Required value: name or generateName is required",
      field: "metadata.name",
    });
  } else {
    for (const detail of dnsSubdomainErrors(name)) causes.push(invalid("metadata.name", name, detail));
  }
  if (kind === "ConfigMap") causes.push(...configMapCauses(object));
  if (kind === "Event") causes.push(...eventCauses(object));
  if (kind === "Lease") causes.push(...leaseCauses(object));
  return causes;
}

function leaseCauses(object: Obj): FieldCause[] {
  const causes: FieldCause[] = [];
  const duration = object.spec?.leaseDurationSeconds;
  if (typeof duration === "number" && duration <= 0) {
    causes.push(invalidNumber("spec.leaseDurationSeconds", duration, "must be greater than 0"));
  }
  const transitions = object.spec?.leaseTransitions;
  if (typeof transitions === "number" && transitions < 0) {
    causes.push(invalidNumber("spec.leaseTransitions", transitions, "must be greater than or equal to 0"));
  }
  return causes;
}

function invalidNumber(field: string, value: number, detail: string): FieldCause {
  return { reason: "FieldValueInvalid", message: `Invalid value: ${value}: ${detail}`, field };
}

const MICRO_TIME_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

/** A MicroTime as the real server stores it: UTC, six fractional digits; null when `value` is no RFC 3339 time. */
export function microTime(value: string): string | null {
  const match = value.match(MICRO_TIME_RE);
  const seconds = match ? Date.parse(`${match[1]}${match[3]}`) : NaN;
  if (!match || Number.isNaN(seconds)) return null;
  const micros = (match[2] ?? "").padEnd(6, "0").slice(0, 6);
  return new Date(seconds).toISOString().replace(/\.\d+Z$/, `.${micros}Z`);
}

/**
 * Decodes an incoming object as the real server's typed decoder would: returns the 400 message when a field has
 * the wrong type (null when it decodes), and rewrites MicroTime fields to their stored form.
 */
export function decodeObject(kind: string, object: Obj): string | null {
  if (kind !== "Lease" || object.spec === undefined || object.spec === null) return null;
  const spec = object.spec;
  const fail = (detail: string) => `Lease in version "v1" cannot be handled as a Lease: ${detail}`;
  if (typeof spec !== "object" || Array.isArray(spec)) return fail("spec must be an object");
  for (const field of ["holderIdentity", "preferredHolder", "strategy"]) {
    if (spec[field] !== undefined && spec[field] !== null && typeof spec[field] !== "string") {
      return fail(
        `json: cannot unmarshal ${typeof spec[field]} into Go struct field LeaseSpec.spec.${field} of type string`,
      );
    }
  }
  for (const field of ["leaseDurationSeconds", "leaseTransitions"]) {
    const value = spec[field];
    if (value !== undefined && value !== null && !Number.isInteger(value)) {
      return fail(
        `json: cannot unmarshal ${JSON.stringify(value)} into Go struct field LeaseSpec.spec.${field} of type int32`,
      );
    }
  }
  for (const field of ["acquireTime", "renewTime"]) {
    const value = spec[field];
    if (value === undefined || value === null) continue;
    const stored = typeof value === "string" ? microTime(value) : null;
    if (stored === null) return fail(`spec.${field}: ${JSON.stringify(value)} is not an RFC 3339 time`);
    spec[field] = stored;
  }
  return null;
}

function configMapCauses(object: Obj): FieldCause[] {
  const causes: FieldCause[] = [];
  const data: Record<string, unknown> = object.data ?? {};
  const binary: Record<string, unknown> = object.binaryData ?? {};
  let size = 0;
  for (const [key, value] of Object.entries(data)) {
    for (const detail of configMapKeyErrors(key)) causes.push(invalid(`data[${key}]`, key, detail));
    size += utf8Length(key) + utf8Length(typeof value === "string" ? value : JSON.stringify(value));
  }
  for (const [key, value] of Object.entries(binary)) {
    for (const detail of configMapKeyErrors(key)) causes.push(invalid(`binaryData[${key}]`, key, detail));
    if (Object.hasOwn(data, key)) causes.push(invalid(`binaryData[${key}]`, key, "duplicate of key present in data"));
    const bytes = typeof value === "string" ? base64Length(value) : null;
    if (bytes === null) causes.push(invalid(`binaryData[${key}]`, String(value), "must be base64"));
    size += utf8Length(key) + (bytes ?? 0);
  }
  if (size > MAX_CONFIG_MAP_BYTES) {
    causes.push({
      reason: "FieldValueTooLong",
      message: `Too long: must have at most ${MAX_CONFIG_MAP_BYTES} bytes`,
      field: "[]",
    });
  }
  return causes;
}

function eventCauses(object: Obj): FieldCause[] {
  // The legacy core/v1 rule: an Event about a cluster-scoped object (a Node) lives in "default".
  if (object.eventTime) return [];
  const involved: string = object.involvedObject?.namespace ?? "";
  const namespace: string = object.metadata?.namespace ?? "";
  const ok = involved === "" ? namespace === "" || namespace === "default" : namespace === involved;
  return ok ? [] : [invalid("involvedObject.namespace", involved, "does not match event.namespace")];
}

/** The message of a 422 Invalid Status, e.g. `ConfigMap "x" is invalid: data[a b]: Invalid value: ...`. */
export function invalidMessage(kind: string, name: string, causes: readonly FieldCause[]): string {
  const parts = causes.map((c) => `${c.field}: ${c.message}`);
  return `${kind} "${name}" is invalid: ${parts.length === 1 ? parts[0] : `[${parts.join(", ")}]`}`;
}
