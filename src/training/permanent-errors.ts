/**
 * Errors a retry would meet again: the input or the stored data decided them. One list for both
 * sides of the trainer's IPC channel: the trainer marks them `nonRetryable` when it sends them
 * (trainer-errors.ts), the worker rebuilds them as NonRetryableTrainingError, and every activity
 * turns them into non-retryable Temporal failures (activities/failures.ts, behind storeCall).
 */
import { NestedFolderError } from '../checkpoints/folder-owners';
import { RunIdentityMismatchError } from '../checkpoints/run-identity';
import { NotSearchOwnerError, SearchIdentityMismatchError, SearchOwnersFullError } from '../checkpoints/search-identity';
import { PermanentStoreError } from '../checkpoints/store';
import { WouldOverwriteError } from '../checkpoints/write-once';
import { UriRefusedError } from '../trust/allow-list';
import { NonRetryableTrainingError } from './protocol';

/**
 * A permanent store error (401/403, no bucket, a refused write); a run or search folder that belongs
 * to another input or workflow, or a folder inside another's; a create-only object holding other
 * bytes; a URI outside the worker's allow-list; a trainer error already marked non-retryable.
 */
const PERMANENT: ReadonlyArray<abstract new (...args: never[]) => Error> = [
  PermanentStoreError,
  RunIdentityMismatchError,
  SearchIdentityMismatchError,
  NestedFolderError,
  NotSearchOwnerError,
  SearchOwnersFullError,
  WouldOverwriteError,
  UriRefusedError,
  NonRetryableTrainingError,
];

export function isPermanentError(err: unknown): boolean {
  return PERMANENT.some((type) => err instanceof type);
}
