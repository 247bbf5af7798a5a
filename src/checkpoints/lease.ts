/**
 * Fencing: one writer per run. Each training or evaluation attempt takes the run's lease
 * (`<run>/lease.json`) before it writes anything, and checks it is still the holder right before
 * every commit (a checkpoint manifest, `latest.json`, retention). The lease is advanced only by
 * compare-and-swap (`putIfVersion`: GCS generation preconditions; on file:// the store's lock file),
 * and every acquisition gets a fencing token one higher than the last, so a writer that was taken
 * over can tell, and stops before its next commit with a LeaseLostError.
 *
 * There is no expiry: a newer attempt always takes the lease over, whatever the old holder is doing
 * (dead, stuck, or still running after a heartbeat timeout). Which attempt is newer:
 *   - the same activity of the same workflow run: the higher attempt number;
 *   - otherwise the later `scheduledAtMs` (the Temporal server's time this attempt was scheduled,
 *     one clock for every worker); when either side lacks it, the newcomer.
 *   An equal holder (the same attempt acquiring again, e.g. after its trainer restarted) takes a
 *   new token, so its own earlier acquisition is fenced too.
 * A newcomer that is older than the holder (a zombie attempt that only now got going) is refused
 * at once with LeaseLostError: it never takes the lease back.
 *
 * A holder that stops on purpose (cancelled, or its worker shutting down) releases the lease:
 * the record then says so (`releasedAt`), the next acquisition takes it over without fencing
 * anyone, and the holder writes nothing more. The order rules above still apply to a released
 * lease: releasing never lets an older attempt in.
 *
 * What fencing cannot close on an object store without transactions: the moment between a writer's
 * last check and its commit. That window is made harmless by the format, not by the lease: a
 * manifest commits only if absent, and objects are created only if absent (see format.ts), so a
 * step is still written whole by one writer, and the winner of the race is the only manifest.
 */
import { randomBytes } from 'node:crypto';

import { LEASE_KEY } from './layout';
import { PreconditionFailedError, type CheckpointStore } from './store';

export const LEASE_FORMAT = 'durable-train/lease@1';

/** Who writes: a Temporal activity attempt (or a named tool when there is no workflow). */
export interface LeaseHolder {
  readonly workflowId: string;
  readonly workflowRunId: string;
  readonly activityId: string;
  readonly attempt: number;
  /** Server time (ms) this attempt was scheduled (`activityInfo.currentAttemptScheduledTimestampMs`). */
  readonly scheduledAtMs?: number;
}

export interface LeaseRecord {
  readonly format: typeof LEASE_FORMAT;
  /** Fencing token: strictly increasing over the run's life. */
  readonly token: number;
  readonly holder: LeaseHolder;
  /** Random per acquisition: a token alone could repeat if a garbled lease file restarted the count. */
  readonly nonce: string;
  /** Wall-clock time of the acquisition, for people reading the file (never compared). */
  readonly acquiredAt: string;
  /** Set when the holder released the lease (it stopped on purpose and writes nothing more). */
  readonly releasedAt?: string;
}

/** The writer no longer holds the run's lease (or never could take it): it must stop writing. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
  constructor(
    readonly uri: string,
    readonly mine: { readonly token: number | null; readonly holder: LeaseHolder },
    readonly current: LeaseRecord | undefined,
  ) {
    super(
      `Lost the lease on ${uri}: this attempt (${describeHolder(mine.holder)}${mine.token === null ? '' : `, token ${mine.token}`}) ` +
        (current ? `was taken over by ${describeHolder(current.holder)} (token ${current.token})` : 'found the lease gone') +
        '; it stops before writing anything more',
    );
  }
}

export function describeHolder(h: LeaseHolder): string {
  return `workflow ${h.workflowId} run ${h.workflowRunId}, activity ${h.activityId} attempt ${h.attempt}`;
}

function sameActivity(a: LeaseHolder, b: LeaseHolder): boolean {
  return a.workflowId === b.workflowId && a.workflowRunId === b.workflowRunId && a.activityId === b.activityId;
}

/** True when `newcomer` may take the lease from `current` (see the rules at the top). */
export function supersedes(newcomer: LeaseHolder, current: LeaseHolder): boolean {
  if (sameActivity(newcomer, current)) return newcomer.attempt >= current.attempt;
  if (newcomer.scheduledAtMs !== undefined && current.scheduledAtMs !== undefined) return newcomer.scheduledAtMs >= current.scheduledAtMs;
  return true;
}

