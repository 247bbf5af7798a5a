/**
 * Create-only writes, in two meanings, each with one name:
 *
 *   writeOnce(store, key, data)     the object is `data` afterwards: created now, or already these very
 *                                   bytes (a retried attempt); different bytes there throw
 *                                   WouldOverwriteError (nothing a user saved is overwritten).
 *   createOrRead(store, key, data)  the first writer wins: creates `key`, or returns the bytes another
 *                                   writer created first (used where two attempts may race to record
 *                                   the same fact and the first record must stand).
 *
 * Both are one create-only put (`putIfVersion(key, data, undefined)`: an atomic create-if-absent on
 * file:// and a `ifGenerationMatch: 0` upload on gs://), so two writers cannot both believe they
 * created the object.
 */
import { sha256 } from './digest';
import { PreconditionFailedError, type CheckpointStore, type CreateObjectsOptions, type NewObject } from './store';

/**
 * Creates each object only if absent (true where created): the store's own batch (one folder sync,
 * parallel uploads) where it has one, else one create-only putIfVersion after the other.
 */
export async function createObjects(store: CheckpointStore, objects: readonly NewObject[], options: CreateObjectsOptions = {}): Promise<boolean[]> {
  if (store.createObjects) return store.createObjects(objects, options);
  const created: boolean[] = [];
  for (const [i, o] of objects.entries()) {
    try {
      await store.putIfVersion(o.key, Buffer.isBuffer(o.data) ? o.data : Buffer.concat(o.data as Buffer[]), undefined);
      created.push(true);
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      created.push(false);
    }
    await options.afterEach?.(i, created[i]!);
  }
  return created;
}

/** A create-only object holds other bytes than a writer meant to write: an input reuses someone's key. */
export class WouldOverwriteError extends Error {
  override readonly name = 'WouldOverwrite';
  constructor(
    readonly uri: string,
    what = 'different data',
  ) {
    super(`Refusing to overwrite ${uri}: it holds ${what}`);
  }
}

/** Creates `key` with `data`, or finds these very bytes there; other bytes throw WouldOverwriteError. */
export async function writeOnce(store: CheckpointStore, key: string, data: Buffer, what?: string): Promise<'created' | 'same'> {
  try {
    await store.putIfVersion(key, data, undefined);
    return 'created';
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
    const there = await store.get(key);
    if (there && (there.length === data.length && sha256(there) === sha256(data))) return 'same';
    throw new WouldOverwriteError(store.uriOf(key), what);
  }
}

/** Creates `key` with `data` unless an object is there; returns the bytes that stand (the first writer's). */
export async function createOrRead(store: CheckpointStore, key: string, data: Buffer): Promise<Buffer> {
  try {
    await store.putIfVersion(key, data, undefined);
    return data;
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
    const there = await store.get(key);
    // Created and deleted again between our put and our read (retention): the caller's attempt retries.
    if (!there) throw err;
    return there;
  }
}
