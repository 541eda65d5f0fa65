/** Label and field selectors as the Kubernetes API server parses and matches them, as pure functions. */

/** A selector the API server would reject (400 BadRequest). */
export class SelectorError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "SelectorError";
  }
}

/** One requirement of a label selector. */
export interface LabelRequirement {
  /** The label key. */
  readonly key: string;
  /** `=`, `!=`, `in`, `notin`, `exists`, `!`, `gt` or `lt` (`==` is parsed as `=`). */
  readonly op: "=" | "!=" | "in" | "notin" | "exists" | "!" | "gt" | "lt";
  /** The values of `=`, `!=`, `in`, `notin`, `gt` and `lt`. */
  readonly values: readonly string[];
}

const NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const NAME_RE = new RegExp(`^${NAME}$`);
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KEY = "[^\\s=!<>(),]+";

function checkKey(key: string): void {
  const slash = key.indexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN_RE.test(prefix))) {
    throw new SelectorError(`unable to parse requirement: key "${key}": the prefix must be a DNS subdomain`);
  }
  if (name.length > 63 || !NAME_RE.test(name)) {
    throw new SelectorError(
      `unable to parse requirement: key "${key}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
    );
  }
}

function checkValue(value: string): void {
  if (value.length > 63 || (value !== "" && !NAME_RE.test(value))) {
    throw new SelectorError(
      `unable to parse requirement: values[0]: Invalid value: "${value}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
    );
  }
}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "(") depth++;
    else if (c === ")" && --depth < 0) throw new SelectorError(`unable to parse requirement: unbalanced ")"`);
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) throw new SelectorError(`unable to parse requirement: unbalanced "("`);
  parts.push(text.slice(start));
  return parts;
}

/** Parses a label selector (`a=b,c!=d,e in (f,g),h notin (i),j,!k`); throws a SelectorError when it is bad. */
export function parseLabelSelector(selector: string): LabelRequirement[] {
  if (selector.trim() === "") return [];
  return splitTopLevel(selector).map((part) => {
    const text = part.trim();
    let m: RegExpMatchArray | null;
    let requirement: LabelRequirement;
    if ((m = text.match(new RegExp(`^!\\s*(${KEY})$`)))) {
      requirement = { key: m[1], op: "!", values: [] };
    } else if ((m = text.match(new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^()]*)\\)$`)))) {
      const values = m[3].split(",").map((v) => v.trim());
      if (m[3].trim() === "") throw new SelectorError(`unable to parse requirement: "${text}" has an empty set`);
      requirement = { key: m[1], op: m[2] as "in" | "notin", values };
    } else if ((m = text.match(new RegExp(`^(${KEY})\\s*(==|=|!=|>|<)\\s*([^\\s=!<>(),]*)$`)))) {
      const op = m[2] === "==" ? "=" : m[2] === ">" ? "gt" : m[2] === "<" ? "lt" : (m[2] as "=" | "!=");
      if ((op === "gt" || op === "lt") && !/^-?[0-9]+$/.test(m[3])) {
        throw new SelectorError(
          `unable to parse requirement: "${text}": for 'gt', 'lt' operators, the value must be an integer`,
        );
      }
      requirement = { key: m[1], op, values: [m[3]] };
    } else if ((m = text.match(new RegExp(`^(${KEY})$`)))) {
      requirement = { key: m[1], op: "exists", values: [] };
    } else {
      throw new SelectorError(`unable to parse requirement: "${text}" is not a valid label requirement`);
    }
    checkKey(requirement.key);
    requirement.values.forEach(checkValue);
    return requirement;
  });
}

/** Whether labels satisfy every requirement (an empty list matches everything). */
export function matchesLabels(
  requirements: readonly LabelRequirement[],
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  const have = labels ?? {};
  return requirements.every(({ key, op, values }) => {
    const present = Object.hasOwn(have, key);
    const value = have[key];
    switch (op) {
      case "=":
        return present && value === values[0];
      case "!=":
        return !present || value !== values[0];
      case "in":
        return present && values.includes(value);
      case "notin":
        return !present || !values.includes(value);
      case "exists":
        return present;
      case "!":
        return !present;
      case "gt":
        return present && /^-?[0-9]+$/.test(value) && Number(value) > Number(values[0]);
      case "lt":
        return present && /^-?[0-9]+$/.test(value) && Number(value) < Number(values[0]);
    }
  });
}

/** One requirement of a field selector. */
export interface FieldRequirement {
  /** A dotted field path such as `spec.nodeName`. */
  readonly field: string;
  /** Whether the field must equal the value (`=`, `==`) or differ from it (`!=`). */
  readonly equal: boolean;
  /** The value. */
  readonly value: string;
}

/** Parses a field selector (`metadata.name=x,spec.nodeName!=y`) that may use only `allowed` fields. */
export function parseFieldSelector(selector: string, allowed: readonly string[]): FieldRequirement[] {
  if (selector.trim() === "") return [];
  return selector.split(",").map((part) => {
    const m = part.trim().match(/^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new SelectorError(`invalid selector: '${selector}'; can't understand '${part.trim()}'`);
    if (!allowed.includes(m[1])) throw new SelectorError(`field label not supported: ${m[1]}`);
    return { field: m[1], equal: m[2] !== "!=", value: m[3].trim() };
  });
}

/** Whether an object satisfies every field requirement; a missing field counts as the empty string. */
export function matchesFields(requirements: readonly FieldRequirement[], object: unknown): boolean {
  return requirements.every(({ field, equal, value }) => (fieldValue(object, field) === value) === equal);
}

function fieldValue(object: unknown, field: string): string {
  let node: unknown = object;
  for (const part of field.split(".")) {
    if (typeof node !== "object" || node === null) return "";
    node = (node as Record<string, unknown>)[part];
  }
  return node === undefined || node === null ? "" : String(node);
}
