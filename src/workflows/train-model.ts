/**
 * trainModel: the outer training loop as a durable workflow. For each epoch one activity trains
 * until an absolute global step and evaluates there (runs started before it: two activities, train
 * then evaluate); early stopping and plateau decisions are made
 * in workflow code (train-loop-state.ts, callbacks.ts) and kept in workflow state, so no restart
 * of a worker or of the server loses them.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  ContinueAsNew,
  CancellationScope,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { FinalizeResult, TrainingActivities } from '../activities/training';
import { parseTrainConfig, type TrainConfig, type TrainInput } from '../config/train-config';
import { restoreEpoch } from './callbacks';
import { nominalTime, resolveDataWindows } from './data-window';
import { FAULT_RETRY, WORKER_HEARTBEAT_TIMEOUT } from './activity-proxies';
import { failOnOversizedInput } from './input-bounds';
import { invalidConfig, parseOrFail } from './invalid-config';
import { Checker, ConfigError } from '../config/validate';
import { EPOCH_ACTIVITY_PATCH, RESUME_NOT_SHORTER_PATCH, SINGLE_UPSERT_PATCH, TRAIN_DATA_WINDOW_PATCH, TRAIN_MODEL_REPORT_PATCH } from './patches';
import { searchOfTrial, trialEndedSignal } from './search/trial-ended';
import { protectedSteps } from './protected-steps';
import { failOnUnknownMonitor, unknownMonitors } from './monitor-check';
import { flattenParams } from '../config/flatten-params';
import { RunTracking } from './run-tracking';
import { SEARCH_ATTRIBUTES } from './search-attributes';
import {
  initialLoopState,
  progressOf,
  recordEpoch,
  type BestSoFar,
  type EpochHistoryEntry,
  type TrainLoopState,
  type TrainProgress,
} from './train-loop-state';

export type { BestSoFar, EpochHistoryEntry, RunStatus, TrainLoopState, TrainProgress } from './train-loop-state';

/** What a trainModel run returns. */
export interface TrainModelResult {
  readonly runId: string;
  readonly runUri: string;
  readonly status: 'completed' | 'early-stopped' | 'stopped';
  readonly epochs: number;
  readonly step: number;
  readonly backend: string;
  readonly best: BestSoFar | null;
  /** Metrics of the epoch whose checkpoint became the final model. */
  readonly finalMetrics: Readonly<Record<string, number>> | null;
  readonly modelStep: number;
  readonly modelUri: string;
  readonly metricsUri: string;
  /** The learning curve; null for a search's trial (the search renders its best trial's: FinalizeInput.learningCurve). */
  readonly plotUri: string | null;
  /** The last `historyLimit` epochs (all of them are in metrics.jsonl). */
  readonly history: readonly EpochHistoryEntry[];
  readonly learningRate: number;
}

export const stopSignal = defineSignal('stop');
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const progressQuery = defineQuery<TrainProgress>('progress');

/** Validates the input; a bad one fails the workflow at once, before any activity is scheduled. */
export function validateOrFail(input: unknown): TrainConfig {
  failOnOversizedInput(input, 'Invalid trainModel input');
  return parseOrFail(() => parseTrainConfig(input));
}

/**
 * `searchTrial` is the search's word that it checked this run's names and URIs: taken only from the
 * search that started this run as its trial (`<search>/trial-…`, with the run id and folder the
 * search gives every trial), refused (InvalidConfig) from anyone else.
 */
function refuseForeignSearchTrial(config: TrainConfig): void {
  if (!config.searchTrial) return;
  const { workflowId, parent } = workflowInfo();
  if (parent !== undefined && workflowId.startsWith(`${parent.workflowId}/trial-`) && config.runId !== undefined && config.checkpoint.uri !== undefined) return;
  const c = new Checker();
  c.fail('searchTrial', 'absent: hyperparameterSearch sets it on the trials it starts (a run whose parent is not its search, or without runId and checkpoint.uri, cannot have it)', config.searchTrial);
  throw invalidConfig(new ConfigError(c.issues, 'Invalid trainModel input'));
}

