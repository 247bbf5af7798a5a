/**
 * The activities of trainModel: describe the worker, train an epoch (train until its step and
 * evaluate in one activity; runs started before it train and evaluate in two: train until a step,
 * evaluate a checkpoint), record the epoch, read the epochs a run recorded, and finalize (export the model, metrics.jsonl,
 * the learning curve). Each is a thin shell: the trainer process does the work, and every trainer
 * and store call goes through store-and-trainer.ts (heartbeats, cancellation, failure mapping).
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TrainConfig } from '../config/train-config';
import { readCheckpoint } from '../checkpoints/format';
import {
  METRICS_JSONL,
  MODEL_JSON,
  PREPROCESSING_JSON,
  WEIGHTS_BIN,
  MANIFEST,
  checkpointKey,
  checkpointObjectKey,
  epochRecordKey,
  modelJsonKey,
  preprocessingKey,
  weightsKey,
} from '../checkpoints/layout';
import { applyRetention } from '../checkpoints/retention';
import { acquireActivityLease, activityLeaseHolder, checkActivityRunIdentity, verifyActivityRunIdentity, withinAllowList } from './fencing';
import type { Lease } from '../checkpoints/lease';
import type { CheckpointStore } from '../checkpoints/store';
import type { DescribeResult, EvaluateResult, TrainEpochTrainerResult, TrainUntilStepResult } from '../training/protocol';
import type { Trainer } from '../training/trainer-pool';
import { WorkerShuttingDownError } from '../training/trainer-client';
import type { CurveMarkers } from '../observability/charts';
import { writeEpochEvents, writeLearningCurve } from './run-views';
import { createOrRead, writeOnce } from '../checkpoints/write-once';
import { mark } from '../training/timeline';
import { callTrainer, readEpochRecords, storeCall, workerShuttingDown, type EpochRecord } from './store-and-trainer';

export interface TrainingActivityDeps {
  readonly trainer: Trainer;
  readonly openStore: (uri: string) => CheckpointStore;
  /** Where runs go when their input names no `checkpoint.uri`. */
  readonly checkpointRoot: string;
  /** Lists a streamed training set's shards for a new run.json (data/identity.ts, through the worker's allow-list). */
  readonly datasetIdentity?: (config: TrainConfig) => Promise<unknown>;
  /** The worker's MLflow server, if any (only whether there is one is told to workflows). */
  readonly mlflowTrackingUri?: string;
}

export interface WorkerDescription extends DescribeResult {
  readonly checkpointRoot: string;
  /** The worker has an MLflow server (MLFLOW_TRACKING_URI): every run it starts tracks there. */
  readonly mlflow?: boolean;
}

export interface TrainUntilStepInput {
  readonly runUri: string;
  readonly config: TrainConfig;
  readonly targetStep: number;
  readonly learningRate: number;
}

export interface EvaluateInput {
  readonly runUri: string;
  readonly config: TrainConfig;
  readonly epoch: number;
  readonly step: number;
  readonly learningRate: number;
  /** Training metrics of this epoch, recorded beside the eval metrics. */
  readonly trainMetrics: Readonly<Record<string, number>>;
  /** Checkpoint steps retention must keep besides the last K (the best so far). */
  readonly protectSteps: readonly number[];
  /** Workflow time of the epoch's end (ms): the same on every retry, so the record's bytes are too. */
  readonly recordedAt?: number;
  readonly trainSeconds?: number;
  /** The attempt of the training activity that reached the step (above 1: it resumed after an interruption). */
  readonly trainAttempt?: number;
}

export interface TrainEpochInput {
  readonly runUri: string;
  readonly config: TrainConfig;
  readonly epoch: number;
  /** The epoch's last global step (absolute: a retry resumes, a repeat returns the recorded epoch). */
  readonly targetStep: number;
  readonly learningRate: number;
  /** Checkpoint steps retention must keep besides the last K (the best so far). */
  readonly protectSteps: readonly number[];
  /** Workflow time when the epoch was scheduled (ms): the same on every retry, so the record's bytes are too. */
  readonly recordedAt: number;
  /** The trainModel's parent workflow (Temporal's): a search's trial may claim its folder inside the search's. */
  readonly parentWorkflowId?: string;
  /**
   * Also finalize the run once the epoch is recorded, exporting this epoch's checkpoint: what
   * finalizeRun would do next (the same export, metrics.jsonl and retention), in this activity. The
   * workflow asks for it only where the epoch is the last and its checkpoint the final model (a
   * search's trial without restoreBestWeights): one workflow task and one activity fewer a trial.
   */
  readonly finalize?: { readonly title: string };
}

