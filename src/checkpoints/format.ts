/**
 * The checkpoint format, on top of any CheckpointStore.
 *
 *   <run>/checkpoints/<step, 12 digits>/model.json      tfjs-layers topology + weight specs
 *                                      /weights.bin     model weights (tfjs format)
 *                                      /optimizer.bin   optimizer slots, in optimizer order
 *                                      /state.json      step, epoch, lr, data cursor, RNG, config
 *                                      /manifest.json   SHA-256 of each object, written last
 *                                      /w-<token>-<nonce>/<name>  an object whose canonical name
 *                                                       another writer had taken (see createCheckpointObjects)
 *   <run>/latest.json                   pointer to the newest committed step (compare-and-swap)
 *
 * A checkpoint without a valid manifest does not exist. Objects are never rewritten: they are
 * created only if absent, the manifest too, so a step is written by one writer, whole or not at
 * all. A step that is already committed (and verifies) is left as it is; a committed one that
 * fails its checksums is un-committed and written again. Manifests written before fencing (no
 * `writer`, no per-object `key`) read as before: every object under its canonical name.
 */
import { randomBytes } from 'node:crypto';
import { sha256, sha256Of } from './digest';
import type { Lease, LeaseHolder } from './lease';
import { CHECKPOINTS_PREFIX, LATEST_KEY, MANIFEST, checkpointKey, checkpointObjectKey, stepOfManifestKey, writerDirName } from './layout';
import { byteLength, PreconditionFailedError, type CheckpointStore } from './store';
import { createObjects } from './write-once';
import { recordTime, timed } from './timing';

export const FORMAT = 'durable-train/checkpoint@1';

export interface ManifestEntry {
  readonly sha256: string;
  readonly bytes: number;
  /** Where the object is, relative to the step's folder, when not under its own name. */
  readonly key?: string;
}

export interface Manifest {
  readonly format: typeof FORMAT;
  readonly step: number;
  readonly objects: Readonly<Record<string, ManifestEntry>>;
  /** The lease under which the step was written (absent for checkpoints written without one). */
  readonly writer?: { readonly token: number; readonly holder: LeaseHolder };
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
  readonly manifest: Manifest;
  readonly objects: ReadonlyMap<string, Buffer>;
}

export { sha256 };

const OBJECT_NAME = /^(?:w-\d+-[0-9a-f]+\/)?[A-Za-z0-9._-]+$/;
/** The key of a manifest entry, relative to the run; undefined when the manifest points anywhere else. */
export function manifestObjectKey(step: number, name: string, entry: ManifestEntry): string | undefined {
  const rel = entry.key ?? name;
  return OBJECT_NAME.test(rel) && rel.endsWith(name) ? checkpointObjectKey(step, rel) : undefined;
}


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

/** Options of writeCheckpoint. */
export interface WriteOptions {
  /** Called after each object is stored (fault injection kills the process here). */
  readonly afterObject?: (name: string) => void | Promise<void>;
  /** The writer's lease on the run: checked before the objects and again right before the manifest. */
  readonly lease?: Lease;
}

export interface WriteResult {
  readonly written: boolean;
  readonly key: string;
  readonly manifestSha256: string;
  /**
   * True when the committed checkpoint holds exactly `objects` (ours, or another writer's with equal
   * bytes); false when another writer committed different bytes for this step first, so the caller's
   * memory is not that checkpoint and it must not say it is.
   */
  readonly matches: boolean;
}

/** An object's bytes: one buffer, or chunks (a model's tensors) written in order with writev. */
export type ObjectBytes = Buffer | readonly Buffer[];

function sameObjects(manifest: Manifest, digests: ReadonlyMap<string, string>): boolean {
  const names = Object.keys(manifest.objects);
  return names.length === digests.size && names.every((n) => manifest.objects[n]!.sha256 === digests.get(n));
}

/** True when `there` holds exactly the bytes of `data` (compared chunk by chunk, nothing joined). */
function sameBytes(there: Buffer, data: ObjectBytes): boolean {
  if (Buffer.isBuffer(data)) return there.equals(data);
  let at = 0;
  for (const chunk of data) {
    if (at + chunk.length > there.length || !there.subarray(at, at + chunk.length).equals(chunk)) return false;
    at += chunk.length;
  }
  return at === there.length;
}

