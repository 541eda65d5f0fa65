/** The three PATCH formats of the Kubernetes API server, as pure functions over JSON values. */

/** A JSON value. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** A patch that cannot be applied; `code` is the HTTP status the API server answers (400 or 422). */
export class PatchError extends Error {
  /** 400 for a malformed patch, 422 for one that does not apply to the object. */
  readonly code: number;

  /** Builds the error. */
  constructor(message: string, code: number) {
    super(message);
    this.name = "PatchError";
    this.code = code;
  }
}

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Applies an RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const result: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** List merge keys of the strategic merge patch, by dotted path (list items do not add to the path). */
export const DEFAULT_MERGE_KEYS: Readonly<Record<string, string>> = {
  "status.conditions": "type",
  "status.addresses": "type",
  "spec.containers": "name",
  "spec.initContainers": "name",
  "spec.volumes": "name",
  "metadata.ownerReferences": "uid",
};

const SET_ORDER = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE = "$deleteFromPrimitiveList/";

/**
 * Applies a strategic merge patch: like a merge patch, but the lists named in `mergeKeys` merge their items by
 * key (`{"type": "Ready", "$patch": "delete"}` removes one), `$patch: replace` replaces a map or list, `$patch:
 * delete` deletes a map, and `$deleteFromPrimitiveList/<list>` removes values. `$setElementOrder` and
 * `$retainKeys` are accepted and ignored. Other lists are replaced, as the real server does.
 */
export function strategicMergePatch(
  target: Json,
  patch: Json,
  options: { mergeKeys?: Readonly<Record<string, string>> } = {},
): Json {
  return strategicValue(target, patch, "", options.mergeKeys ?? DEFAULT_MERGE_KEYS);
}

function strategicValue(target: Json, patch: Json, path: string, keys: Readonly<Record<string, string>>): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const directive = patch.$patch;
  if (directive === "delete") return undefined;
  const rest = { ...patch };
  delete rest.$patch;
  if (directive === "replace") return stripDirectives(rest);
  if (directive !== undefined) throw new PatchError(`Unknown patch directive "${directive}" at "${path}"`, 400);
  const result: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(rest)) {
    if (key.startsWith(SET_ORDER) || key === "$retainKeys") continue;
    if (key.startsWith(DELETE_FROM_PRIMITIVE)) {
      const list = key.slice(DELETE_FROM_PRIMITIVE.length);
      if (!Array.isArray(value)) throw new PatchError(`"${key}" must be a list`, 400);
      if (Array.isArray(result[list])) result[list] = result[list].filter((v: Json) => !value.includes(v));
      continue;
    }
    const childPath = path ? `${path}.${key}` : key;
    if (value === null) {
      delete result[key];
    } else if (Array.isArray(value)) {
      const mergeKey = keys[childPath];
      result[key] = mergeKey ? mergeList(result[key], value, childPath, mergeKey, keys) : listWithoutDirectives(value);
    } else {
      const merged = strategicValue(result[key], value, childPath, keys);
      if (merged === undefined) delete result[key];
      else result[key] = merged;
    }
  }
  return result;
}

function listWithoutDirectives(list: Json[]): Json[] {
  return list.filter((item) => !(isObject(item) && item.$patch)).map(stripDirectives);
}

function stripDirectives(value: Json): Json {
  if (Array.isArray(value)) return value.map(stripDirectives);
  if (!isObject(value)) return value;
  const result: Record<string, Json> = {};
  for (const [key, item] of Object.entries(value)) {
    if (!key.startsWith("$")) result[key] = stripDirectives(item);
  }
  return result;
}

function mergeList(
  target: Json,
  patch: Json[],
  path: string,
  mergeKey: string,
  keys: Readonly<Record<string, string>>,
): Json[] {
  if (patch.some((item) => isObject(item) && item.$patch === "replace")) {
    return listWithoutDirectives(patch);
  }
  const result: Json[] = Array.isArray(target) ? target.map((item) => structuredClone(item)) : [];
  for (const item of patch) {
    if (!isObject(item)) throw new PatchError(`List "${path}" merges by "${mergeKey}" and needs objects`, 400);
    if (!(mergeKey in item)) throw new PatchError(`An item of list "${path}" has no merge key "${mergeKey}"`, 400);
    const at = result.findIndex((existing) => isObject(existing) && deepEqual(existing[mergeKey], item[mergeKey]));
    if (item.$patch === "delete") {
      if (at >= 0) result.splice(at, 1);
      continue;
    }
    if (at >= 0) result[at] = strategicValue(result[at], item, path, keys);
    else result.push(stripDirectives(item));
  }
  return result;
}