/** What an epoch activity returns: the epoch as stored, and what the trainer did for it. */
export interface TrainEpochResult {
  /** `metrics/epoch-<n>.json` as stored: a retry that finds it returns it unchanged. */
  readonly record: EpochRecord;
  /** The training part; null when the epoch was already recorded and nothing ran. */
  readonly trained: TrainUntilStepResult | null;
  readonly evaluated: EvaluateResult | null;
  readonly attempt: number;
  /** The run's export when the input asked to `finalize` (modelStep: the record's step). */
  readonly finalized?: FinalizeResult;
}

export interface ReadRunRecordsInput {
  readonly runUri: string;
  /** The run's input: checked against the run's identity before anything is read (runs started since it was added). */
  readonly config?: TrainConfig;
}

export interface FinalizeInput {
  readonly runUri: string;
  readonly config: TrainConfig;
  /** The checkpoint to export as the final model (the best one with restoreBestWeights). */
  readonly modelStep: number;
  readonly protectSteps: readonly number[];
  readonly title: string;
  /** Drawn on the learning curve: the exported epoch and where early stopping ended the run. */
  readonly markers?: CurveMarkers;
  /** The trainModel's parent workflow (see TrainEpochInput). */
  readonly parentWorkflowId?: string;
  /**
   * A `resume` that trained no new epoch: the folder stays as it is. The export is written only
   * where absent (a run that failed before its export) or identical; no retention runs.
   */
  readonly resumedWithoutTraining?: boolean;
  /**
   * Render the learning curve (SVG and PNG, on the chart thread). A person looks at a run's own
   * curve, not at every trial's of a search of thousands: a search's trial (its workflow id
   * `<parent>/trial-…`, as Temporal gives it) renders none unless this says so; the search renders
   * its best trial's at its end (renderLearningCurve).
   * @default true, false for a search's trial
   */
  readonly learningCurve?: boolean;
}

export interface FinalizeResult {
  readonly modelUri: string;
  readonly metricsUri: string;
  /** The learning curve (SVG); null when none was rendered (a search's trial: see FinalizeInput.learningCurve). */
  readonly plotUri: string | null;
  /** The same learning curve as PNG. */
  readonly plotPngUri?: string;
  readonly deletedSteps: readonly number[];
}

export function createTrainingActivities(deps: TrainingActivityDeps) {
  /**
   * The trainer's description, asked once per worker: its registries and backend are fixed when the
   * trainer module loads, so every later run (every trial of a search) is answered from here
   * instead of waiting for a trainer that is busy training another slot's step.
   */
  let described: DescribeResult | undefined;
  return {
    /**
     * What this worker offers (models, datasets, backend) and its default checkpoint root, from the
     * trainer's first description (see `described`). A worker shutting down that never started a
     * trainer fails retryably as WorkerShuttingDown.
     */
    async describeWorker(): Promise<WorkerDescription> {
      if (described === undefined) {
        try {
          described = await deps.trainer.request<DescribeResult>({ type: 'describe' });
        } catch (err) {
          if (err instanceof WorkerShuttingDownError) throw workerShuttingDown(err);
          throw err;
        }
      }
      return { ...described, checkpointRoot: deps.checkpointRoot, mlflow: deps.mlflowTrackingUri !== undefined };
    },
    /** Trains until global step `targetStep` (absolute: a retry resumes, a repeat returns at once). */
    trainUntilStep: (input: TrainUntilStepInput) => trainToStep(deps, input),
    /** One epoch in one activity: train until its step, evaluate there, record it (trainAndRecordEpoch). */
    trainEpoch: (input: TrainEpochInput) => trainAndRecordEpoch(deps, input),
    /** Evaluates the checkpoint at `step` on the eval set and records the epoch beside the checkpoints. */
    evaluateCheckpoint: (input: EvaluateInput) => evaluateAndRecord(deps, input),
    /** The epochs a run already recorded, oldest first: what `resume` continues from (readRecordedEpochs). */
    readRunRecords: (input: ReadRunRecordsInput) => readRecordedEpochs(deps, input),
    /** Exports the final model, writes metrics.jsonl and the learning curve, applies retention (exportFinalModel). */
    finalizeRun: (input: FinalizeInput) => exportFinalModel(deps, input),
  };
}

