/**
 * trainModel: the outer training loop as a durable workflow. For each epoch an activity trains
 * until an absolute global step, another evaluates; early stopping and plateau decisions are made
 * here and kept in workflow state, so no restart of a worker or of the server loses them.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { TrainingActivities } from '../activities/training';
import { parseTrainConfig, type TrainConfig, type TrainInput } from '../config/train-config';
import { ConfigError, Checker, checkPathSegment } from '../config/validate';
import {
  initialEarlyStopping,
  initialPlateau,
  restoreEpoch,
  stepEarlyStopping,
  stepPlateau,
  type EarlyStoppingState,
  type PlateauState,
} from './callbacks';
import { checkpointUri, runUriOf } from '../checkpoints/layout';
import { FAULT_RETRY, checkRegistryNames, describeWorker } from './activity-proxies';
import { invalidConfig, parseOrFail } from './invalid-config';
import { protectedSteps } from './protected-steps';
import { SEARCH_ATTRIBUTES } from './search-attributes';

export type RunStatus = 'starting' | 'training' | 'evaluating' | 'paused' | 'finalizing' | 'completed' | 'early-stopped' | 'stopped';

export interface EpochSummary {
  readonly epoch: number;
  readonly step: number;
  readonly learningRate: number;
  readonly metrics: Readonly<Record<string, number>>;
  /** Seconds the training activity took (for ETA). */
  readonly trainSeconds: number;
}

export interface BestSoFar {
  readonly epoch: number;
  readonly step: number;
  readonly metric: string;
  readonly value: number;
}

/** Everything the loop needs to go on; carried whole through continue-as-new. */
export interface TrainState {
  readonly runId: string;
  readonly runUri: string;
  readonly backend: string;
  epoch: number;
  step: number;
  learningRate: number;
  history: EpochSummary[];
  best: BestSoFar | null;
  earlyStopping: EarlyStoppingState | null;
  plateau: PlateauState | null;
  status: RunStatus;
  /** Runs of this workflow before the current one (continue-as-new count). */
  continuedRuns: number;
  /** Epochs completed by this run of the workflow (reset at continue-as-new). */
  epochsThisRun: number;
  stopRequested: boolean;
  paused: boolean;
}

export interface TrainProgress {
  readonly runId: string;
  readonly runUri: string;
  /** What the loop is doing now: 'paused' only once it is actually held (the epoch in flight when `pause` arrives finishes first). */
  readonly status: RunStatus;
  /** A `pause` signal was received and no `resume` since (the run pauses at the next epoch boundary). */
  readonly pauseRequested: boolean;
  /** A `stop` signal was received. */
  readonly stopRequested: boolean;
  readonly epoch: number;
  readonly maxEpochs: number;
  readonly step: number;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  readonly learningRate: number;
  readonly backend: string;
  readonly latest: EpochSummary | null;
  readonly best: BestSoFar | null;
  readonly latestCheckpointUri: string | null;
  readonly bestCheckpointUri: string | null;
  readonly continuedRuns: number;
  /** Mean seconds per epoch so far (training only), for ETAs. */
  readonly secondsPerEpoch: number | null;
}

export interface TrainResult {
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
  readonly plotUri: string;
  /** The last `historyLimit` epochs (all of them are in metrics.jsonl). */
  readonly history: readonly EpochSummary[];
  readonly learningRate: number;
}

export const stopSignal = defineSignal('stop');
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const progressQuery = defineQuery<TrainProgress>('progress');

/** Validates the input; a bad one fails the workflow at once, before any activity is scheduled. */
export function validateOrFail(input: unknown): TrainConfig {
  return parseOrFail(() => parseTrainConfig(input));
}

function monitoredMetric(config: TrainConfig): { metric: string; mode: 'min' | 'max' } {
  if (config.earlyStopping) return { metric: config.earlyStopping.monitor, mode: config.earlyStopping.mode };
  return { metric: 'val_loss', mode: 'min' };
}

async function startState(config: TrainConfig): Promise<TrainState> {
  const info = workflowInfo();
  const c = new Checker();
  const runId = config.runId ?? checkPathSegment(c, 'runId (defaults to the workflow id)', info.workflowId);
  // Registry names can only be checked where the registries are: on the worker, by a local
  // activity (a marker in history, so still no activity task is scheduled for a bad input).
  const worker = await describeWorker();
  checkRegistryNames(c, worker, config);
  if (c.issues.length > 0) throw invalidConfig(new ConfigError(c.issues, 'Invalid trainModel input'));
  const root = config.checkpoint.uri ?? worker.checkpointRoot;
  return {
    runId: runId!,
    runUri: runUriOf(root, runId!),
    backend: worker.backend.name + (worker.backend.gpu ? ' (gpu)' : ''),
    epoch: 0,
    step: 0,
    learningRate: config.hyperparameters.learningRate,
    history: [],
    best: null,
    earlyStopping: config.earlyStopping ? initialEarlyStopping() : null,
    plateau: config.reduceLrOnPlateau ? initialPlateau(config.reduceLrOnPlateau, config.hyperparameters.learningRate) : null,
    status: 'starting',
    continuedRuns: 0,
    epochsThisRun: 0,
    stopRequested: false,
    paused: false,
  };
}