/** One operation of an RFC 6902 JSON patch. */
export interface JsonPatchOperation {
  /** `add`, `remove`, `replace`, `move`, `copy` or `test`. */
  op: string;
  /** JSON pointer of the target location. */
  path: string;
  /** The value of `add`, `replace` and `test`. */
  value?: Json;
  /** The source pointer of `move` and `copy`. */
  from?: string;
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new PatchError(`JSON pointer "${pointer}" must start with "/"`, 400);
  return pointer.slice(1).split("/").map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function arrayIndex(list: Json[], token: string, pointer: string, forAdd: boolean): number {
  if (forAdd && token === "-") return list.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new PatchError(`Bad array index "${token}" in "${pointer}"`, 422);
  const index = Number(token);
  if (index > list.length || (!forAdd && index === list.length)) {
    throw new PatchError(`Array index ${index} of "${pointer}" is out of bounds`, 422);
  }
  return index;
}

function parentOf(doc: Json, tokens: string[], pointer: string): Json {
  let node = doc;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(node)) node = node[arrayIndex(node, token, pointer, false)];
    else if (isObject(node) && token in node) node = node[token];
    else throw new PatchError(`Path "${pointer}" does not exist`, 422);
  }
  if (!Array.isArray(node) && !isObject(node)) throw new PatchError(`Path "${pointer}" does not exist`, 422);
  return node;
}

function getAt(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return doc;
  const parent = parentOf(doc, tokens, pointer);
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) return parent[arrayIndex(parent, last, pointer, false)];
  if (!(last in parent)) throw new PatchError(`Path "${pointer}" does not exist`, 422);
  return parent[last];
}

function addAt(doc: Json, pointer: string, value: Json): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return value;
  const parent = parentOf(doc, tokens, pointer);
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, pointer, true), 0, value);
  else parent[last] = value;
  return doc;
}

function removeAt(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) throw new PatchError("Cannot remove the whole document", 422);
  const parent = parentOf(doc, tokens, pointer);
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, pointer, false), 1);
  else if (last in parent) delete parent[last];
  else throw new PatchError(`Path "${pointer}" does not exist`, 422);
  return doc;
}

/** Applies an RFC 6902 JSON patch; a malformed patch is a 400 PatchError, a failing one (e.g. `test`) a 422. */
export function jsonPatch(target: Json, operations: Json): Json {
  if (!Array.isArray(operations)) throw new PatchError("A JSON patch must be a list of operations", 400);
  let doc = structuredClone(target);
  for (const operation of operations as JsonPatchOperation[]) {
    if (!isObject(operation) || typeof operation.path !== "string") {
      throw new PatchError(`Bad JSON patch operation ${JSON.stringify(operation)}`, 400);
    }
    const { op, path } = operation;
    switch (op) {
      case "add":
        doc = addAt(doc, path, structuredClone(operation.value));
        break;
      case "remove":
        doc = removeAt(doc, path);
        break;
      case "replace":
        getAt(doc, path);
        doc = path === "" ? structuredClone(operation.value) : addAt(removeAt(doc, path), path, operation.value);
        break;
      case "move":
      case "copy": {
        if (typeof operation.from !== "string") throw new PatchError(`"${op}" needs "from"`, 400);
        const value = structuredClone(getAt(doc, operation.from));
        if (op === "move") doc = removeAt(doc, operation.from);
        doc = addAt(doc, path, value);
        break;
      }
      case "test":
        if (!deepEqual(getAt(doc, path), operation.value)) {
          throw new PatchError(`Testing value "${path}" failed`, 422);
        }
        break;
      default:
        throw new PatchError(`Unknown JSON patch operation "${op}"`, 400);
    }
  }
  return doc;
}

function deepEqual(a: Json, b: Json): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return a === b;
}