/** Trains until global step `targetStep`; a cancelled request fails as cancelled, naming its checkpoint. */
async function trainToStep(deps: TrainingActivityDeps, input: TrainUntilStepInput): Promise<TrainUntilStepResult & { readonly attempt: number }> {
  mark('attempt-start', { activity: 'trainUntilStep', attempt: Context.current().info.attempt, targetStep: input.targetStep });
  await storeCall(() => checkActivityRunIdentity(deps.openStore(input.runUri), input.config, { open: withinAllowList(deps.openStore), datasetIdentity: deps.datasetIdentity }));
  const result = await callTrainer<TrainUntilStepResult>(deps.trainer, { type: 'train', request: { ...input, holder: activityLeaseHolder() } });
  if (result.cancelled) {
    throw new CancelledFailure(`Training cancelled at step ${result.step}; checkpoint ${result.checkpointUri}`);
  }
  return { ...result, attempt: Context.current().info.attempt };
}

/**
 * One epoch in one activity: trains until `targetStep`, evaluates the state there, and records
 * the epoch (written only after the trainer answered, which it does once the checkpoint is
 * committed). A retry that finds the epoch's record and checkpoint stored returns the record.
 */
async function trainAndRecordEpoch(deps: TrainingActivityDeps, input: TrainEpochInput): Promise<TrainEpochResult> {
  const store = deps.openStore(input.runUri);
  const attempt = Context.current().info.attempt;
  mark('attempt-start', { activity: 'trainEpoch', attempt, targetStep: input.targetStep });
  await storeCall(() => checkActivityRunIdentity(store, input.config, { open: withinAllowList(deps.openStore), datasetIdentity: deps.datasetIdentity, parentWorkflowId: input.parentWorkflowId, workflowId: ownWorkflowId() }));
  const stored = await storeCall(() => readRecordedEpoch(store, input));
  if (stored) {
    // An earlier attempt may have died between the record and its views or retention: redo those (idempotent).
    await storeCall(() => recordViewsAndRetain(store, stored, input, undefined));
    return { record: stored, trained: null, evaluated: null, attempt, ...(await finalizeWithEpoch(store, input, stored)) };
  }
  const { trained, evaluated } = await callTrainer<TrainEpochTrainerResult>(deps.trainer, {
    type: 'trainEpoch',
    request: { runUri: input.runUri, config: input.config, targetStep: input.targetStep, learningRate: input.learningRate, holder: activityLeaseHolder() },
  });
  if (trained.cancelled || !evaluated) {
    throw new CancelledFailure(`Training cancelled at step ${trained.step}; checkpoint ${trained.checkpointUri}`);
  }
  const record: EpochRecord = {
    epoch: input.epoch,
    step: trained.step,
    learningRate: input.learningRate,
    metrics: { loss: trained.loss, ...evaluated.metrics },
    recordedAt: input.recordedAt,
    trainSeconds: trained.seconds,
    trainAttempt: attempt,
  };
  const recorded = await storeCall(() => recordEpochOnce(store, input, record));
  return { record: recorded, trained, evaluated, attempt, ...(await finalizeWithEpoch(store, input, recorded)) };
}

/**
 * trainEpoch's `finalize`: the run's export of the epoch just recorded, under a lease this attempt
 * holds (the run's identity was checked at the activity's start). Not once the activity is cancelled
 * (a `stop`): the workflow then exports the checkpoint it knows, as finalizeRun. Retention already
 * ran for the record, with the same protected steps.
 */
async function finalizeWithEpoch(store: CheckpointStore, input: TrainEpochInput, record: EpochRecord): Promise<{ finalized?: FinalizeResult }> {
  if (!input.finalize) return {};
  if (Context.current().cancellationSignal.aborted) throw new CancelledFailure(`Cancelled before exporting step ${record.step}`);
  const { title } = input.finalize;
  const finalized = await storeCall(async () =>
    writeExport(store, { runUri: input.runUri, config: input.config, modelStep: record.step, protectSteps: input.protectSteps, title, ...(input.parentWorkflowId !== undefined && { parentWorkflowId: input.parentWorkflowId }) }, await acquireActivityLease(store), { retain: false }),
  );
  return { finalized };
}

/**
 * Only the run's current attempt records (a zombie that lost the lease to a newer one fails
 * here, retryably), and the record is created, never replaced: when two attempts overlap, the
 * first record stands and the other returns it, so the workflow sees the stored bytes.
 */
