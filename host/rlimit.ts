/** The process's open-file limit (RLIMIT_NOFILE), read and raised through libc's getrlimit/setrlimit. */

/** A soft and a hard limit. */
export interface Limit {
  /** What the kernel enforces now. */
  readonly soft: number;
  /** The most the soft limit may be raised to without privileges. */
  readonly hard: number;
}

/** What raising the limit did: the limits before and after, or why it could not. */
export type RaiseResult =
  | { readonly ok: true; readonly before: Limit; readonly after: Limit }
  | { readonly ok: false; readonly before: Limit | null; readonly error: string };

// RLIMIT_NOFILE is 7 on every Linux architecture Deno runs on (x86_64, aarch64).
const RLIMIT_NOFILE = 7;

const SYMBOLS = {
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

function read(libc: Libc): Limit {
  // struct rlimit is two rlim_t (unsigned 64-bit on 64-bit Linux); RLIM_INFINITY does not fit a number, so it is capped.
  const buffer = new BigUint64Array(2);
  if (libc.symbols.getrlimit(RLIMIT_NOFILE, buffer) !== 0) throw new Error("getrlimit(RLIMIT_NOFILE) failed");
  const cap = (value: bigint) => Number(value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : value);
  return { soft: cap(buffer[0]), hard: cap(buffer[1]) };
}

function withLibc<T>(use: (libc: Libc) => T): T {
  const libc = Deno.dlopen("libc.so.6", SYMBOLS);
  try {
    return use(libc);
  } finally {
    libc.close();
  }
}

/** The current open-file limit of this process. */
export function openFileLimit(): Limit {
  return withLibc(read);
}

/** Raises the soft open-file limit to the hard one; never throws (a failure comes back as `ok: false`). */
export function raiseOpenFileLimit(): RaiseResult {
  let before: Limit | null = null;
  try {
    return withLibc((libc) => {
      before = read(libc);
      if (before.soft >= before.hard) return { ok: true, before, after: before };
      const wanted = new BigUint64Array([BigInt(before.hard), BigInt(before.hard)]);
      if (libc.symbols.setrlimit(RLIMIT_NOFILE, wanted) !== 0) {
        return { ok: false, before, error: `setrlimit(RLIMIT_NOFILE, ${before.hard}) failed` };
      }
      return { ok: true, before, after: read(libc) };
    });
  } catch (error) {
    return { ok: false, before, error: error instanceof Error ? error.message : String(error) };
  }
}
