/** A usage error: a flag value that does not parse, or flags that do not go together. */

/** A flag value that does not parse; the message names the flag and why. */
export class FlagError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}