async function recordEpochOnce(store: CheckpointStore, input: TrainEpochInput, record: EpochRecord): Promise<EpochRecord> {
  const lease = await acquireActivityLease(store);
  await lease.assertHeld();
  const first = JSON.parse((await createOrRead(store, epochRecordKey(input.epoch), Buffer.from(JSON.stringify(record)))).toString('utf8')) as EpochRecord;
  if (first.step !== record.step) {
    throw ApplicationFailure.nonRetryable(
      `Refusing to overwrite ${store.uriOf(epochRecordKey(input.epoch))}: it records step ${first.step}, this epoch ends at step ${record.step}`,
      'WouldOverwrite',
    );
  }
  await recordViewsAndRetain(store, first, input, lease);
  return first;
}

/** Runs started before the one-activity epoch: evaluates checkpoint `step` and records the epoch. */
async function evaluateAndRecord(deps: TrainingActivityDeps, input: EvaluateInput): Promise<EvaluateResult> {
  // The lease first: a stale evaluation that lost it never reaches retention below.
  const lease = await storeCall(() => acquireActivityLease(deps.openStore(input.runUri)));
  const result = await callTrainer<EvaluateResult>(deps.trainer, {
    type: 'evaluate',
    request: { runUri: input.runUri, config: input.config, step: input.step, holder: lease.holder },
  });
  const store = deps.openStore(input.runUri);
  const record: EpochRecord = {
    epoch: input.epoch,
    step: input.step,
    learningRate: input.learningRate,
    metrics: { ...input.trainMetrics, ...result.metrics },
    ...(input.recordedAt !== undefined && { recordedAt: input.recordedAt }),
    ...(input.trainSeconds !== undefined && { trainSeconds: input.trainSeconds }),
    ...(input.trainAttempt !== undefined && { trainAttempt: input.trainAttempt }),
  };
  await storeCall(async () => {
    await writeOnce(store, epochRecordKey(input.epoch), Buffer.from(JSON.stringify(record)));
    await recordViewsAndRetain(store, record, input, lease);
  });
  return result;
}

/**
 * The epochs a run already recorded (`metrics/epoch-*.json`), oldest first: what `resume`
 * continues from. With `config` (runs started since), the input is checked against the run's
 * identity first: a resume never reads, let alone exports, another trajectory's epochs.
 */
async function readRecordedEpochs(deps: TrainingActivityDeps, input: ReadRunRecordsInput): Promise<EpochRecord[]> {
  const store = deps.openStore(input.runUri);
  return storeCall(async () => {
    if (input.config) await verifyActivityRunIdentity(store, input.config);
    return readEpochRecords(store);
  });
}

/**
 * Exports the final model in tfjs format, writes metrics.jsonl and the learning curve, applies
 * retention. The run's identity first: a `resume` that trained nothing (its maxEpochs already
 * reached) would otherwise export and retain with another input's `keepLast` in this folder.
 */
async function exportFinalModel(deps: TrainingActivityDeps, input: FinalizeInput): Promise<FinalizeResult> {
  const store = deps.openStore(input.runUri);
  return storeCall(async () => {
    await checkActivityRunIdentity(store, input.config, { open: withinAllowList(deps.openStore), datasetIdentity: deps.datasetIdentity, parentWorkflowId: input.parentWorkflowId, workflowId: ownWorkflowId() });
    return writeExport(store, input, await acquireActivityLease(store), { retain: true });
  });
}

/**
 * The export itself: the final model in tfjs format, metrics.jsonl, the learning curve where a
 * person looks (FinalizeInput.learningCurve) and, with `retain`, retention, under `lease`.
 */
