/** The mountinfo parser. */
import { mountPointsBelow, parseMountPoints } from "../../host/mount_points.ts";
import { assertEquals } from "../support/assert.ts";

Deno.test("mountinfo: mount points with the kernel's escapes, and those strictly below a root", () => {
  const text = [
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw",
    "30 22 0:25 / /disk1/polardb rw - ext4 /dev/vdb rw",
    "31 30 8:1 /victim /disk1/polardb/ins\\0401/log rw - ext4 /dev/vda rw",
    "32 30 0:40 / /disk1/polardb/ins2/tmp\\134x rw - tmpfs tmpfs rw",
    "33 22 0:41 / /disk1/polardb-other rw - tmpfs tmpfs rw",
    "",
  ].join("\n");
  const points = parseMountPoints(text);
  assertEquals(points, [
    "/",
    "/disk1/polardb",
    "/disk1/polardb/ins 1/log",
    "/disk1/polardb/ins2/tmp\\x",
    "/disk1/polardb-other",
  ]);
  assertEquals([...mountPointsBelow(points, "/disk1/polardb")], [
    "/disk1/polardb/ins 1/log",
    "/disk1/polardb/ins2/tmp\\x",
  ]);
});