function parseLease(data: Buffer): LeaseRecord | undefined {
  try {
    const parsed = JSON.parse(data.toString('utf8')) as LeaseRecord;
    return parsed.format === LEASE_FORMAT && Number.isSafeInteger(parsed.token) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** The run's current lease, if any (a garbled lease file reads as none: the next acquisition replaces it). */
export async function readLease(store: CheckpointStore): Promise<LeaseRecord | undefined> {
  const data = await store.get(LEASE_KEY);
  return data ? parseLease(data) : undefined;
}

/** A held lease: check it before each commit. */
export interface Lease {
  readonly token: number;
  readonly holder: LeaseHolder;
  /** Throws LeaseLostError unless this acquisition is still the run's lease. One read of lease.json. */
  assertHeld(): Promise<void>;
  /**
   * No read: throws the LeaseLostError an earlier check of this acquisition met (the attempt's
   * cached answer). For steps that commit nothing; every commit is preceded by assertHeld.
   */
  assertNotLost(): void;
  /** Gives the lease up (see releaseLease); this acquisition writes nothing more. */
  release(): Promise<boolean>;
}

class HeldLease implements Lease {
  constructor(
    private readonly store: CheckpointStore,
    readonly token: number,
    readonly holder: LeaseHolder,
    private readonly nonce: string,
  ) {}

  private lost: LeaseLostError | undefined;

  async assertHeld(): Promise<void> {
    const current = await readLease(this.store);
    // A released lease is no one's: the attempt that gave it up writes nothing more.
    if (current?.token !== this.token || current.nonce !== this.nonce || current.releasedAt !== undefined) {
      this.lost = new LeaseLostError(this.store.uriOf(LEASE_KEY), { token: this.token, holder: this.holder }, current);
      throw this.lost;
    }
  }

  assertNotLost(): void {
    if (this.lost) throw this.lost;
  }

  release(): Promise<boolean> {
    return releaseLease(this.store, this.holder, this.token);
  }
}

const sameAttempt = (a: LeaseHolder, b: LeaseHolder): boolean => sameActivity(a, b) && a.attempt === b.attempt;

/**
 * Marks the run's lease released when `holder` (this very attempt, and `token` when given) still
 * holds it; false when someone else holds it by now (nothing to give back). Compare-and-swap,
 * like every write of the lease.
 */
export async function releaseLease(store: CheckpointStore, holder: LeaseHolder, token?: number, now: () => Date = () => new Date()): Promise<boolean> {
  for (let round = 0; round < 50; round++) {
    const found = await store.getVersioned(LEASE_KEY);
    const current = found ? parseLease(found.data) : undefined;
    if (!found || !current || !sameAttempt(current.holder, holder) || (token !== undefined && current.token !== token)) return false;
    if (current.releasedAt !== undefined) return true;
    const record: LeaseRecord = { ...current, releasedAt: now().toISOString() };
    try {
      await store.putIfVersion(LEASE_KEY, Buffer.from(JSON.stringify(record, null, 1)), found.version);
      return true;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
    }
  }
  throw new Error(`Could not release the lease ${store.uriOf(LEASE_KEY)}: too many concurrent writers`);
}

/**
 * Takes the run's lease for `holder` (compare-and-swap, retried while other writers race), or
 * throws LeaseLostError when a newer attempt holds it.
 */
export async function acquireLease(
  store: CheckpointStore,
  holder: LeaseHolder,
  now: () => Date = () => new Date(),
): Promise<Lease> {
  for (let round = 0; round < 50; round++) {
    const found = await store.getVersioned(LEASE_KEY);
    const current = found ? parseLease(found.data) : undefined;
    if (current && !supersedes(holder, current.holder)) {
      throw new LeaseLostError(store.uriOf(LEASE_KEY), { token: null, holder }, current);
    }
    const token = (current?.token ?? 0) + 1;
    const nonce = randomBytes(8).toString('hex');
    const record: LeaseRecord = { format: LEASE_FORMAT, token, holder, nonce, acquiredAt: now().toISOString() };
    try {
      await store.putIfVersion(LEASE_KEY, Buffer.from(JSON.stringify(record, null, 1)), found?.version);
      return new HeldLease(store, token, holder, nonce);
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      // Someone else moved the lease between our read and our write: read it again and decide again.
    }
  }
  throw new Error(`Could not take the lease ${store.uriOf(LEASE_KEY)}: too many concurrent writers`);
}