async function writeExport(store: CheckpointStore, input: FinalizeInput, lease: Lease, opts: { readonly retain: boolean }): Promise<FinalizeResult> {
  const read = await readCheckpoint(store, input.modelStep);
  if (!read.ok) {
    throw ApplicationFailure.nonRetryable(
      `Cannot export ${store.uriOf(checkpointKey(input.modelStep))}: ${read.reason}`,
      'CheckpointUnusable',
    );
  }
  // A resumed run (`resume`) exports again over the earlier export (its own trajectory's: the
  // identity was checked above, and the workflow refuses a maxEpochs below the recorded epochs);
  // otherwise an export never changes.
  // A resume that trained nothing exports only what the run already exported (see FinalizeInput).
  const keep = input.resumedWithoutTraining === true;
  if (keep) await refuseChangedExport(store, read.checkpoint.objects, input.modelStep);
  const write = input.config.resume && !keep ? (key: string, data: Buffer) => store.put(key, data) : (key: string, data: Buffer) => writeOnce(store, key, data);
  await write(modelJsonKey(), read.checkpoint.objects.get(MODEL_JSON)!);
  await write(weightsKey(), read.checkpoint.objects.get(WEIGHTS_BIN)!);
  const preprocessing = read.checkpoint.objects.get(PREPROCESSING_JSON);
  if (preprocessing) await write(preprocessingKey(), preprocessing);
  const records = await readEpochRecords(store);
  await store.put(METRICS_JSONL, Buffer.from(records.map((r) => JSON.stringify(r)).join('\n') + '\n'));
  const trialOfSearch = input.parentWorkflowId !== undefined && (ownWorkflowId() ?? '').startsWith(`${input.parentWorkflowId}/trial-`);
  const plot = (input.learningCurve ?? !trialOfSearch) ? await writeLearningCurve(store, records, input.title, input.markers ?? {}) : null;
  const deletedSteps = keep || !opts.retain ? [] : await storeCall(() => applyRetention(store, input.config.checkpoint.keepLast, [...input.protectSteps, input.modelStep], { lease }));
  return {
    modelUri: store.uriOf(modelJsonKey()),
    metricsUri: store.uriOf(METRICS_JSONL),
    plotUri: plot?.svgUri ?? null,
    ...(plot && { plotPngUri: plot.pngUri }),
    deletedSteps,
  };
}

/** The workflow id of the activity's workflow (undefined outside an activity: tests calling activities directly). */
function ownWorkflowId(): string | undefined {
  try {
    return Context.current().info.workflowExecution?.workflowId;
  } catch {
    return undefined;
  }
}

/**
 * Throws WouldOverwrite (non-retryable, caused by the input) when the run's export differs from
 * checkpoint `step`'s model: a resume that trained no epoch would replace it (earlyStopping's
 * restoreBestWeights choosing another epoch than the run did).
 */
async function refuseChangedExport(store: CheckpointStore, objects: ReadonlyMap<string, Buffer>, step: number): Promise<void> {
  for (const [key, name] of [[modelJsonKey(), MODEL_JSON], [weightsKey(), WEIGHTS_BIN]] as const) {
    const existing = await store.get(key);
    const data = objects.get(name);
    if (existing && data && !existing.equals(data)) {
      throw ApplicationFailure.nonRetryable(
        `Refusing to replace ${store.uriOf(key)} with checkpoint ${step}'s: \`resume\` trained no new epoch (the run had recorded them all, or earlyStopping stopped its replay), so the run's export stays as it is. Raise \`maxEpochs\` to continue the run, or start a new runId for another final model`,
        'WouldOverwrite',
      );
    }
  }
}

/**
 * The epoch's record when it and its checkpoint are both stored (what a retry returns as is);
 * undefined when either is missing. A record of another step is refused: the run folder holds a
 * different trajectory than this input asks for.
 */
async function readRecordedEpoch(store: CheckpointStore, input: TrainEpochInput): Promise<EpochRecord | undefined> {
  const data = await store.get(epochRecordKey(input.epoch));
  if (!data) return undefined;
  const record = JSON.parse(data.toString('utf8')) as EpochRecord;
  if (record.step !== input.targetStep) {
    throw ApplicationFailure.nonRetryable(
      `Expected the recorded epoch ${input.epoch} (${store.uriOf(epochRecordKey(input.epoch))}) to end at step ${input.targetStep}, got \`${record.step}\` (${typeof record.step})`,
      'WouldOverwrite',
    );
  }
  return (await store.get(checkpointObjectKey(input.targetStep, MANIFEST))) ? record : undefined;
}

/** TensorBoard events of a recorded epoch, then retention under the run's lease (this attempt's, taken here unless given). */
async function recordViewsAndRetain(
  store: CheckpointStore,
  record: EpochRecord,
  input: { readonly config: TrainConfig; readonly protectSteps: readonly number[] },
  lease: Lease | undefined,
): Promise<void> {
  await writeEpochEvents(store, record);
  const held = lease ?? (await acquireActivityLease(store));
  await storeCall(() => applyRetention(store, input.config.checkpoint.keepLast, [...input.protectSteps, record.step], { lease: held }));
}

export type TrainingActivities = ReturnType<typeof createTrainingActivities>;
