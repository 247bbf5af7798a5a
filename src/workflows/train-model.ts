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
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { TrainingActivities } from '../activities/training';
import { parseTrainConfig, type TrainConfig, type TrainInput } from '../config/train-config';
import { restoreEpoch } from './callbacks';
import { nominalTime, resolveDataWindows } from './data-window';
import { FAULT_RETRY, WORKER_HEARTBEAT_TIMEOUT } from './activity-proxies';
import { failOnOversizedInput } from './input-bounds';
import { invalidConfig, parseOrFail } from './invalid-config';
import { Checker, ConfigError } from '../config/validate';
import { EPOCH_ACTIVITY_PATCH, RESUME_NOT_SHORTER_PATCH, SINGLE_UPSERT_PATCH, TRAIN_DATA_WINDOW_PATCH } from './patches';
import { protectedSteps } from './protected-steps';
import { failOnUnknownMonitor } from './monitor-check';
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

export async function trainModel(input: TrainInput, resumeState?: TrainLoopState): Promise<TrainModelResult> {
  let config = validateOrFail(input);
  // A data window resolves once, at the first run's start; continue-as-new carries the resolved input.
  const windowed = resumeState ? undefined : resolveDataWindows(input, nominalTime());
  if (windowed && patched(TRAIN_DATA_WINDOW_PATCH)) {
    input = windowed.input as TrainInput;
    config = validateOrFail(input);
  }
  const state: TrainLoopState = resumeState
    ? { ...resumeState, continuedRuns: resumeState.continuedRuns + 1, epochsThisRun: 0 }
    : await initialLoopState(config);
  const tracking = new RunTracking(state, state.runUri, state.runId, config.tracking, flattenParams({ ...config, tracking: undefined }));
  try {
    return await trainLoop(input, config, state, resumeState !== undefined, tracking);
  } catch (err) {
    // A failed run still closes its MLflow run (this schedules nothing unless the run tracks).
    if (!isCancellation(err) && !(err instanceof ContinueAsNew)) await tracking.finish('FAILED');
    throw err;
  }
}

