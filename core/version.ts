/** The daemon's version. */
import denoConfig from "../deno.json" with { type: "json" };

/** The daemon's version (from deno.json). */
export const VERSION: string = denoConfig.version;
