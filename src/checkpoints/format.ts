/**
 * The checkpoint format, on top of any CheckpointStore.
 *
 *   <run>/checkpoints/<step, 12 digits>/model.json      tfjs-layers topology + weight specs
 *                                      /weights.bin     model weights (tfjs format)
 *                                      /optimizer.bin   optimizer slots, in optimizer order
 *                                      /state.json      step, epoch, lr, data cursor, RNG, config
 *                                      /manifest.json   SHA-256 of each object, written last
 *   <run>/latest.json                   pointer to the newest committed step (compare-and-swap)
 *
 * A checkpoint without a valid manifest does not exist. Objects are never rewritten: a step
 * that is already committed (and verifies) is left as it is; a committed one that fails its
 * checksums is un-committed and written again.
 */
import { sha256 } from './digest';
import { CHECKPOINTS_PREFIX, LATEST_KEY, MANIFEST, checkpointKey, checkpointObjectKey, stepOfManifestKey } from './layout';
import { PreconditionFailedError, type CheckpointStore } from './store';

export const FORMAT = 'durable-train/checkpoint@1';

export interface Manifest {
  readonly format: typeof FORMAT;
  readonly step: number;
  readonly objects: Readonly<Record<string, { readonly sha256: string; readonly bytes: number }>>;
}

export interface LatestPointer {
  readonly step: number;
  readonly key: string;
  readonly manifestSha256: string;
}

export interface LoadedCheckpoint {
  readonly step: number;
  readonly key: string;
  readonly uri: string;
  readonly manifestSha256: string;
  readonly objects: ReadonlyMap<string, Buffer>;
}

export { sha256 };

/** Steps that have a manifest, ascending (their objects are not verified here). */
export async function listCheckpointSteps(store: CheckpointStore): Promise<number[]> {
  const keys = await store.list(CHECKPOINTS_PREFIX);
  const steps = new Set<number>();
  for (const key of keys) {
    const step = stepOfManifestKey(key);
    if (step !== undefined) steps.add(step);
  }
  return [...steps].sort((a, b) => a - b);
}

/**
 * Writes a checkpoint: objects first, the manifest last, then advances `latest.json`.
 * Returns written: false (and writes nothing) when this step is already committed and verifies.
 */
export async function writeCheckpoint(
  store: CheckpointStore,
  step: number,
  objects: ReadonlyMap<string, Buffer>,
  hooks: { afterObject?: (name: string) => void | Promise<void> } = {},
): Promise<{ written: boolean; key: string; manifestSha256: string }> {
  const key = checkpointKey(step);
  const existing = await store.get(checkpointObjectKey(step, MANIFEST));
  if (existing) {
    const current = await readCheckpoint(store, step);
    if (current.ok) return { written: false, key, manifestSha256: current.checkpoint.manifestSha256 };
    // Committed but damaged (a flipped byte, a lost object): it was skipped on load and the step
    // was recomputed. Un-commit it (manifest first) and write it again, or it stays unusable.
    await store.deletePrefix(checkpointObjectKey(step, MANIFEST));
  }
  const entries: Record<string, { sha256: string; bytes: number }> = {};
  for (const [name, data] of objects) {
    await store.put(checkpointObjectKey(step, name), data);
    await hooks.afterObject?.(name);
    entries[name] = { sha256: sha256(data), bytes: data.length };
  }
  const manifest: Manifest = { format: FORMAT, step, objects: entries };
  const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 1));
  await store.put(checkpointObjectKey(step, MANIFEST), manifestBytes);
  const manifestSha256 = sha256(manifestBytes);
  await advanceLatest(store, { step, key, manifestSha256 });
  return { written: true, key, manifestSha256 };
}

/** Moves `latest.json` forward to `pointer` unless it already points at a newer step. */
export async function advanceLatest(store: CheckpointStore, pointer: LatestPointer): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await store.getVersioned(LATEST_KEY);
    if (current) {
      const parsed = JSON.parse(current.data.toString('utf8')) as LatestPointer;
      if (parsed.step >= pointer.step) return;
    }
    try {
      await store.putIfVersion(LATEST_KEY, Buffer.from(JSON.stringify(pointer)), current?.version);
      return;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      // Another writer moved it first: read again and decide again.
    }
  }
  throw new Error(`Could not update ${store.uriOf(LATEST_KEY)}: too many concurrent writers`);
}

export type LoadLog = (message: string) => void;

/** Reads and verifies one checkpoint; returns why it is unusable instead of throwing. */
export async function readCheckpoint(
  store: CheckpointStore,
  step: number,
): Promise<{ ok: true; checkpoint: LoadedCheckpoint } | { ok: false; reason: string }> {
  const key = checkpointKey(step);
  const manifestBytes = await store.get(checkpointObjectKey(step, MANIFEST));
  if (!manifestBytes) return { ok: false, reason: 'no manifest' };
  let manifest: Manifest;
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
  } catch {
    return { ok: false, reason: 'manifest is not valid JSON' };
  }
  if (manifest.format !== FORMAT || manifest.step !== step) return { ok: false, reason: 'manifest does not match its step' };
  const objects = new Map<string, Buffer>();
  for (const [name, expected] of Object.entries(manifest.objects)) {
    const data = await store.get(checkpointObjectKey(step, name));
    if (!data) return { ok: false, reason: `${name} is missing` };
    if (data.length !== expected.bytes || sha256(data) !== expected.sha256) {
      return { ok: false, reason: `${name} fails its checksum (${data.length} bytes, expected ${expected.bytes})` };
    }
    objects.set(name, data);
  }
  return { ok: true, checkpoint: { step, key, uri: store.uriOf(key), manifestSha256: sha256(manifestBytes), objects } };
}

/**
 * The newest checkpoint at or below `maxStep` whose objects all verify. A damaged one is
 * skipped with a log line, and the one before it is used.
 */
export async function loadLatestCheckpoint(
  store: CheckpointStore,
  maxStep: number,
  log: LoadLog = (m) => console.warn(m),
): Promise<LoadedCheckpoint | undefined> {
  const steps = (await listCheckpointSteps(store)).filter((s) => s <= maxStep).reverse();
  for (const step of steps) {
    const result = await readCheckpoint(store, step);
    if (result.ok) return result.checkpoint;
    log(`[durable-train] checkpoint ${store.uriOf(checkpointKey(step))} is unusable (${result.reason}); falling back to the previous one`);
  }
  return undefined;
}

/**
 * Retention: keeps the newest `keepLast` committed checkpoints and every step in `protect`
 * (the best). Only ever deletes steps older than the newest committed one.
 */
export async function applyRetention(
  store: CheckpointStore,
  keepLast: number,
  protect: readonly number[],
): Promise<number[]> {
  const steps = await listCheckpointSteps(store);
  const keep = new Set([...steps.slice(-Math.max(1, keepLast)), ...protect]);
  const newest = steps[steps.length - 1];
  const deleted: number[] = [];
  for (const step of steps) {
    if (keep.has(step) || newest === undefined || step >= newest) continue;
    // Manifest first: from that moment the checkpoint no longer exists, even if the rest lingers.
    await store.deletePrefix(checkpointObjectKey(step, MANIFEST));
    await store.deletePrefix(`${checkpointKey(step)}/`);
    deleted.push(step);
  }
  return deleted;
}
