/**
 * RBAC for the fake Kubernetes API server, with the real server's semantics (plugin/pkg/auth/authorizer/rbac and
 * apiserver's RequestInfoFactory): Role, ClusterRole, RoleBinding and ClusterRoleBinding objects; rules that match
 * API groups, resources (`nodes/status` for a subresource, a star before the slash for any resource's one), verbs,
 * resource names and non-resource URLs, `*` as a wildcard; a RoleBinding grants only in its own namespace, a ClusterRoleBinding everywhere; subjects of
 * kind ServiceAccount (`system:serviceaccount:<ns>:<name>`), User and Group; the group `system:masters` may do
 * anything. Pure: no I/O.
 *
 * ```ts
 * const rbac = createRbacAuthorizer(parseRbacYaml(text, "rbac.yaml"));
 * rbac.authorize(user, requestAttributes("GET", new URL("https://x/api/v1/nodes"))); // { allowed: false, ... }
 * ```
 */
import { loadAll } from "js-yaml";

/** Who asks. */
export interface RbacUser {
  /** e.g. `system:serviceaccount:kube-system:polarstack-daemon`. */
  readonly username: string;
  /** e.g. `system:authenticated`. */
  readonly groups: readonly string[];
}

/** What a request asks to do, as the real server's authorizer sees it. */
export interface RbacAttributes {
  /** `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection` (or the lower-case method). */
  readonly verb: string;
  /** `""` for the core group. */
  readonly apiGroup: string;
  /** e.g. `nodes`. */
  readonly resource: string;
  /** e.g. `status`; `""` or absent for none. */
  readonly subresource?: string;
  /** `""` or absent at the cluster scope. */
  readonly namespace?: string;
  /** `""` or absent for a collection. */
  readonly name?: string;
  /** Set only for a non-resource request (e.g. `/version`): its URL path. */
  readonly path?: string;
}

/** The authorizer's answer. */
export interface RbacDecision {
  /** Whether the request may proceed. */
  readonly allowed: boolean;
  /** Which binding allowed it; when refused, `""` or the errors met on the way (e.g. a missing role). */
  readonly reason: string;
}

/** An authorizer over a fixed set of RBAC objects. */
export interface RbacAuthorizer {
  /** Decides one request. */
  authorize(user: RbacUser, attributes: RbacAttributes): RbacDecision;
}

/** The superuser group of the real server: allowed everything, without any binding. */
export const SUPERUSER_GROUP = "system:masters";

/**
 * The bootstrap policy every real cluster has for non-resource URLs (discovery, version, health), so a fake with
 * only the project's manifests still answers `/version` to any authenticated user.
 */
export const BOOTSTRAP_RBAC: readonly object[] = [
  clusterRole("system:discovery", [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
  ]),
  clusterRoleBinding("system:discovery", ["system:authenticated"]),
  clusterRole("system:public-info-viewer", ["/healthz", "/livez", "/readyz", "/version", "/version/"]),
  clusterRoleBinding("system:public-info-viewer", ["system:authenticated", "system:unauthenticated"]),
];

function clusterRole(name: string, nonResourceURLs: string[]): object {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name },
    rules: [{ nonResourceURLs, verbs: ["get"] }],
  };
}

function clusterRoleBinding(name: string, groups: string[]): object {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
    subjects: groups.map((group) => ({ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: group })),
  };
}

/** One rule of a role. */
interface Rule {
  readonly verbs: readonly string[];
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly resourceNames: readonly string[];
  readonly nonResourceURLs: readonly string[];
}

interface Subject {
  readonly kind: "ServiceAccount" | "User" | "Group";
  readonly name: string;
  readonly namespace: string;
}

interface Binding {
  readonly kind: "RoleBinding" | "ClusterRoleBinding";
  readonly name: string;
  readonly namespace: string;
  readonly roleKind: "Role" | "ClusterRole";
  readonly roleName: string;
  readonly subjects: readonly Subject[];
}

/** An RBAC object or a part of it, as parsed from YAML: checked field by field. */
// deno-lint-ignore no-explicit-any
type Json = any;

