/**
 * The checkpoint store: a flat object store addressed by keys relative to a root URI.
 * Two implementations: `file:///path` (the embedded default) and `gs://bucket/prefix`.
 * Everything above this interface (format, manifests, retention) is store-agnostic.
 */

/** Raised when a conditional write loses a race: someone else changed the object first. */
export class PreconditionFailedError extends Error {
  override readonly name = 'PreconditionFailedError';
  constructor(readonly uri: string) {
    super(`Precondition failed writing ${uri}: it was changed by another writer`);
  }
}

/** Raised for failures that retrying cannot fix (no permission, no such bucket). */
export class PermanentStoreError extends Error {
  override readonly name = 'PermanentStoreError';
  constructor(readonly uri: string, message: string, options?: { cause?: unknown }) {
    super(`${message} (${uri})`, options);
  }
}

/** An object read together with the version token used for compare-and-swap. */
export interface VersionedObject {
  readonly data: Buffer;
  /** Opaque version: the GCS generation, or a content hash for the file store. */
  readonly version: string;
}

/** One object of a batch of create-only writes: its bytes as one buffer, or as chunks written in order (writev). */
export interface NewObject {
  readonly key: string;
  readonly data: Buffer | readonly Buffer[];
}

export interface CreateObjectsOptions {
  /**
   * Called for each object once it is created (true) or found taken (false): in the objects' order
   * on file:// (a kill there leaves a prefix of them), as each upload ends on gs://.
   */
  readonly afterEach?: (index: number, created: boolean) => void | Promise<void>;
  /**
   * false: the objects' bytes are durable when the call returns, their names may not be until a later
   * call names them in `syncWith` (file://: one directory fsync per checkpoint folder). Default true.
   */
  readonly syncFolders?: boolean;
  /** Keys created earlier with `syncFolders: false` whose names this call makes durable too. */
  readonly syncWith?: readonly string[];
}

/** Bytes of an object given as one buffer or as chunks. */
export function byteLength(data: Buffer | readonly Buffer[]): number {
  return Buffer.isBuffer(data) ? data.length : data.reduce((n, c) => n + c.length, 0);
}

/** One buffer of an object given as chunks (a copy only when there are several). */
export function joined(data: Buffer | readonly Buffer[]): Buffer {
  return Buffer.isBuffer(data) ? data : data.length === 1 ? data[0]! : Buffer.concat(data as Buffer[]);
}

export interface CheckpointStore {
  /** The root URI this store writes under, without a trailing slash. */
  readonly uri: string;
  /** Full URI of a key, for messages and results. */
  uriOf(key: string): string;
  put(key: string, data: Buffer): Promise<void>;
  /** Returns undefined when the object does not exist. */
  get(key: string): Promise<Buffer | undefined>;
  getVersioned(key: string): Promise<VersionedObject | undefined>;
  /**
   * Writes only if the object's current version is `expectedVersion`
   * (undefined: only if the object does not exist). Throws PreconditionFailedError otherwise.
   */
  putIfVersion(key: string, data: Buffer, expectedVersion: string | undefined): Promise<void>;
  /**
   * Creates each object only if absent, as `putIfVersion(key, data, undefined)` does, in one batch:
   * true where created, false where an object was there already (its bytes are not compared).
   * file:// stages every object in a temporary file (writev, fsync) at once and links them in order,
   * gs:// uploads them in parallel (bounded), each with `ifGenerationMatch: 0`. Stores without it
   * are written one putIfVersion at a time (createObjects in format.ts).
   */
  createObjects?(objects: readonly NewObject[], options?: CreateObjectsOptions): Promise<boolean[]>;
  /** Keys (relative to the root) that start with `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  /** Deletes every object whose key starts with `prefix`. Missing objects are not an error. */
  deletePrefix(prefix: string): Promise<void>;
  /**
   * Removes the store's own leftovers of killed writes (temporary files, abandoned lock files)
   * older than `olderThanMs`; returns what it removed, as paths relative to the root. Stores that
   * keep no such files (GCS: uploads are single requests) do not implement it.
   */
  collectInternalLeftovers?(olderThanMs: number): Promise<string[]>;
}