/**
 * Creates a checkpoint's objects, never overwriting: each under its canonical name when it is free
 * (or already holds these very bytes, as a killed attempt of the same deterministic step leaves
 * them), else in this writer's own folder. Returns each object's name relative to the step folder.
 * Their folder's fsync is left to the manifest's write (one per checkpoint folder).
 *
 * Why create-only and not "overwrite, then commit": with two writers on a step (a zombie attempt
 * and its retry), an overwrite lets one writer's late object land under the other's committed
 * manifest, a mix that no lease check can rule out on a store without transactions. Created-only
 * objects are immutable, so a manifest names bytes that no one can change afterwards, and each
 * step's objects come from the one writer whose manifest won (committed only if absent too).
 */
async function createCheckpointObjects(
  store: CheckpointStore,
  step: number,
  objects: ReadonlyMap<string, ObjectBytes>,
  writerDir: string,
  afterObject: WriteOptions['afterObject'],
): Promise<Map<string, string>> {
  const names = [...objects.keys()];
  const created = await createObjects(
    store,
    names.map((name) => ({ key: checkpointObjectKey(step, name), data: objects.get(name)! })),
    { syncFolders: false, ...(afterObject && { afterEach: (i: number) => afterObject(names[i]!) }) },
  );
  const stored = new Map(names.map((name) => [name, name]));
  const taken: string[] = [];
  for (const [i, name] of names.entries()) {
    if (created[i]) continue;
    const there = await store.get(checkpointObjectKey(step, name));
    if (!there || !sameBytes(there, objects.get(name)!)) taken.push(name);
  }
  if (taken.length === 0) return stored;
  const own = taken.map((name) => ({ name, key: checkpointObjectKey(step, `${writerDir}/${name}`) }));
  const ownCreated = await createObjects(store, own.map(({ key, name }) => ({ key, data: objects.get(name)! })), { syncFolders: false });
  const clash = own.find((_, i) => !ownCreated[i]);
  if (clash) throw new PreconditionFailedError(store.uriOf(clash.key));
  for (const { name } of own) stored.set(name, `${writerDir}/${name}`);
  return stored;
}

/**
 * Writes a checkpoint: objects first (created, never overwritten), the manifest last and only if
 * absent, then advances `latest.json`. With a lease, a writer that lost it throws LeaseLostError
 * right before the manifest (and before the pointer); before the objects only a loss this attempt
 * already saw is checked (no read: objects without a manifest do not exist). Returns written:
 * false when the step was already committed (by anyone).
 */
