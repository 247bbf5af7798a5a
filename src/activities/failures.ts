/**
 * How errors become Temporal failures in activities, in one place: storeCall (store-and-trainer.ts),
 * which every activity's store and trainer work runs in, throws what activityFailureOf returns. The
 * trainer's errors cross the process boundary with a `nonRetryable` flag (training/trainer-errors.ts)
 * and arrive as NonRetryableTrainingError.
 *
 *   retryable, type kept   LeaseLostError: this attempt lost the run's lease (a newer attempt writes
 *                          now); the server ignores a stale attempt's result anyway.
 *   non-retryable          what the input or the stored data decides, so a retry fails the same way
 *                          (the list is training/permanent-errors.ts, shared with the trainer).
 *   anything else          unchanged: Temporal retries it under the activity's retry policy.
 */
import { ApplicationFailure } from '@temporalio/common';
import { LeaseLostError } from '../checkpoints/lease';
import type { CheckpointStore } from '../checkpoints/store';
import { isPermanentError } from '../training/permanent-errors';

/** The Temporal failure for `err` (see the table at the top), or `err` itself. */
export function activityFailureOf(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof LeaseLostError) return ApplicationFailure.retryable(err.message, err.name);
  if (isPermanentError(err)) return ApplicationFailure.nonRetryable((err as Error).message, (err as Error).name);
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

/** An opener whose refusal (a URI outside the worker's allow-list) fails the activity non-retryably, type UriRefused. */
export function activityOpener(open: (uri: string) => CheckpointStore): (uri: string) => CheckpointStore {
  return (uri) => {
    try {
      return open(uri);
    } catch (err) {
      throw activityFailureOf(err);
    }
  };
}
