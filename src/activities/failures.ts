/**
 * How errors from the store and the checkpoint layer become Temporal failures in activities: one
 * table, used by storeCall (store-and-trainer.ts), which every activity's store work runs in. The trainer's errors cross
 * the process boundary by name (training/protocol.ts serializeError → trainer-client.ts) and land
 * here too as NonRetryableTrainingError.
 *
 *   retryable, type kept   LeaseLostError: this attempt lost the run's lease (a newer attempt writes
 *                          now); the server ignores a stale attempt's result anyway.
 *   non-retryable          what the input or the stored data decides, so a retry fails the same way:
 *                          a permanent store error (401/403, no bucket, a refused write), a run or
 *                          search folder that belongs to another input or workflow, a folder inside
 *                          another's, a create-only object with other bytes, a trainer error marked
 *                          non-retryable, a URI outside the worker's allow-list.
 *   anything else          unchanged: Temporal retries it under the activity's retry policy.
 */
import { ApplicationFailure } from '@temporalio/common';
import { NestedFolderError } from '../checkpoints/folder-owners';
import { LeaseLostError } from '../checkpoints/lease';
import { RunIdentityMismatchError } from '../checkpoints/run-identity';
import { NotSearchOwnerError, SearchIdentityMismatchError, SearchOwnersFullError } from '../checkpoints/search-identity';
import { PermanentStoreError } from '../checkpoints/store';
import { WouldOverwriteError } from '../checkpoints/write-once';
import { NonRetryableTrainingError } from '../training/protocol';
import { UriRefusedError } from '../trust/allow-list';

const NON_RETRYABLE: ReadonlyArray<abstract new (...args: never[]) => Error> = [
  PermanentStoreError,
  RunIdentityMismatchError,
  SearchIdentityMismatchError,
  NestedFolderError,
  NotSearchOwnerError,
  SearchOwnersFullError,
  WouldOverwriteError,
  NonRetryableTrainingError,
  UriRefusedError,
];

/** The Temporal failure for `err` (see the table at the top), or `err` itself. */
export function activityFailureOf(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof LeaseLostError) return ApplicationFailure.retryable(err.message, err.name);
  if (NON_RETRYABLE.some((type) => err instanceof type)) {
    const e = err as Error;
    return ApplicationFailure.nonRetryable(e.message, e.name);
  }
  return err;
}

/** Runs `fn`, throwing what it throws as activityFailureOf maps it. */
export async function asActivityFailures<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw activityFailureOf(err);
  }
}