const RBAC_API = "rbac.authorization.k8s.io/v1";
const KINDS = new Set(["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]);

/** Every document of a multi-document YAML text; `source` names it in errors. */
export function parseRbacYaml(text: string, source: string): object[] {
  let documents: unknown[];
  try {
    documents = loadAll(text);
  } catch (error) {
    throw new Error(`Cannot parse "${source}": ${(error as Error).message.split("\n")[0]}`);
  }
  return documents.filter((d): d is object => typeof d === "object" && d !== null);
}

/** A field that must be a list of strings (absent is empty). */
function strings(value: unknown, where: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new Error(`Invalid ${where}: must be a list of strings`);
  }
  return value;
}

/** A field that must be a non-empty string. */
function text(value: unknown, where: string): string {
  if (typeof value !== "string" || value === "") throw new Error(`Invalid ${where}: must be a non-empty string`);
  return value;
}

function parseRules(object: Json, where: string): Rule[] {
  if (object.aggregationRule !== undefined) throw new Error(`Invalid ${where}: aggregationRule is not supported`);
  if (object.rules === undefined || object.rules === null) return [];
  if (!Array.isArray(object.rules)) throw new Error(`Invalid ${where}: rules must be a list`);
  return object.rules.map((rule: Json, i: number) => {
    const at = `${where} rules[${i}]`;
    const parsed = {
      verbs: strings(rule?.verbs, `${at}.verbs`),
      apiGroups: strings(rule?.apiGroups, `${at}.apiGroups`),
      resources: strings(rule?.resources, `${at}.resources`),
      resourceNames: strings(rule?.resourceNames, `${at}.resourceNames`),
      nonResourceURLs: strings(rule?.nonResourceURLs, `${at}.nonResourceURLs`),
    };
    // The real server's validation: verbs always; resources need API groups; no mix with URLs.
    if (parsed.verbs.length === 0) throw new Error(`Invalid ${at}: verbs must not be empty`);
    if (parsed.nonResourceURLs.length > 0 && parsed.resources.length + parsed.apiGroups.length > 0) {
      throw new Error(`Invalid ${at}: nonResourceURLs cannot be mixed with resources or apiGroups`);
    }
    if (parsed.nonResourceURLs.length === 0 && (parsed.resources.length === 0 || parsed.apiGroups.length === 0)) {
      throw new Error(`Invalid ${at}: resource rules need apiGroups and resources`);
    }
    return parsed;
  });
}

/** A RoleBinding (in `namespace`) or a ClusterRoleBinding (`namespace` is ""). */
function parseBinding(object: Json, namespace: string): Binding {
  const kind: Binding["kind"] = namespace ? "RoleBinding" : "ClusterRoleBinding";
  const name = object.metadata.name;
  const where = `${kind} "${name}"`;
  const ref = object.roleRef;
  if (typeof ref !== "object" || ref === null) throw new Error(`Invalid ${where}: roleRef is required`);
  const roleKind = ref.kind;
  if (roleKind !== "ClusterRole" && !(roleKind === "Role" && kind === "RoleBinding")) {
    throw new Error(`Invalid ${where}: roleRef.kind "${roleKind}" is not allowed`);
  }
  if (!Array.isArray(object.subjects ?? [])) throw new Error(`Invalid ${where}: subjects must be a list`);
  const subjects = (object.subjects ?? []).map((subject: Json, i: number): Subject => {
    const at = `${where} subjects[${i}]`;
    const subjectKind = subject?.kind;
    if (subjectKind !== "ServiceAccount" && subjectKind !== "User" && subjectKind !== "Group") {
      throw new Error(`Invalid ${at}: kind "${subjectKind}" is not ServiceAccount, User or Group`);
    }
    return {
      kind: subjectKind,
      name: text(subject.name, `${at}.name`),
      namespace: subject.namespace === undefined ? "" : text(subject.namespace, `${at}.namespace`),
    };
  });
  return {
    kind,
    name,
    namespace,
    roleKind,
    roleName: text(ref.name, `${where} roleRef.name`),
    subjects,
  };
}

/** Builds an authorizer from RBAC objects; other kinds are ignored. Throws on a malformed RBAC object. */
export function createRbacAuthorizer(objects: readonly object[]): RbacAuthorizer {
  const clusterRoles = new Map<string, Rule[]>();
  const roles = new Map<string, Rule[]>();
  const clusterBindings: Binding[] = [];
  const bindings: Binding[] = [];
  for (const object of objects as Json[]) {
    if (!KINDS.has(object?.kind)) continue;
    const kind = object.kind as string;
    const name = text(object.metadata?.name, `${kind} metadata.name`);
    const where = `${kind} "${name}"`;
    if (object.apiVersion !== RBAC_API) throw new Error(`Invalid ${where}: apiVersion must be ${RBAC_API}`);
    const namespaced = kind === "Role" || kind === "RoleBinding";
    const namespace = namespaced ? text(object.metadata.namespace, `${where} metadata.namespace`) : "";
    if (kind === "ClusterRole") clusterRoles.set(name, parseRules(object, where));
    else if (kind === "Role") roles.set(`${namespace}/${name}`, parseRules(object, where));
    else if (kind === "ClusterRoleBinding") clusterBindings.push(parseBinding(object, ""));
    else bindings.push(parseBinding(object, namespace));
  }

  function rulesOf(binding: Binding): Rule[] | Error {
    const rules = binding.roleKind === "ClusterRole"
      ? clusterRoles.get(binding.roleName)
      : roles.get(`${binding.namespace}/${binding.roleName}`);
    if (rules) return rules;
    const group = binding.roleKind === "ClusterRole" ? "clusterrole" : "role";
    return new Error(`${group}.rbac.authorization.k8s.io "${binding.roleName}" not found`);
  }

  return {
    authorize(user, attributes) {
      if (user.groups.includes(SUPERUSER_GROUP)) {
        return { allowed: true, reason: `superuser group "${SUPERUSER_GROUP}"` };
      }
      const namespace = attributes.namespace ?? "";
      // As the real resolver: cluster bindings first, then the bindings of the request's namespace.
      const candidates = [...clusterBindings, ...(namespace ? bindings.filter((b) => b.namespace === namespace) : [])];
      const errors: string[] = [];
      for (const binding of candidates) {
        const subject = binding.subjects.find((s) => appliesTo(s, user, binding.namespace));
        if (!subject) continue;
        const rules = rulesOf(binding);
        if (rules instanceof Error) {
          errors.push(rules.message);
          continue;
        }
        if (rules.some((rule) => ruleAllows(rule, attributes))) {
          return { allowed: true, reason: `RBAC: allowed by ${describe(binding, subject)}` };
        }
      }
      const reason = errors.length === 0 ? "" : `RBAC: ${errors.length === 1 ? errors[0] : `[${errors.join(", ")}]`}`;
      return { allowed: false, reason };
    },
  };
}

function appliesTo(subject: Subject, user: RbacUser, bindingNamespace: string): boolean {
  if (subject.kind === "User") return subject.name === user.username;
  if (subject.kind === "Group") return user.groups.includes(subject.name);
  const namespace = subject.namespace || bindingNamespace;
  return namespace !== "" && user.username === `system:serviceaccount:${namespace}:${subject.name}`;
}

function describe(binding: Binding, subject: Subject): string {
  const name = binding.kind === "RoleBinding" ? `${binding.name}/${binding.namespace}` : binding.name;
  const who = subject.kind === "ServiceAccount"
    ? `${subject.name}/${subject.namespace || binding.namespace}`
    : subject.name;
  return `${binding.kind} "${name}" of ${binding.roleKind} "${binding.roleName}" to ${subject.kind} "${who}"`;
}

function has(list: readonly string[], value: string): boolean {
  return list.includes("*") || list.includes(value);
}

/** Whether one rule allows the request (the real `RuleAllows`). */
function ruleAllows(rule: Rule, attributes: RbacAttributes): boolean {
  if (!has(rule.verbs, attributes.verb)) return false;
  if (attributes.path !== undefined) {
    const path = attributes.path;
    return rule.nonResourceURLs.some((url) =>
      url === "*" || url === path || (url.endsWith("*") && path.startsWith(url.slice(0, -1)))
    );
  }
  const subresource = attributes.subresource ?? "";
  const combined = subresource ? `${attributes.resource}/${subresource}` : attributes.resource;
  return has(rule.apiGroups, attributes.apiGroup) &&
    rule.resources.some((r) => r === "*" || r === combined || (subresource !== "" && r === `*/${subresource}`)) &&
    (rule.resourceNames.length === 0 || rule.resourceNames.includes(attributes.name ?? ""));
}

const TRUE = new Set(["1", "t", "T", "true", "TRUE", "True"]);

/** The authorizer's view of a request (the real RequestInfoFactory for the `/api` and `/apis` prefixes). */
export function requestAttributes(method: string, url: URL): RbacAttributes {
  const nonResource = { verb: method.toLowerCase(), apiGroup: "", resource: "", path: url.pathname };
  let parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length < 3 || (parts[0] !== "api" && parts[0] !== "apis")) return nonResource;
  let apiGroup = "";
  if (parts[0] === "apis") {
    if (parts.length < 4) return nonResource;
    apiGroup = parts[1];
    parts = parts.slice(3);
  } else {
    parts = parts.slice(2);
  }
  let verb = ({ POST: "create", GET: "get", HEAD: "get", PUT: "update", PATCH: "patch", DELETE: "delete" } as Record<
    string,
    string
  >)[method.toUpperCase()] ?? "";
  if (parts[0] === "watch" && parts.length >= 2) {
    verb = "watch";
    parts = parts.slice(1);
  }
  let namespace = "";
  if (parts[0] === "namespaces" && parts.length > 1) {
    namespace = parts[1];
    if (parts.length > 2 && parts[2] !== "status" && parts[2] !== "finalize") parts = parts.slice(2);
  }
  const resource = parts[0] ?? "";
  let name = parts[1] ?? "";
  const subresource = parts[2] ?? "";
  if (name === "" && verb === "get") {
    verb = TRUE.has(url.searchParams.get("watch") ?? "") ? "watch" : "list";
    // A list or watch of one object by `metadata.name=` is authorized as that object (resourceNames apply).
    name = exactName(url.searchParams.get("fieldSelector") ?? "");
  }
  if (name === "" && verb === "delete") verb = "deletecollection";
  return { verb, apiGroup, resource, subresource, namespace, name };
}

