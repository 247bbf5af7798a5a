/**
 * The activity side of fencing and run identity: who holds a run's lease (this activity attempt,
 * from Temporal's activity info) and how the store-level errors become Temporal failures.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { TrainConfig } from '../config/train-config';
import { LeaseLostError, acquireLease, type Lease, type LeaseHolder } from '../checkpoints/lease';
import { RunIdentityMismatchError, checkRunIdentity } from '../checkpoints/run-identity';
import type { CheckpointStore } from '../checkpoints/store';

/** This activity attempt as a lease holder. */
export function activityLeaseHolder(): LeaseHolder {
  const info = Context.current().info;
  return {
    workflowId: info.workflowExecution?.workflowId ?? '(no workflow)',
    workflowRunId: info.workflowExecution?.runId ?? '(no workflow)',
    activityId: info.activityId,
    attempt: info.attempt,
    scheduledAtMs: info.currentAttemptScheduledTimestampMs,
  };
}

/**
 * Runs `fn` and maps fencing and identity errors: a lost lease fails this attempt (retryable: a
 * stale attempt's result is ignored by the server anyway, and a live one takes the lease back);
 * a run folder that belongs to another input fails the workflow's activity for good.
 */
export async function fenced<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof LeaseLostError) throw ApplicationFailure.retryable(err.message, err.name);
    if (err instanceof RunIdentityMismatchError) throw ApplicationFailure.nonRetryable(err.message, err.name);
    throw err;
  }
}

/** Takes the run's lease for this activity attempt. */
export function acquireActivityLease(store: CheckpointStore): Promise<Lease> {
  return fenced(() => acquireLease(store, activityLeaseHolder()));
}

/** Records or checks the run's identity (run.json) before anything trains in its folder. */
export async function checkActivityRunIdentity(store: CheckpointStore, config: TrainConfig): Promise<void> {
  await fenced(() => checkRunIdentity(store, config));
}
