/**
 * Test-only fault injection for the file:// store (test/faults-*.e2e.test.ts), driven by the
 * environment of a worker process (its trainer inherits DT_* variables). Never set in production;
 * unset, every hook is a no-op.
 *
 *   DT_FAULT_KILL_AT=<moment>:<key>   SIGKILL this process's group (the worker and its trainer) at
 *     in-tmp-write   half-way through the temporary file of <key> (before its fsync and its rename or link)
 *     holding-lock   right after taking the lock to write <key>, before reading or writing it (only
 *                    compare-and-swaps take it, latest.json and lease.json; create-only writes link)
 *     after-put      right after <key> is stored (lock released), before the caller goes on
 *   DT_FAULT_ENOSPC_WHILE=<file>      every write fails with ENOSPC while <file> exists (a full disk)
 *   DT_FAULT_HOLD_DIR=<dir>           holds one attempt of an activity for good (its worker alive and
 *     heartbeating), so a test can SIGKILL the worker inside it (test/activity-liveness.e2e.test.ts):
 *     <dir>/hold          lines `<activityType>@start` (before its work) or `@end` (work done, result
 *                         not returned), read at each attempt, so a test arms holds while workers run
 *     <dir>/held-<type>   created exclusively by the one attempt that holds (one per type across
 *                         every worker process): its pid, workflow id and activity id
 *     <dir>/resumed-<type> written when that same activity starts again (its retry): pid, time, attempt
 */
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';

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

/** The activity attempt at a hold point (DT_FAULT_HOLD_DIR). */
export interface HeldAttempt {
  readonly activityType: string;
  readonly attempt: number;
  readonly workflowId: string;
  readonly activityId: string;
}

export type HoldMoment = 'start' | 'end';

/** Writes `data` to `file` only if it does not exist yet; false when it did. */
function createExclusive(file: string, data: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * At `moment` of an activity attempt, when DT_FAULT_HOLD_DIR arms it: a promise that never settles
 * (the caller keeps heartbeating, as a slow activity on a live worker would), else undefined. At
 * the start of the held activity's next attempt, records `resumed-<type>` (the test's clock).
 */
export function activityHold(moment: HoldMoment, a: HeldAttempt): Promise<never> | undefined {
  const dir = process.env.DT_FAULT_HOLD_DIR;
  if (!dir) return undefined;
  const held = path.join(dir, `held-${a.activityType}`);
  const same = { workflowId: a.workflowId, activityId: a.activityId };
  if (moment === 'start' && existsSync(held)) {
    let h: Partial<typeof same> = {};
    try {
      h = JSON.parse(readFileSync(held, 'utf8')) as typeof same;
    } catch {
      // Being written by the holder this very moment: not this activity's retry.
    }
    if (h.workflowId === same.workflowId && h.activityId === same.activityId) {
      createExclusive(path.join(dir, `resumed-${a.activityType}`), JSON.stringify({ pid: process.pid, at: Date.now(), attempt: a.attempt }));
    }
  }
  const armed = existsSync(path.join(dir, 'hold')) ? readFileSync(path.join(dir, 'hold'), 'utf8').split('\n') : [];
  if (!armed.includes(`${a.activityType}@${moment}`)) return undefined;
  if (!createExclusive(held, JSON.stringify({ pid: process.pid, at: Date.now(), moment, attempt: a.attempt, ...same }))) return undefined;
  console.error(`[durable-train] fault injection: holding ${a.activityType} at its ${moment} (attempt ${a.attempt} of ${a.workflowId})`);
  return new Promise<never>(() => undefined);
}