export async function trainModel(input: TrainInput, resumeState?: TrainLoopState): Promise<TrainModelResult> {
  const search = searchOfTrial(workflowInfo());
  if (search === undefined) return trainRun(input, resumeState);
  try {
    const result = await trainRun(input, resumeState);
    await reportEndToSearch(search);
    return result;
  } catch (err) {
    if (!(err instanceof ContinueAsNew)) await reportEndToSearch(search);
    throw err;
  }
}

/**
 * A search's trial, as it ends (completed or failed, not at a continue-as-new): tells the search's
 * current run, which may have continued as new since it started this one and so holds no promise
 * for it (search/trial-ended.ts). Before completing, so the signal is in history first; a search
 * that is gone is not an error of the trial.
 */
async function reportEndToSearch(search: string): Promise<void> {
  if (!patched(TRAIN_MODEL_REPORT_PATCH)) return;
  const self = workflowInfo().workflowId;
  await CancellationScope.nonCancellable(() => getExternalWorkflowHandle(search).signal(trialEndedSignal, self).catch(() => undefined));
}

async function trainRun(input: TrainInput, resumeState?: TrainLoopState): Promise<TrainModelResult> {
  let config = validateOrFail(input);
  refuseForeignSearchTrial(config);
  // A data window resolves once, at the first run's start; continue-as-new carries the resolved input.
  const windowed = resumeState ? undefined : resolveDataWindows(input, nominalTime());
  if (windowed && patched(TRAIN_DATA_WINDOW_PATCH)) {
    input = windowed.input as TrainInput;
    config = validateOrFail(input);
  }
  const state: TrainLoopState = resumeState
    ? { ...resumeState, continuedRuns: resumeState.continuedRuns + 1, epochsThisRun: 0 }
    : await initialLoopState(config);
  const tracking = new RunTracking(state, state.runUri, state.runId, config.tracking, flattenParams({ ...config, tracking: undefined, searchTrial: undefined }));
  try {
    return await trainLoop(input, config, state, resumeState !== undefined, tracking);
  } catch (err) {
    // A failed run still closes its MLflow run (this schedules nothing unless the run tracks).
    if (!isCancellation(err) && !(err instanceof ContinueAsNew)) await tracking.finish('FAILED');
    throw err;
  }
}

type RunOutcome = TrainModelResult['status'];

/** The activities a run schedules, each with the timeouts its work needs. */
function runActivities(config: TrainConfig) {
  const heartbeatTimeout = config.timeouts.heartbeatSeconds * 1000;
  const retry = FAULT_RETRY;
  const { trainUntilStep, trainEpoch } = proxyActivities<TrainingActivities>({
    startToCloseTimeout: config.timeouts.epochMinutes * 60_000,
    heartbeatTimeout,
    retry,
    // Wait for the trainer to write its checkpoint before the workflow moves on.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  const { evaluateCheckpoint } = proxyActivities<TrainingActivities>({
    startToCloseTimeout: '2 hours',
    heartbeatTimeout,
    retry,
  });
  // Store work only: the worker heartbeats them, so a dead worker's attempt is retried within seconds.
  const { finalizeRun, readRunRecords } = proxyActivities<TrainingActivities>({
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: WORKER_HEARTBEAT_TIMEOUT,
    retry,
  });
  return { trainUntilStep, trainEpoch, evaluateCheckpoint, finalizeRun, readRunRecords };
}

/** Runs `fn` in the scope a `stop` cancels; 'stopped' when the stop ended it. */
type CancellableByStop = <T>(fn: () => Promise<T>) => Promise<T | 'stopped'>;

/** What each part of the loop reads: the run's input and state, and how it reaches the outside. */
interface Run {
  readonly input: TrainInput;
  readonly config: TrainConfig;
  readonly state: TrainLoopState;
  /** This run continues an earlier one of the same workflow (continue-as-new). */
  readonly continued: boolean;
  readonly tracking: RunTracking;
  readonly activities: ReturnType<typeof runActivities>;
  /** A search's trial claims its folder inside the search's as the search's child (folder-owners.ts). */
  readonly parent: { readonly parentWorkflowId?: string };
  readonly cancellableByStop: CancellableByStop;
  /**
   * A search's trial its search checked (`searchTrial`): only inputs the search started since carry
   * it, so the branches patched() guards are taken without asking (each patched() records a marker
   * and an upsert of TemporalChangeVersion), and its status is published once an epoch ends with
   * more to train and once at its end, not at every step (a one-epoch trial: one upsert).
   */
  readonly searchTrial: boolean;
  /** The export a search trial's last epoch activity already wrote (`finalize`), for finishRun. */
  finalizedWithEpoch?: { readonly modelStep: number; readonly result: FinalizeResult };
}

