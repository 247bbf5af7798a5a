/**
 * Opens the checkpoint store for a root URI:
 *   file:///abs/path        -> FileCheckpointStore
 *   gs://bucket[/prefix]    -> GcsCheckpointStore
 *   /abs/path, rel/path     -> FileCheckpointStore (relative paths resolve against cwd)
 */
import * as path from 'node:path';

import { FileCheckpointStore, type FileStoreOptions } from './fs-store';
import { GcsCheckpointStore, type GcsStoreOptions } from './gcs-store';
import type { CheckpointStore } from './store';

export const SUPPORTED_SCHEMES = ['file://', 'gs://'] as const;

export interface OpenStoreOptions {
  file?: FileStoreOptions;
  gcs?: GcsStoreOptions;
  /** Base for relative paths. Default process.cwd(). */
  cwd?: string;
}

export function openStore(uri: string, options: OpenStoreOptions = {}): CheckpointStore {
  if (typeof uri !== 'string' || uri.trim() === '') {
    throw new Error(`Checkpoint store URI is empty; use one of ${SUPPORTED_SCHEMES.join(', ')} or a file system path`);
  }
  if (uri.startsWith('gs://')) return new GcsCheckpointStore(uri, options.gcs);
  if (uri.startsWith('file://')) return new FileCheckpointStore(uri, options.file);
  // Any other scheme (s3://, http://, gcs://, file:relative, c:...) is refused rather than taken for a path.
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(uri) && !path.isAbsolute(uri)) {
    throw new Error(
      `Unsupported checkpoint store URI ${uri}: supported are ${SUPPORTED_SCHEMES.map((s) => `${s}...`).join(', ')}, or a file system path`,
    );
  }
  return new FileCheckpointStore(path.resolve(options.cwd ?? process.cwd(), uri), options.file);
}
