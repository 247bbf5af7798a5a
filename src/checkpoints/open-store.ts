/**
 * Opens the checkpoint store for a root URI:
 *   file:///abs/path        -> FileCheckpointStore
 *   gs://bucket[/prefix]    -> GcsCheckpointStore
 *   /abs/path, rel/path     -> FileCheckpointStore (relative paths resolve against cwd)
 */
import * as path from 'node:path';

import { FileCheckpointStore, type FileStoreOptions } from './fs-store';
import { GcsCheckpointStore, type GcsStoreOptions } from './gcs-store';
import { PermanentStoreError, type CheckpointStore } from './store';
import { ALLOWED_URIS_ENV, AllowList } from '../trust/allow-list';

export const SUPPORTED_SCHEMES = ['file://', 'gs://'] as const;

export interface OpenStoreOptions {
  file?: FileStoreOptions;
  gcs?: GcsStoreOptions;
  /** Base for relative paths. Default process.cwd(). */
  cwd?: string;
}

/** A URI that cannot name a store is an input error: PermanentStoreError, so no attempt retries it. */
export function openStore(uri: string, options: OpenStoreOptions = {}): CheckpointStore {
  if (typeof uri !== 'string' || uri.trim() === '') {
    throw new PermanentStoreError(String(uri), `Checkpoint store URI is empty; use one of ${SUPPORTED_SCHEMES.join(', ')} or a file system path`);
  }
  try {
    if (uri.startsWith('gs://')) return new GcsCheckpointStore(uri, options.gcs);
    if (uri.startsWith('file://')) return new FileCheckpointStore(uri, options.file);
  } catch (err) {
    throw new PermanentStoreError(uri, `Invalid store URI: ${(err as Error).message}`, { cause: err });
  }
  // Any other scheme (s3://, http://, gcs://, file:relative, c:...) is refused rather than taken for a path.
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(uri) && !path.isAbsolute(uri)) {
    throw new PermanentStoreError(
      uri,
      `Unsupported checkpoint store URI: supported are ${SUPPORTED_SCHEMES.map((s) => `${s}...`).join(', ')}, or a file system path`,
    );
  }
  return new FileCheckpointStore(path.resolve(options.cwd ?? process.cwd(), uri), options.file);
}

/**
 * An opener that refuses every URI outside `allow` (non-retryable UriRefusedError) before the
 * store is even built: the last line of defence behind the check at workflow start, so no code
 * path of the worker or the trainer reads or writes outside the worker's allow-list.
 */
export function guardedOpenStore(allow: AllowList, open: (uri: string) => CheckpointStore = (uri) => openStore(uri)): (uri: string) => CheckpointStore {
  return (uri) => {
    allow.assert('store URI', uri);
    return open(uri);
  };
}

let fromEnv: { text: string | undefined; allow: AllowList } | undefined;

/** This process's list from `DT_ALLOWED_URIS` (the trainer's is set by the worker); unset allows nothing. */
function envAllowList(): AllowList {
  const text = process.env[ALLOWED_URIS_ENV];
  if (fromEnv === undefined || fromEnv.text !== text) fromEnv = { text, allow: AllowList.fromEnv() };
  return fromEnv.allow;
}

/** openStore guarded by this process's `DT_ALLOWED_URIS`. */
export function openAllowedStore(uri: string): CheckpointStore {
  return guardedOpenStore(envAllowList())(uri);
}

/**
 * Throws UriRefusedError unless `uri` is allowed by this process's `DT_ALLOWED_URIS`: for reads
 * that do not go through a store (a local SavedModel folder) and for a file read as a key of its
 * folder's store (the file itself may be a symlink that leads elsewhere).
 */
export function assertAllowedUri(what: string, uri: string): void {
  envAllowList().assert(what, uri);
}
