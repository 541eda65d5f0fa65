/** Small assertions on node:assert (no @std/assert here: JSR cannot be reached). */
import nodeAssert from "node:assert/strict";

/** Fails unless `condition` is truthy. */
export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message);
}

/** Deep equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Deep inequality. */
export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, message);
}

/** `text` matches `pattern`. */
export function assertMatch(text: string, pattern: RegExp, message?: string): void {
  nodeAssert.match(text, pattern, message);
}

/** `text` does not match `pattern`. */
export function assertNotMatch(text: string, pattern: RegExp, message?: string): void {
  nodeAssert.doesNotMatch(text, pattern, message);
}

/** `text` contains `part`. */
export function assertStringIncludes(text: string, part: string, message?: string): void {
  nodeAssert.ok(text.includes(part), message ?? `Expected ${JSON.stringify(text)} to include ${JSON.stringify(part)}`);
}

/** Always fails, with `message`. */
export function fail(message: string): never {
  nodeAssert.fail(message);
}

/** `error` is an instance of `type`; its message includes `expected`, or `String(error)` matches it. */
function assertError(
  error: unknown,
  type: abstract new (...args: never[]) => Error,
  expected?: string | RegExp,
): Error {
  nodeAssert.ok(error instanceof type, `Expected ${type.name}, got ${error}`);
  if (typeof expected === "string") assertStringIncludes(error.message, expected);
  else if (expected) assertMatch(String(error), expected);
  return error;
}

/** `fn` throws an instance of `type`: its message includes `expected`, or a RegExp matches `Name: message`. */
export function assertThrows(
  fn: () => unknown,
  type: abstract new (...args: never[]) => Error,
  expected?: string | RegExp,
): Error {
  try {
    fn();
  } catch (error) {
    return assertError(error, type, expected);
  }
  throw new nodeAssert.AssertionError({ message: "Expected the function to throw" });
}

/** `fn` rejects with an instance of `type`: its message includes `expected`, or a RegExp matches `Name: message`. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  type: abstract new (...args: never[]) => Error,
  expected?: string | RegExp,
): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    return assertError(error, type, expected);
  }
  throw new nodeAssert.AssertionError({ message: "Expected the promise to reject" });
}
