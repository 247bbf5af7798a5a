/**
 * Retention and garbage collection of a run's checkpoints. Both delete, so both run only for the
 * run's lease holder (checked before every deletion: a stale evaluation that lost its lease never
 * deletes with its out-of-date view), and both delete nothing a run can still need:
 *
 *   - the newest checkpoint whose checksums verify (the one a retry resumes from), and every
 *     damaged one above it (a retry recomputes and rewrites those steps);
 *   - the `keepLast` newest checkpoints that VERIFY: a damaged one does not count, so with
 *     keepLast 1 a flipped byte in the newest keeps the good one before it;
 *   - every protected step: the step being evaluated or exported (the one an attempt is loading:
 *     under the lease, the only loads are the holder's own, and it passes their steps here) and
 *     the step the run will export (early stopping's own best, see src/workflows/protected-steps.ts).
 */
import { listCheckpointSteps, manifestObjectKey, readCheckpoint, type LoadLog, type Manifest } from './format';
import type { Lease } from './lease';
import { CHECKPOINTS_PREFIX, MANIFEST, checkpointKey, checkpointObjectKey, parseCheckpointObjectKey } from './layout';
import type { CheckpointStore } from './store';

export interface RetentionOptions {
  /** The caller's lease: retention stops with LeaseLostError as soon as it is lost. */
  readonly lease?: Lease;
  /** The store's own temporary and lock files older than this are collected. Default 10 minutes. */
  readonly leftoverAgeMs?: number;
  readonly log?: LoadLog;
}

/**
 * Keeps the newest `keepLast` verified checkpoints, the newest verified one and every step in
 * `protect`; deletes other committed steps below the newest verified one, then collects leftovers.
 * Returns the deleted steps. Deletes nothing while no checkpoint verifies.
 */
export async function applyRetention(
  store: CheckpointStore,
  keepLast: number,
  protect: readonly number[],
  options: RetentionOptions = {},
): Promise<number[]> {
  const { lease } = options;
  await lease?.assertHeld();
  const steps = await listCheckpointSteps(store);
  const verified: number[] = [];
  for (let i = steps.length - 1; i >= 0 && verified.length < Math.max(1, keepLast); i--) {
    const step = steps[i]!;
    const read = await readCheckpoint(store, step);
    if (read.ok) verified.push(step);
    else options.log?.(`[durable-train] retention: ${store.uriOf(checkpointKey(step))} does not verify (${read.reason}); it does not count as kept`);
  }
  const newestVerified = verified[0];
  const deleted: number[] = [];
  if (newestVerified !== undefined) {
    const keep = new Set([...verified, ...protect]);
    for (const step of steps) {
      if (step >= newestVerified || keep.has(step)) continue;
      await lease?.assertHeld();
      // Manifest first: from that moment the checkpoint no longer exists, even if the rest lingers.
      await store.deletePrefix(checkpointObjectKey(step, MANIFEST));
      await store.deletePrefix(`${checkpointKey(step)}/`);
      deleted.push(step);
    }
  }
  await collectLeftovers(store, options);
  return deleted;
}

/**
 * Removes what killed or losing writers left behind, and returns the removed keys:
 *   - step folders without a manifest below the newest committed step (a torn write that its
 *     retry has long passed; folders above it may be a write in progress and are left alone);
 *   - objects inside a committed step that its manifest does not name (a losing writer's copies);
 *   - the store's own temporary and stale lock files (file store), older than `leftoverAgeMs`.
 */
export async function collectLeftovers(store: CheckpointStore, options: RetentionOptions = {}): Promise<string[]> {
  const { lease } = options;
  await lease?.assertHeld();
  const byStep = new Map<number, string[]>();
  for (const key of await store.list(CHECKPOINTS_PREFIX)) {
    const parsed = parseCheckpointObjectKey(key);
    if (parsed) byStep.set(parsed.step, [...(byStep.get(parsed.step) ?? []), key]);
  }
  const committed = [...byStep].filter(([step, keys]) => keys.includes(checkpointObjectKey(step, MANIFEST))).map(([step]) => step);
  const newestCommitted = Math.max(-1, ...committed);
  const removed: string[] = [];
  for (const [step, keys] of byStep) {
    let unneeded: string[];
    if (!committed.includes(step)) {
      unneeded = step < newestCommitted ? keys : [];
    } else {
      const named = await namedObjects(store, step);
      unneeded = named ? keys.filter((k) => k !== checkpointObjectKey(step, MANIFEST) && !named.has(k)) : [];
    }
    for (const key of unneeded) {
      await lease?.assertHeld();
      await store.deletePrefix(key);
      removed.push(key);
    }
  }
  const internal = (await store.collectInternalLeftovers?.(options.leftoverAgeMs ?? 10 * 60_000)) ?? [];
  return [...removed, ...internal];
}

/** The keys a committed step's manifest names; undefined when the manifest cannot be read (then nothing is touched). */
async function namedObjects(store: CheckpointStore, step: number): Promise<Set<string> | undefined> {
  const bytes = await store.get(checkpointObjectKey(step, MANIFEST));
  if (!bytes) return undefined;
  try {
    const manifest = JSON.parse(bytes.toString('utf8')) as Manifest;
    const keys = new Set<string>();
    for (const [name, entry] of Object.entries(manifest.objects)) {
      const key = manifestObjectKey(step, name, entry);
      if (key === undefined) return undefined;
      keys.add(key);
    }
    return keys;
  } catch {
    return undefined;
  }
}