export async function writeCheckpoint(
  store: CheckpointStore,
  step: number,
  objects: ReadonlyMap<string, ObjectBytes>,
  options: WriteOptions = {},
): Promise<WriteResult> {
  const { lease } = options;
  const key = checkpointKey(step);
  const manifestKey = checkpointObjectKey(step, MANIFEST);
  // Hashed while the objects are written (the bytes are immutable from here on): a large buffer on
  // libuv's thread pool, a model's chunks on this thread between the writes' turns (digest.ts).
  const hashing = timed('hashMs', async () => new Map(await Promise.all([...objects].map(async ([name, data]) => [name, await sha256Of(data)] as const))));
  hashing.catch(() => undefined); // awaited below; a write failing first must not leave it unhandled
  const written = await timed('writeMs', async () => {
    lease?.assertNotLost();
    const committed = async (): Promise<WriteResult | undefined> => {
      const current = await readCheckpoint(store, step);
      return current.ok ? { written: false, key, manifestSha256: current.checkpoint.manifestSha256, matches: sameObjects(current.checkpoint.manifest, await hashing) } : undefined;
    };
    if (await store.get(manifestKey)) {
      // This step is committed already: by this attempt's own earlier try, or by a newer attempt
      // that took the run over. A zombie must learn it lost here, not train on to its end.
      await lease?.assertHeld();
      const done = await committed();
      if (done) return done;
      // Committed but damaged (a flipped byte, a lost object): it was skipped on load and the step
      // was recomputed. Un-commit it (manifest first), clear the folder, and write it again.
      await store.deletePrefix(manifestKey);
      await store.deletePrefix(`${key}/`);
    }
    const writerDir = writerDirName(lease?.token ?? 0, randomBytes(6).toString('hex'));
    // All objects at once, named in the map's order: a crash leaves a prefix of them (what the
    // kill-during-checkpoint tests look for), and the manifest names only objects already stored.
    const stored = await createCheckpointObjects(store, step, objects, writerDir, options.afterObject);
    const digests = await hashing;
    const entries: Record<string, ManifestEntry> = {};
    for (const [name, data] of objects) {
      const at = stored.get(name)!;
      entries[name] = { sha256: digests.get(name)!, bytes: byteLength(data), ...(at !== name && { key: at }) };
      recordTime('bytes', byteLength(data));
    }
    const manifest: Manifest = { format: FORMAT, step, objects: entries, ...(lease && { writer: { token: lease.token, holder: lease.holder } }) };
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 1));
    await lease?.assertHeld();
    // The manifest's write makes the whole folder durable: one directory fsync for every object in it.
    const objectKeys = [...stored.values()].map((at) => checkpointObjectKey(step, at));
    const [created] = await createObjects(store, [{ key: manifestKey, data: manifestBytes }], { syncWith: objectKeys });
    if (!created) {
      // Another writer committed this step between our check and our commit: theirs stands.
      const done = await committed();
      if (done) return done;
      throw new Error(`Checkpoint ${store.uriOf(key)} was committed by another writer and does not verify`, { cause: new PreconditionFailedError(store.uriOf(manifestKey)) });
    }
    recordTime('bytes', manifestBytes.length);
    return { written: true, key, manifestSha256: sha256(manifestBytes), matches: true } satisfies WriteResult;
  });
  if (written.written) await timed('pointerMs', () => moveLatest(store, { step, key, manifestSha256: written.manifestSha256 }, { lease }));
  return written;
}

/**
 * The one compare-and-swap on `latest.json`, for every writer of the pointer. Only forward: a pointer
 * at a newer step is left alone, and one at the same step too unless `sameStep` is 'replace' (PBT's
 * copy re-commits a step with another manifest). With a lease, the writer's lease is checked right
 * before each swap (a writer that lost it throws LeaseLostError and moves nothing).
 */
export async function moveLatest(store: CheckpointStore, pointer: LatestPointer, options: { readonly lease?: Lease | undefined; readonly sameStep?: 'keep' | 'replace' } = {}): Promise<void> {
  const { lease, sameStep = 'keep' } = options;
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await store.getVersioned(LATEST_KEY);
    if (current) {
      const parsed = JSON.parse(current.data.toString('utf8')) as LatestPointer;
      if (parsed.step > pointer.step) return;
      if (parsed.step === pointer.step && (sameStep === 'keep' || parsed.manifestSha256 === pointer.manifestSha256)) return;
    }
    await lease?.assertHeld();
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
  if (typeof manifest !== 'object' || manifest === null || typeof manifest.objects !== 'object' || manifest.objects === null) {
    return { ok: false, reason: 'manifest has no objects' };
  }
  if (manifest.format !== FORMAT || manifest.step !== step) return { ok: false, reason: 'manifest does not match its step' };
  const objects = new Map<string, Buffer>();
  for (const [name, expected] of Object.entries(manifest.objects)) {
    const objectKey = manifestObjectKey(step, name, expected);
    if (objectKey === undefined) return { ok: false, reason: `${name} has an invalid key in the manifest` };
    const data = await store.get(objectKey);
    if (!data) return { ok: false, reason: `${name} is missing` };
    if (data.length !== expected.bytes || sha256(data) !== expected.sha256) {
      return { ok: false, reason: `${name} fails its checksum (${data.length} bytes, expected ${expected.bytes})` };
    }
    objects.set(name, data);
  }
  return { ok: true, checkpoint: { step, key, uri: store.uriOf(key), manifestSha256: sha256(manifestBytes), manifest, objects } };
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
