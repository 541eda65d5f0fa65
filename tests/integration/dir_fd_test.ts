/** The directory-fd calls against the real kernel. */
import { FdCallError, isSwapError, openDirFs } from "../../host/dir_fd.ts";
import { assert, assertEquals, assertThrows } from "../support/assert.ts";

const encode = (name: string) => new TextEncoder().encode(name);

for (const openat2 of [true, false]) {
  Deno.test(`${openat2 ? "openat2" : "openat"}: folders open by fd, links and files are refused, names are raw`, () => {
    const base = Deno.realPathSync(Deno.makeTempDirSync());
    const fs = openDirFs({ openat2 });
    const fd = fs.openRoot(base);
    try {
      Deno.mkdirSync(`${base}/dir`);
      Deno.writeTextFileSync(`${base}/dir/file`, "12345");
      Deno.symlinkSync(`${base}/dir`, `${base}/link`);
      Deno.writeTextFileSync(`${base}/x`, "");
      const names = fs.list(fd).map((entry) => [entry.text, entry.kind]).sort();
      assertEquals(names, [["dir", "dir"], ["link", "symlink"], ["x", "file"]]);

      const dirFd = fs.openAt(fd, encode("dir"));
      const stat = fs.statAt(dirFd, encode("file"));
      assertEquals([stat.kind, stat.size], ["file", 5]);
      assertEquals(fs.statAt(dirFd, null).ino, fs.statAt(fd, encode("dir")).ino);
      assertEquals(fs.statAt(fd, encode("link")).kind, "symlink");

      const refused = (name: string) => assertThrows(() => fs.openAt(fd, encode(name)), FdCallError);
      // O_NOFOLLOW|O_DIRECTORY on a link: ELOOP or ENOTDIR, as the kernel checks one or the other first.
      const link = refused("link") as FdCallError;
      assert(isSwapError(link) && ["ELOOP", "ENOTDIR"].includes(link.code), link.message);
      assertEquals(link.call, openat2 ? "openat2" : "openat");
      assertEquals((refused("x") as FdCallError).code, "ENOTDIR");
      assertEquals((refused("missing") as FdCallError).code, "ENOENT");
      // openat2 also refuses a path with a link in the middle; a name is one component for both.
      if (openat2) assert(isSwapError(refused("link/file")), "a link in the middle is refused");

      fs.unlinkAt(dirFd, encode("file"), false);
      assertThrows(() => fs.unlinkAt(fd, encode("dir"), false), FdCallError);
      fs.unlinkAt(fd, encode("dir"), true);
      fs.unlinkAt(fd, encode("link"), false);
      assertEquals(fs.list(fd).map((entry) => entry.text), ["x"]);
      fs.close(dirFd);
    } finally {
      fs.close(fd);
      Deno.removeSync(base, { recursive: true });
    }
  });
}

Deno.test("a name that is not UTF-8 is listed with its raw bytes and no text", () => {
  const base = Deno.realPathSync(Deno.makeTempDirSync());
  const fs = openDirFs();
  const fd = fs.openRoot(base);
  try {
    Deno.writeTextFileSync(`${base}/ok`, "");
    // Deno's path strings cannot hold 0xff: the kernel's own name goes through a libc call.
    const python = new Deno.Command("/usr/bin/python3", {
      args: ["-c", `import os; open(os.path.join(b"${base}", b"bad\\xff"), "w").close()`],
    }).outputSync();
    assert(python.success, new TextDecoder().decode(python.stderr));
    const entries = fs.list(fd).sort((a, b) => a.bytes.length - b.bytes.length);
    assertEquals(entries.map((entry) => entry.text), ["ok", null]);
    assertEquals([...entries[1].bytes], [0x62, 0x61, 0x64, 0xff]);
    fs.unlinkAt(fd, entries[1].bytes, false);
    assertEquals(fs.list(fd).map((entry) => entry.text), ["ok"]);
  } finally {
    fs.close(fd);
    Deno.removeSync(base, { recursive: true });
  }
});
