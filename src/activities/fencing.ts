/**
 * The activity side of fencing and run identity: who holds a run's lease (this activity attempt,
 * from Temporal's activity info), and the identity checks of a run folder. Errors become Temporal
 * failures in storeCall (failures.ts).
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { TrainConfig } from '../config/train-config';
import { acquireLease, type Lease, type LeaseHolder } from '../checkpoints/lease';
import { assertNotNested, type AncestorOpener } from '../checkpoints/folder-owners';
import { checkRunIdentity, verifyRunIdentity } from '../checkpoints/run-identity';
import type { CheckpointStore } from '../checkpoints/store';
import { SHARDED_DATASET } from '../config/sharded-data';
import { NonRetryableTrainingError } from '../training/protocol';
import { UriRefusedError } from '../trust/allow-list';
import { storeCall } from './store-and-trainer';

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

/** Takes the run's lease for this activity attempt. */
export function acquireActivityLease(store: CheckpointStore): Promise<Lease> {
  return storeCall(() => acquireLease(store, activityLeaseHolder()));
}

/**
 * The ancestor opener of the nesting check (folder-owners.ts) for an activity's store opener: the
 * walk up stops at the first folder the worker's allow-list refuses (the guarded opener's UriRefused).
 */
export function withinAllowList(openStore: (uri: string) => CheckpointStore): AncestorOpener {
  return (uri) => {
    try {
      return openStore(uri);
    } catch (err) {
      if (err instanceof ApplicationFailure && err.type === 'UriRefused') return undefined;
      throw err;
    }
  };
}

/** Who claims a run folder: how to open the folders above it, and the trainModel's parent workflow (a search's trial). */
export interface RunClaim {
  readonly open: AncestorOpener;
  readonly parentWorkflowId?: string | undefined;
  /** The trainModel's own workflow id (a search's trial is `<search>/trial-<n>`). */
  readonly workflowId?: string | undefined;
  /**
   * Lists a streamed training set's shards (data/identity.ts) for the run.json this claim may
   * create: the fingerprint then pins them. Asked only when the folder has no run.json yet.
   */
  readonly datasetIdentity?: ((config: TrainConfig) => Promise<unknown>) | undefined;
}

/**
 * Records or checks the run's identity (run.json) before anything is written to its folder; with
 * `claim`, a folder claimed for the first time must not be inside another's (folder-owners.ts).
 */
export async function checkActivityRunIdentity(store: CheckpointStore, config: TrainConfig, claim?: RunClaim): Promise<void> {
  const beforeClaim = claim && (() => assertNotNested('run', store, claim.open, { parentWorkflowId: claim.parentWorkflowId, workflowId: claim.workflowId }));
  const list = claim?.datasetIdentity;
  const datasetIdentity = list && config.data.train.name === SHARDED_DATASET ? () => listedDataset(list, config) : undefined;
  await storeCall(() => checkRunIdentity(store, config, undefined, undefined, { ...(beforeClaim && { beforeClaim }), ...(datasetIdentity && { datasetIdentity }) }));
}

/** The shards as listed; what the input got wrong (an empty glob, a URI outside the allow-list) fails the run, as it would in the trainer. */
async function listedDataset(list: (config: TrainConfig) => Promise<unknown>, config: TrainConfig): Promise<unknown> {
  try {
    return await list(config);
  } catch (err) {
    if (err instanceof NonRetryableTrainingError) throw ApplicationFailure.nonRetryable(err.message, err.name);
    if (err instanceof UriRefusedError) throw ApplicationFailure.nonRetryable(err.message, err.name);
    throw err;
  }
}

/** Checks the input against the run's recorded identity, claiming nothing (a folder without run.json passes). */
export async function verifyActivityRunIdentity(store: CheckpointStore, config: TrainConfig): Promise<void> {
  await storeCall(() => verifyRunIdentity(store, config));
}
