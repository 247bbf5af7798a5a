/**
 * Who holds a file:// store lock (`.dt-lock-*`, fs-store.ts): the token a lock file holds names its
 * taker's host, PID namespace and pid, so a lock left by a process that died on this machine (a
 * SIGKILL, a crash) is broken at once instead of after the stale limit.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, readlinkSync } from 'node:fs';
import os from 'node:os';
import { CREATE_NOFOLLOW } from './fs-atomic';

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

/**
 * The turn to break a lock: an exclusive file beside it, held for the few milliseconds a break
 * takes. One left by a breaker that died is removed once its holder is provably dead or it is
 * older than a tenth of the stale limit; returns undefined when another breaker has the turn.
 */
export async function takeBreakerLock(breakPath: string, staleLockMs: number): Promise<(() => Promise<void>) | undefined> {
  const token = lockToken();
  try {
    // Beside the lock, in a folder the store checked (fs-atomic.ts); never through a symlink.
    const fh = await fsp.open(breakPath, CREATE_NOFOLLOW, 0o644);
    try {
      await fh.writeFile(token);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const stat = await fsp.lstat(breakPath).catch(() => undefined);
    const holder = await fsp.readFile(breakPath, 'utf8').catch(() => '');
    if (stat && (lockHolderIsDead(holder) || Date.now() - stat.mtimeMs > staleLockMs / 10)) await fsp.rm(breakPath, { force: true, recursive: true });
    return undefined;
  }
  return async () => {
    const content = await fsp.readFile(breakPath, 'utf8').catch(() => undefined);
    if (content === token) await fsp.rm(breakPath, { force: true });
  };
}