export async function trainModel(input: TrainInput, resumeState?: TrainState): Promise<TrainResult> {
  const config = validateOrFail(input);
  const state: TrainState = resumeState
    ? { ...resumeState, continuedRuns: resumeState.continuedRuns + 1, epochsThisRun: 0 }
    : await startState(config);
  const { metric, mode } = monitoredMetric(config);

  const heartbeatTimeout = config.timeouts.heartbeatSeconds * 1000;
  const retry = FAULT_RETRY;
  const { trainUntilStep } = proxyActivities<TrainingActivities>({
    startToCloseTimeout: config.timeouts.epochMinutes * 60_000,
    heartbeatTimeout,
    retry,
    // Wait for the trainer to write its checkpoint before the workflow moves on.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  const { evaluateCheckpoint, finalizeRun, readRunRecords } = proxyActivities<TrainingActivities>({
    startToCloseTimeout: '2 hours',
    heartbeatTimeout,
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
  setHandler(progressQuery, (): TrainProgress => {
    const latest = state.history[state.history.length - 1] ?? null;
    const timed = state.history.filter((h) => h.trainSeconds > 0);
    return {
      runId: state.runId,
      runUri: state.runUri,
      status: state.status,
      pauseRequested: state.paused,
      stopRequested: state.stopRequested,
      epoch: state.epoch,
      maxEpochs: config.maxEpochs,
      step: state.step,
      stepsPerEpoch: config.stepsPerEpoch,
      totalSteps: config.maxEpochs * config.stepsPerEpoch,
      learningRate: state.learningRate,
      backend: state.backend,
      latest,
      best: state.best,
      latestCheckpointUri: state.step > 0 ? checkpointUri(state.runUri, state.step) : null,
      bestCheckpointUri: state.best ? checkpointUri(state.runUri, state.best.step) : null,
      continuedRuns: state.continuedRuns,
      secondsPerEpoch: timed.length ? timed.reduce((a, h) => a + h.trainSeconds, 0) / timed.length : null,
    };
  });

  const publish = (): void => {
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.status, value: state.status },
      { key: SEARCH_ATTRIBUTES.epoch, value: state.epoch },
    ]);
    if (state.best) upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.bestMetric, value: state.best.value }]);
  };

  /** An epoch's bookkeeping (history, best, early stopping, plateau); true when early stopping says stop. */
  const recordEpoch = (epoch: number, step: number, metrics: Record<string, number>, trainSeconds: number): boolean => {
    let stop = false;
    state.epoch = epoch;
    state.step = step;
    state.history.push({ epoch, step, learningRate: state.learningRate, metrics, trainSeconds });
    if (state.history.length > config.historyLimit) state.history.splice(0, state.history.length - config.historyLimit);
    const value = metrics[metric];
    if (value !== undefined && (state.best === null || (mode === 'min' ? value < state.best.value : value > state.best.value))) {
      state.best = { epoch, step, metric, value };
    }
    if (config.earlyStopping && state.earlyStopping) {
      const es = stepEarlyStopping(config.earlyStopping, state.earlyStopping, epoch, metrics);
      state.earlyStopping = es.state;
      stop = es.stop;
    }
    if (config.reduceLrOnPlateau && state.plateau) {
      const p = stepPlateau(config.reduceLrOnPlateau, state.plateau, metrics, state.learningRate);
      state.plateau = p.state;
      state.learningRate = p.newLr;
    }
    return stop;
  };

  let outcome: 'completed' | 'early-stopped' | 'stopped' = 'completed';
  if (state.status === 'early-stopped' || state.status === 'stopped') outcome = state.status;

  // `resume`: continue the run already in this folder. Replaying its recorded epochs through the
  // same bookkeeping rebuilds exactly the state an uninterrupted run would have (only when the
  // input asks for it, so histories of runs without `resume` replay unchanged).
  if (!resumeState && config.resume) {
    for (const r of await readRunRecords({ runUri: state.runUri })) {
      if (r.epoch !== state.epoch + 1 || r.epoch > config.maxEpochs || outcome !== 'completed') break;
      if (r.step !== r.epoch * config.stepsPerEpoch) break;
      if (recordEpoch(r.epoch, r.step, { ...r.metrics }, 0)) outcome = 'early-stopped';
    }
  }

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

    let trained;
    try {
      trainingScope = new CancellationScope();
      trained = await trainingScope.run(() =>
        trainUntilStep({ runUri: state.runUri, config, targetStep, learningRate: state.learningRate }),
      );
    } catch (err) {
      if (state.stopRequested && isCancellation(err)) {
        outcome = 'stopped';
        break;
      }
      throw err;
    } finally {
      trainingScope = undefined;
    }
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
    });
    const metrics: Record<string, number> = { loss: trained.loss, ...evaluated.metrics };
    state.epochsThisRun++;
    if (recordEpoch(epoch, trained.step, metrics, trained.seconds)) outcome = 'early-stopped';
    publish();

    const due = config.continueAsNewEvery > 0 && state.epochsThisRun >= config.continueAsNewEvery;
    if (outcome === 'completed' && state.epoch < config.maxEpochs && !state.stopRequested && (due || workflowInfo().continueAsNewSuggested)) {
      await condition(allHandlersFinished);
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
  const finalized = await CancellationScope.nonCancellable(() =>
    finalizeRun({
      runUri: state.runUri,
      config,
      modelStep,
      protectSteps: protectedSteps(config, state),
      title: `${state.runId}: ${config.stepsPerEpoch} steps/epoch, batch ${config.hyperparameters.batchSize}`,
    }),
  );
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