function exactName(selector: string): string {
  for (const term of selector.split(",")) {
    const match = term.trim().match(/^metadata\.name\s*==?\s*(.*)$/);
    if (match && match[1] !== "" && match[1] !== "." && match[1] !== ".." && !/[/%]/.test(match[1])) {
      return match[1].trim();
    }
  }
  return "";
}

/** The message and details of the real server's 403, e.g. `configmaps "x" is forbidden: User "u" cannot delete ...`. */
export function forbiddenStatus(
  user: RbacUser,
  attributes: RbacAttributes,
  reason = "",
): { message: string; details: { name?: string; group?: string; kind?: string } } {
  const who = `User ${JSON.stringify(user.username)} cannot ${attributes.verb}`;
  let message: string;
  if (attributes.path !== undefined) {
    message = `${who} path ${JSON.stringify(attributes.path)}`;
  } else {
    const { resource, subresource, apiGroup, namespace } = attributes;
    const scope = namespace ? `in the namespace ${JSON.stringify(namespace)}` : "at the cluster scope";
    message = `${who} resource ${JSON.stringify(subresource ? `${resource}/${subresource}` : resource)} in API group ${
      JSON.stringify(apiGroup)
    } ${scope}`;
  }
  if (reason) message = `${message}: ${reason}`;
  // The real NewForbidden: the group-qualified resource (never the subresource) and the name lead the message.
  const resource = attributes.path === undefined ? attributes.resource : "";
  const group = attributes.path === undefined ? attributes.apiGroup : "";
  const name = attributes.name ?? "";
  const target = group ? `${resource}.${group}` : resource;
  const details = Object.fromEntries(Object.entries({ name, group, kind: resource }).filter(([, v]) => v !== ""));
  if (!target) return { message: `forbidden: ${message}`, details };
  return { message: `${target}${name ? ` ${JSON.stringify(name)}` : ""} is forbidden: ${message}`, details };
}
