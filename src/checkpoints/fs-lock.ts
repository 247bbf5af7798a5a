/**
 * Who holds a file:// store lock (`.dt-lock-*`, fs-store.ts): the token a lock file holds names its
 * taker's host, PID namespace and pid, so a lock left by a process that died on this machine (a
 * SIGKILL, a crash) is broken at once instead of after the stale limit.
 */
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import os from 'node:os';

/**
 * What a lock file holds: who took it (host, PID namespace, pid) and a random part, so that a lock
 * left by a process that died (SIGKILL, a crash) on this machine is broken at once instead of
 * after `staleLockMs`, and a release only ever removes its own lock.
 */
interface LockHolder {
  readonly host: string;
  /** The PID namespace (`/proc/self/ns/pid`): containers sharing a volume and a host name differ here. */
  readonly pidNs: string;
  readonly pid: number;
  readonly nonce: string;
}

let ownPidNs: string | undefined;
function pidNamespace(): string {
  if (ownPidNs === undefined) {
    try {
      ownPidNs = readlinkSync('/proc/self/ns/pid');
    } catch {
      ownPidNs = ''; // not Linux: a lock is then judged by its age only
    }
  }
  return ownPidNs;
}

export function lockToken(): string {
  const holder: LockHolder = { host: os.hostname(), pidNs: pidNamespace(), pid: process.pid, nonce: randomBytes(8).toString('hex') };
  return JSON.stringify(holder);
}

/**
 * True only when the lock's holder ran on this host, in this PID namespace, and its pid no longer
 * exists. Anything else (another machine, an unreadable or empty token, a pid reused by a new
 * process) counts as alive: the lock then goes stale by age, as before.
 */
export function lockHolderIsDead(content: string): boolean {
  let holder: Partial<LockHolder>;
  try {
    holder = JSON.parse(content) as Partial<LockHolder>;
  } catch {
    return false;
  }
  const ns = pidNamespace();
  if (ns === '' || holder.host !== os.hostname() || holder.pidNs !== ns) return false;
  if (!Number.isSafeInteger(holder.pid) || holder.pid! <= 0 || holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid!, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
