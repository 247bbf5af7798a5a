/**
 * Test-only fault injection for the file:// store (test/faults-*.e2e.test.ts), driven by the
 * environment of a worker process (its trainer inherits DT_* variables). Never set in production;
 * unset, every hook is a no-op.
 *
 *   DT_FAULT_KILL_AT=<moment>:<key>   SIGKILL this process's group (the worker and its trainer) at
 *     in-tmp-write   half-way through the temporary file of <key> (before its fsync and rename)
 *     holding-lock   right after taking the lock to write <key>, before reading or writing it
 *     after-put      right after <key> is stored (lock released), before the caller goes on
 *   DT_FAULT_ENOSPC_WHILE=<file>      every write fails with ENOSPC while <file> exists (a full disk)
 */
import { existsSync } from 'node:fs';

export type KillMoment = 'in-tmp-write' | 'holding-lock' | 'after-put';

/** At `moment` of writing `key`, when DT_FAULT_KILL_AT names it: run `before` (a torn write), then SIGKILL the group. */
export async function killAt(moment: KillMoment, key: string, before?: () => Promise<unknown>): Promise<void> {
  if (process.env.DT_FAULT_KILL_AT !== `${moment}:${key}`) return;
  await before?.();
  console.error(`[durable-train] fault injection: SIGKILL ${moment} ${key}`);
  // Pid 0: every process of this process's group, as a crash of the machine's worker would.
  process.kill(0, 'SIGKILL');
}

/** Throws what a write on a full disk throws while the DT_FAULT_ENOSPC_WHILE file exists. */
export function failIfDiskFull(file: string): void {
  const flag = process.env.DT_FAULT_ENOSPC_WHILE;
  if (!flag || !existsSync(flag)) return;
  throw Object.assign(new Error(`ENOSPC: no space left on device, write '${file}' (fault injection)`), { code: 'ENOSPC', errno: -28, syscall: 'write', path: file });
}

/** Before the temporary file of `key` is written: ENOSPC on a full disk, or half of it written and SIGKILL. */
export async function beforeTmpWrite(key: string, file: string, writeHalf: () => Promise<unknown>): Promise<void> {
  failIfDiskFull(file);
  await killAt('in-tmp-write', key, writeHalf);
}