async function trainLoop(input: TrainInput, config: TrainConfig, state: TrainLoopState, continued: boolean, tracking: RunTracking): Promise<TrainModelResult> {
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

  const publish = (): void => {
    const pairs = [{ key: SEARCH_ATTRIBUTES.status, value: state.status }, { key: SEARCH_ATTRIBUTES.epoch, value: state.epoch }] as const;
    const best = state.best ? ([{ key: SEARCH_ATTRIBUTES.bestMetric, value: state.best.value }] as const) : [];
    // One upsert event, not two: 14 events per epoch instead of 16, so long runs continue as new
    // less often. Runs started before keep two (README: "Changing workflow code while runs are in flight").
    if (patched(SINGLE_UPSERT_PATCH)) return upsertSearchAttributes([...pairs, ...best]);
    upsertSearchAttributes([...pairs]);
    if (best.length > 0) upsertSearchAttributes([...best]);
  };

  // A search's trial claims its folder inside the search's as the search's child (folder-owners.ts).
  const parentWorkflowId = workflowInfo().parent?.workflowId;
  const parent = parentWorkflowId !== undefined ? { parentWorkflowId } : {};

  let outcome: 'completed' | 'early-stopped' | 'stopped' = 'completed';
  if (state.status === 'early-stopped' || state.status === 'stopped') outcome = state.status;

  // `resume`: continue the run already in this folder. Replaying its recorded epochs through the
  // same bookkeeping rebuilds exactly the state an uninterrupted run would have (only when the
  // input asks for it, so histories of runs without `resume` replay unchanged).
  if (!continued && config.resume) {
    // With the input: the activity checks it against the run's identity before reading anything.
    const records = await readRunRecords({ runUri: state.runUri, config });
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
  }

  interface EpochOutcome {
    readonly step: number;
    readonly metrics: Record<string, number>;
    readonly trainSeconds: number;
  }
  /** Runs `fn` in the scope a `stop` cancels; 'stopped' when the stop ended it. */
  const cancellableByStop = async <T>(fn: () => Promise<T>): Promise<T | 'stopped'> => {
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
  // One activity: train to the step, evaluate, record. What it returns is the stored record.
  const runEpoch = async (epoch: number, targetStep: number): Promise<EpochOutcome | 'stopped'> => {
    const done = await cancellableByStop(() =>
      trainEpoch({ runUri: state.runUri, config, epoch, targetStep, learningRate: state.learningRate, protectSteps: protectedSteps(config, state), recordedAt: Date.now(), ...parent }),
    );
    if (done === 'stopped') return done;
    state.step = done.record.step;
    return { step: done.record.step, metrics: { ...done.record.metrics }, trainSeconds: done.record.trainSeconds ?? 0 };
  };
  // Runs started before EPOCH_ACTIVITY_PATCH: train, then evaluate and record, as they did.
  const runEpochInTwo = async (epoch: number, targetStep: number): Promise<EpochOutcome | 'stopped'> => {
    const trained = await cancellableByStop(() => trainUntilStep({ runUri: state.runUri, config, targetStep, learningRate: state.learningRate }));
    if (trained === 'stopped') return trained;
    state.step = trained.step;
    state.status = 'evaluating';
    const evaluated = await evaluateCheckpoint({
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
  };

  while (outcome === 'completed' && state.epoch < config.maxEpochs) {
    if (state.paused) {
      state.status = 'paused';
      publish();
      await condition(() => !state.paused || state.stopRequested);
    }
    if (state.stopRequested) {
      outcome = 'stopped';
      break;
    }
    const epoch = state.epoch + 1;
    const targetStep = epoch * config.stepsPerEpoch;
    state.status = 'training';
    publish();

    const epochResult = patched(EPOCH_ACTIVITY_PATCH) ? await runEpoch(epoch, targetStep) : await runEpochInTwo(epoch, targetStep);
    if (epochResult === 'stopped') {
      outcome = 'stopped';
      break;
    }
    const { step, metrics, trainSeconds } = epochResult;
    failOnUnknownMonitor(config, metrics);
    state.epochsThisRun++;
    if (recordEpoch(state, config, epoch, step, metrics, trainSeconds)) outcome = 'early-stopped';
    publish();
    tracking.epochRecorded();

    const due = config.continueAsNewEvery > 0 && state.epochsThisRun >= config.continueAsNewEvery;
    if (outcome === 'completed' && state.epoch < config.maxEpochs && !state.stopRequested && (due || workflowInfo().continueAsNewSuggested)) {
      await condition(allHandlersFinished);
      await tracking.settled();
      return continueAsNew<typeof trainModel>(input, state);
    }
  }
  if (state.stopRequested && outcome === 'completed' && state.epoch < config.maxEpochs) outcome = 'stopped';

  // The final model: the best epoch's checkpoint when restoreBestWeights is set (whether the
  // run stopped early or not, as Keras 3 does), else the last checkpoint written.
  const restore = config.earlyStopping && state.earlyStopping ? restoreEpoch(config.earlyStopping, state.earlyStopping) : null;
  const restoredSummary = restore !== null ? state.history.find((h) => h.epoch === restore) : undefined;
  const modelStep = restore !== null ? restore * config.stepsPerEpoch : state.step;
  if (modelStep === 0) {
    throw ApplicationFailure.nonRetryable('The run was stopped before its first checkpoint: there is no model to export', 'NoCheckpoint');
  }
  state.status = 'finalizing';
  publish();
  // A resume that trained no epoch of its own (the run had recorded them all, or the replay stopped
  // early) may not change the folder: an export chosen by its own earlyStopping or keepLast is not
  // the run's (a continue-as-new comes only after an epoch trained).
  const resumedWithoutTraining = config.resume && !continued && state.epochsThisRun === 0;
  const finalized = await CancellationScope.nonCancellable(() =>
    finalizeRun({
      runUri: state.runUri,
      config,
      modelStep,
      protectSteps: protectedSteps(config, state),
      title: `${state.runId}: ${config.stepsPerEpoch} steps/epoch, batch ${config.hyperparameters.batchSize}`,
      markers: { bestEpoch: restore ?? state.best?.epoch ?? null, earlyStoppedEpoch: outcome === 'early-stopped' ? state.epoch : null },
      ...(resumedWithoutTraining && { resumedWithoutTraining }),
      ...parent,
    }),
  );
  await tracking.finish(outcome === 'stopped' ? 'KILLED' : 'FINISHED');
  state.status = outcome;
  publish();
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
