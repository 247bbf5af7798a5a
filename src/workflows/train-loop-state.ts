/**
 * trainModel's state and the bookkeeping on it: what the loop carries through continue-as-new,
 * how it starts (input checks that need the worker), what an epoch's result changes (history,
 * best, early stopping, plateau) and the view the `progress` query returns. Workflow code.
 */
import type { TrackingState } from './run-tracking';
import { workflowInfo } from '@temporalio/workflow';
import type { EpochRecord } from '../activities/store-and-trainer';
import { checkpointUri, runUriOf } from '../checkpoints/layout';
import type { TrainConfig } from '../config/train-config';
import { Checker, ConfigError, checkPathSegment } from '../config/validate';
import { checkInputUris, checkRegistryNames, describeWorker, trainConfigUris } from './activity-proxies';
import {
  initialEarlyStopping,
  initialPlateau,
  stepEarlyStopping,
  stepPlateau,
  type EarlyStoppingState,
  type PlateauState,
} from './callbacks';
import { invalidConfig } from './invalid-config';

export type RunStatus = 'starting' | 'training' | 'evaluating' | 'paused' | 'finalizing' | 'completed' | 'early-stopped' | 'stopped';

/** An epoch as the workflow keeps it: its record (as in `metrics/`) and how long training took. */
export interface EpochHistoryEntry extends EpochRecord {
  /** Seconds the training activity took (for ETA); 0 for epochs read back from a run's records. */
  readonly trainSeconds: number;
}

export interface BestSoFar {
  readonly epoch: number;
  readonly step: number;
  readonly metric: string;
  readonly value: number;
}

/** Everything the loop needs to go on; carried whole through continue-as-new. */
export interface TrainLoopState extends TrackingState {
  readonly runId: string;
  readonly runUri: string;
  /** The worker's backend; a search's trial (no describeWorker) takes it from its first trained epoch. */
  backend: string;
  epoch: number;
  step: number;
  learningRate: number;
  history: EpochHistoryEntry[];
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

/** What the `progress` query returns. */
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
  readonly latest: EpochHistoryEntry | null;
  readonly best: BestSoFar | null;
  readonly latestCheckpointUri: string | null;
  readonly bestCheckpointUri: string | null;
  readonly continuedRuns: number;
  /** Mean seconds per epoch so far (training only), for ETAs. */
  readonly secondsPerEpoch: number | null;
}

/** The metric that picks the best epoch: early stopping's, else val_loss. */
function monitoredMetric(config: TrainConfig): { metric: string; mode: 'min' | 'max' } {
  if (config.earlyStopping) return { metric: config.earlyStopping.monitor, mode: config.earlyStopping.mode };
  return { metric: 'val_loss', mode: 'min' };
}

/** A new run's state; fails the workflow (InvalidConfig) on a run id, registry name or URI the worker refuses. */
export async function initialLoopState(config: TrainConfig): Promise<TrainLoopState> {
  const info = workflowInfo();
  const c = new Checker();
  const runId = config.runId ?? checkPathSegment(c, 'runId (defaults to the workflow id)', info.workflowId);
  // A search's trial whose names and URIs the search's start checked asks the worker nothing (search-trial-checks.ts).
  if (config.searchTrial && runId !== undefined && config.checkpoint.uri !== undefined) {
    return freshLoopState(config, runId, runUriOf(config.checkpoint.uri, runId), '', config.searchTrial.mlflow);
  }
  // Registry names can only be checked where the registries are: on the worker, by a local
  // activity (a marker in history, so still no activity task is scheduled for a bad input).
  const worker = await describeWorker();
  checkRegistryNames(c, worker, config);
  const root = config.checkpoint.uri ?? worker.checkpointRoot;
  // Every URI the run will touch, checked on the worker against its allow-list (realpaths).
  if (runId !== undefined) await checkInputUris(c, trainConfigUris(config, runUriOf(root, runId)));
  if (c.issues.length > 0) throw invalidConfig(new ConfigError(c.issues, 'Invalid trainModel input'));
  return freshLoopState(config, runId!, runUriOf(root, runId!), worker.backend.name + (worker.backend.gpu ? ' (gpu)' : ''), worker.mlflow === true);
}

/** Epoch 0 of a run in `runUri`; `workerTracks`: the worker tracks every run to MLflow. */
function freshLoopState(config: TrainConfig, runId: string, runUri: string, backend: string, workerTracks: boolean): TrainLoopState {
  return {
    runId,
    runUri,
    backend,
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
    mlflowWanted: config.tracking?.mlflow !== undefined || workerTracks,
    tracking: null,
  };
}

/**
 * An epoch's bookkeeping: history (the last `historyLimit`), best so far, early stopping and
 * plateau (which may lower `state.learningRate` for the next epoch). True when early stopping says stop.
 */
export function recordEpoch(state: TrainLoopState, config: TrainConfig, epoch: number, step: number, metrics: Record<string, number>, trainSeconds: number): boolean {
  const { metric, mode } = monitoredMetric(config);
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
}

/** The `progress` query's answer. */
export function progressOf(state: TrainLoopState, config: TrainConfig): TrainProgress {
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
}
