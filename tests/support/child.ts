/** Stopping a child process the way an orchestrator does: a signal, then SIGKILL if it does not end in time. */

/** Sends `signal` (default SIGTERM), then SIGKILL after `killAfterMs`; resolves to the exit status. */
export async function stopChild(
  child: Deno.ChildProcess,
  options: { signal?: Deno.Signal; killAfterMs: number },
): Promise<Deno.CommandStatus> {
  const send = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  };
  send(options.signal ?? "SIGTERM");
  const killer = setTimeout(() => send("SIGKILL"), options.killAfterMs);
  try {
    return await child.status;
  } finally {
    clearTimeout(killer);
  }
}