async function trainLoop(input: TrainInput, config: TrainConfig, state: TrainLoopState, continued: boolean, tracking: RunTracking): Promise<TrainModelResult> {
  const activities = runActivities(config);
  const cancellableByStop = handleControlSignals(state, config);
  const parentWorkflowId = workflowInfo().parent?.workflowId;
  const parent = parentWorkflowId !== undefined ? { parentWorkflowId } : {};
  const run: Run = { input, config, state, continued, tracking, activities, parent, cancellableByStop, searchTrial: config.searchTrial !== undefined };

  let outcome: RunOutcome = state.status === 'early-stopped' || state.status === 'stopped' ? state.status : 'completed';
  if (!continued && config.resume) outcome = await replayRecordedEpochs(run, outcome);
  outcome = await trainRemainingEpochs(run, outcome);
  return finishRun(run, outcome);
}

/** Sets the stop/pause/resume signals and the progress query; returns the scope runner `stop` cancels. */
function handleControlSignals(state: TrainLoopState, config: TrainConfig): CancellableByStop {
  let trainingScope: CancellationScope | undefined;
  setHandler(stopSignal, () => {
    state.stopRequested = true;
    trainingScope?.cancel();
  });
  setHandler(pauseSignal, () => {
    state.paused = true;
  });
  setHandler(resumeSignal, () => {
    state.paused = false;
  });
  setHandler(progressQuery, () => progressOf(state, config));
  return async (fn) => {
    try {
      trainingScope = new CancellationScope();
      return await trainingScope.run(fn);
    } catch (err) {
      if (state.stopRequested && isCancellation(err)) return 'stopped';
      throw err;
    } finally {
      trainingScope = undefined;
    }
  };
}

/** Shows the run's status, epoch and best metric in the Temporal UI's search attributes. */
function publishStatus(run: Run): void {
  const { state } = run;
  const pairs = [{ key: SEARCH_ATTRIBUTES.status, value: state.status }, { key: SEARCH_ATTRIBUTES.epoch, value: state.epoch }] as const;
  const best = state.best ? ([{ key: SEARCH_ATTRIBUTES.bestMetric, value: state.best.value }] as const) : [];
  // One upsert event, not two: 14 events per epoch instead of 16, so long runs continue as new
  // less often. Runs started before keep two (README: "Changing workflow code while runs are in flight").
  if (run.searchTrial || patched(SINGLE_UPSERT_PATCH)) return upsertSearchAttributes([...pairs, ...best]);
  upsertSearchAttributes([...pairs]);
  if (best.length > 0) upsertSearchAttributes([...best]);
}

/**
 * `resume`: continue the run already in this folder. Replaying its recorded epochs through the
 * same bookkeeping rebuilds exactly the state an uninterrupted run would have (only when the
 * input asks for it, so histories of runs without `resume` replay unchanged).
 */
async function replayRecordedEpochs(run: Run, outcome: RunOutcome): Promise<RunOutcome> {
  const { config, state } = run;
  // With the input: the activity checks it against the run's identity before reading anything.
  const records = await run.activities.readRunRecords({ runUri: state.runUri, config });
  const recorded = records.reduce((most, r) => Math.max(most, r.epoch), 0);
  if (recorded > config.maxEpochs && patched(RESUME_NOT_SHORTER_PATCH)) {
    const c = new Checker();
    c.fail('maxEpochs', `at least ${recorded}, the epochs ${state.runUri} already recorded (\`resume\` continues a run, it never shortens it: start a new runId to train fewer epochs)`, config.maxEpochs);
    throw invalidConfig(new ConfigError(c.issues, 'Invalid trainModel input'));
  }
  for (const r of records) {
    if (r.epoch !== state.epoch + 1 || r.epoch > config.maxEpochs || outcome !== 'completed') break;
    if (r.step !== r.epoch * config.stepsPerEpoch) break;
    failOnUnknownMonitor(config, r.metrics);
    if (recordEpoch(state, config, r.epoch, r.step, { ...r.metrics }, 0)) outcome = 'early-stopped';
  }
  return outcome;
}

