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

/** `text` contains `part`. */
export function assertStringIncludes(text: string, part: string, message?: string): void {
  nodeAssert.ok(text.includes(part), message ?? `Expected ${JSON.stringify(text)} to include ${JSON.stringify(part)}`);
}

/** `fn` throws an instance of `type` whose message includes `includes`. */
export function assertThrows(
  fn: () => unknown,
  type: abstract new (...args: never[]) => Error,
  includes?: string,
): Error {
  try {
    fn();
  } catch (error) {
    nodeAssert.ok(error instanceof type, `Expected ${type.name}, got ${error}`);
    if (includes) assertStringIncludes((error as Error).message, includes);
    return error as Error;
  }
  throw new nodeAssert.AssertionError({ message: "Expected the function to throw" });
}

/** `fn` rejects with an instance of `type` whose message includes `includes`. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  type: abstract new (...args: never[]) => Error,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    nodeAssert.ok(error instanceof type, `Expected ${type.name}, got ${error}`);
    if (includes) assertStringIncludes((error as Error).message, includes);
    return error as Error;
  }
  throw new nodeAssert.AssertionError({ message: "Expected the promise to reject" });
}
