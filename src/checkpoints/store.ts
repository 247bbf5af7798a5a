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