/** Trains epoch after epoch until the last, an early stop or a `stop`; continues as new when due. */
async function trainRemainingEpochs(run: Run, outcome: RunOutcome): Promise<RunOutcome> {
  const { config, state } = run;
  while (outcome === 'completed' && state.epoch < config.maxEpochs) {
    await waitWhilePaused(run);
    if (state.stopRequested) return 'stopped';
    const epoch = state.epoch + 1;
    const targetStep = epoch * config.stepsPerEpoch;
    state.status = 'training';
    if (!run.searchTrial) publishStatus(run);

    const epochResult = run.searchTrial || patched(EPOCH_ACTIVITY_PATCH) ? await runEpoch(run, epoch, targetStep) : await runEpochInTwo(run, epoch, targetStep);
    if (epochResult === 'stopped') return 'stopped';
    const { step, metrics, trainSeconds } = epochResult;
    failOnUnknownMonitor(config, metrics);
    state.epochsThisRun++;
    if (recordEpoch(state, config, epoch, step, metrics, trainSeconds)) outcome = 'early-stopped';
    // A search's trial whose training is over says so once, at its end (finishRun).
    if (!run.searchTrial || (outcome === 'completed' && state.epoch < config.maxEpochs && !state.stopRequested)) publishStatus(run);
    run.tracking.epochRecorded();
    if (outcome === 'completed') await continueAsNewIfDue(run);
  }
  if (state.stopRequested && outcome === 'completed' && state.epoch < config.maxEpochs) return 'stopped';
  return outcome;
}

async function waitWhilePaused(run: Run): Promise<void> {
  const { state } = run;
  if (!state.paused) return;
  state.status = 'paused';
  publishStatus(run);
  await condition(() => !state.paused || state.stopRequested);
}

/** Continues as new after `continueAsNewEvery` epochs of this run, or when Temporal suggests it. */
async function continueAsNewIfDue(run: Run): Promise<void> {
  const { config, state } = run;
  const due = config.continueAsNewEvery > 0 && state.epochsThisRun >= config.continueAsNewEvery;
  if (state.epoch < config.maxEpochs && !state.stopRequested && (due || workflowInfo().continueAsNewSuggested)) {
    await condition(allHandlersFinished);
    await run.tracking.settled();
    await continueAsNew<typeof trainModel>(run.input, state);
  }
}

interface EpochOutcome {
  readonly step: number;
  readonly metrics: Record<string, number>;
  readonly trainSeconds: number;
}

/**
 * A search trial's last epoch also exports the run (trainEpoch's `finalize`) when that epoch's
 * checkpoint is sure to be the final model: no restoreBestWeights, and every monitor already named
 * a metric of an earlier epoch (else the epoch's metrics may fail the run: failOnUnknownMonitor).
 */
function finalizesWithEpoch(run: Run, epoch: number): boolean {
  const { config, state } = run;
  if (!run.searchTrial || epoch !== config.maxEpochs || config.earlyStopping?.restoreBestWeights) return false;
  return unknownMonitors(config, state.history[state.history.length - 1]?.metrics ?? {}).length === 0;
}

/** One activity: train to the step, evaluate, record. What it returns is the stored record. */
async function runEpoch(run: Run, epoch: number, targetStep: number): Promise<EpochOutcome | 'stopped'> {
  const { config, state } = run;
  const finalize = finalizesWithEpoch(run, epoch) ? { finalize: { title: runTitle(run) } } : {};
  const done = await run.cancellableByStop(() =>
    run.activities.trainEpoch({ runUri: state.runUri, config, epoch, targetStep, learningRate: state.learningRate, protectSteps: protectedSteps(config, state), recordedAt: Date.now(), ...run.parent, ...finalize }),
  );
  if (done === 'stopped') return done;
  state.step = done.record.step;
  if (done.finalized) run.finalizedWithEpoch = { modelStep: done.record.step, result: done.finalized };
  if (run.searchTrial && done.trained) state.backend = done.trained.backend;
  return { step: done.record.step, metrics: { ...done.record.metrics }, trainSeconds: done.record.trainSeconds ?? 0 };
}

