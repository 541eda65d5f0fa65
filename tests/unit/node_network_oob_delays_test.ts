/** The OOB check's retry delays after failures. */
import { assertEquals } from "../support/assert.ts";
import { nextOobCheckDelayMs } from "../../controllers/node_network/oob_schedule.ts";

Deno.test("retry delays: 1, 2, 4 ... minutes, at most the hour a success holds", () => {
  const options = { firstRetryMs: 60_000, holdMs: 3_600_000 };
  assertEquals(
    [0, 1, 2, 3, 6, 7, 100].map((n) => nextOobCheckDelayMs(n, options) / 60_000),
    [60, 1, 2, 4, 32, 60, 60],
  );
});