/** Runs started before EPOCH_ACTIVITY_PATCH: train, then evaluate and record, as they did. */
async function runEpochInTwo(run: Run, epoch: number, targetStep: number): Promise<EpochOutcome | 'stopped'> {
  const { config, state } = run;
  const trained = await run.cancellableByStop(() => run.activities.trainUntilStep({ runUri: state.runUri, config, targetStep, learningRate: state.learningRate }));
  if (trained === 'stopped') return trained;
  state.step = trained.step;
  state.status = 'evaluating';
  const evaluated = await run.activities.evaluateCheckpoint({
    runUri: state.runUri,
    config,
    epoch,
    step: trained.step,
    learningRate: state.learningRate,
    trainMetrics: { loss: trained.loss },
    protectSteps: protectedSteps(config, state),
    recordedAt: Date.now(),
    trainSeconds: trained.seconds,
    trainAttempt: trained.attempt,
  });
  return { step: trained.step, metrics: { loss: trained.loss, ...evaluated.metrics }, trainSeconds: trained.seconds };
}

/**
 * The final model: the best epoch's checkpoint when restoreBestWeights is set (whether the run
 * stopped early or not, as Keras 3 does), else the last checkpoint written.
 */
function chooseFinalModel(config: TrainConfig, state: TrainLoopState): { readonly restoredEpoch: number | null; readonly modelStep: number } {
  const restoredEpoch = config.earlyStopping && state.earlyStopping ? restoreEpoch(config.earlyStopping, state.earlyStopping) : null;
  const modelStep = restoredEpoch !== null ? restoredEpoch * config.stepsPerEpoch : state.step;
  if (modelStep === 0) {
    throw ApplicationFailure.nonRetryable('The run was stopped before its first checkpoint: there is no model to export', 'NoCheckpoint');
  }
  return { restoredEpoch, modelStep };
}

function runTitle(run: Run): string {
  return `${run.state.runId}: ${run.config.stepsPerEpoch} steps/epoch, batch ${run.config.hyperparameters.batchSize}`;
}

/** Exports the final model (unless the last epoch's activity did) and closes the run's tracking; what trainModel returns. */
async function finishRun(run: Run, outcome: RunOutcome): Promise<TrainModelResult> {
  const { config, state, parent } = run;
  const { restoredEpoch, modelStep } = chooseFinalModel(config, state);
  state.status = 'finalizing';
  if (!run.searchTrial) publishStatus(run);
  // A resume that trained no epoch of its own (the run had recorded them all, or the replay stopped
  // early) may not change the folder: an export chosen by its own earlyStopping or keepLast is not
  // the run's (a continue-as-new comes only after an epoch trained).
  const resumedWithoutTraining = config.resume && !run.continued && state.epochsThisRun === 0;
  // A search trial's last epoch activity may have exported already (trainEpoch's `finalize`).
  const finalized =
    run.finalizedWithEpoch?.modelStep === modelStep
      ? run.finalizedWithEpoch.result
      : await CancellationScope.nonCancellable(() =>
          run.activities.finalizeRun({
            runUri: state.runUri,
            config,
            modelStep,
            protectSteps: protectedSteps(config, state),
            title: runTitle(run),
            markers: { bestEpoch: restoredEpoch ?? state.best?.epoch ?? null, earlyStoppedEpoch: outcome === 'early-stopped' ? state.epoch : null },
            ...(resumedWithoutTraining && { resumedWithoutTraining }),
            ...parent,
          }),
        );
  await run.tracking.finish(outcome === 'stopped' ? 'KILLED' : 'FINISHED');
  state.status = outcome;
  publishStatus(run);
  const restoredSummary = restoredEpoch !== null ? state.history.find((h) => h.epoch === restoredEpoch) : undefined;
  const last = state.history[state.history.length - 1];
  return {
    runId: state.runId,
    runUri: state.runUri,
    status: outcome,
    epochs: state.epoch,
    step: state.step,
    backend: state.backend,
    best: state.best,
    finalMetrics: (restoredSummary ?? (modelStep === last?.step ? last : undefined))?.metrics ?? null,
    modelStep,
    modelUri: finalized.modelUri,
    metricsUri: finalized.metricsUri,
    plotUri: finalized.plotUri,
    history: state.history,
    learningRate: state.learningRate,
  };
}
