/**
 * The `trainModel` input: plain JSON, validated field by field before any work starts.
 * Every default lives in DEFAULTS below and nowhere else.
 */
import {
  MAX_BATCH_SIZE,
  MAX_CHECKPOINT_SECONDS,
  MAX_EPOCH_COUNT,
  MAX_EPOCH_MINUTES,
  MAX_EPOCHS,
  MAX_HEARTBEAT_SECONDS,
  MAX_HISTORY_LIMIT,
  MAX_KEEP_LAST,
  MAX_LEARNING_RATE,
  MAX_NAME_LENGTH,
  MAX_SEED,
  MAX_STEPS_PER_EPOCH,
  MAX_TOTAL_STEPS,
} from './bounds';
import { checkDataset, checkModel, type DatasetSpec, type ModelSpec } from './spec-checks';
import { checkStoreUri } from './uri';
import { parseTracking, type TrackingConfig } from './tracking-config';
import { Checker, checkPathSegment, isObject, type JsonObject } from './validate';

export type OptimizerName = 'adam' | 'sgd' | 'momentum' | 'rmsprop';
export const OPTIMIZERS: readonly OptimizerName[] = ['adam', 'sgd', 'momentum', 'rmsprop'];

export type LossName = 'categoricalCrossentropy' | 'meanSquaredError';
export const LOSSES: readonly LossName[] = ['categoricalCrossentropy', 'meanSquaredError'];

export type Mode = 'min' | 'max';

export type { DatasetSpec, ModelSpec } from './spec-checks';

export interface Hyperparameters {
  readonly optimizer: OptimizerName;
  readonly learningRate: number;
  readonly batchSize: number;
  /** Only for `momentum`. */
  readonly momentum: number;
}

export interface CheckpointPolicy {
  /** Root URI (`file:///...` or `gs://bucket/prefix`); the run writes under `<uri>/<runId>/`. Default: the worker's. */
  readonly uri?: string;
  /** Also checkpoint every N steps inside an epoch (0: only at epoch ends). */
  readonly everySteps: number;
  /** Also checkpoint when this many seconds passed since the last one (0: never by time). */
  readonly everySeconds: number;
  /** Keep the last K checkpoints (the best one is always kept too). */
  readonly keepLast: number;
}

export interface EarlyStoppingConfig {
  readonly monitor: string;
  readonly mode: Mode;
  readonly minDelta: number;
  readonly patience: number;
  readonly baseline: number | null;
  readonly restoreBestWeights: boolean;
  readonly startFromEpoch: number;
}

export interface ReduceLrOnPlateauConfig {
  readonly monitor: string;
  readonly mode: Mode;
  readonly factor: number;
  readonly patience: number;
  readonly minDelta: number;
  readonly cooldown: number;
  readonly minLr: number;
}

export interface Timeouts {
  /** An activity that sends no heartbeat for this long is considered lost and retried. */
  readonly heartbeatSeconds: number;
  /** Upper bound for one epoch's training activity. */
  readonly epochMinutes: number;
}

/** The validated input with every default filled in. */
export interface TrainConfig {
  readonly runId?: string;
  readonly model: ModelSpec;
  readonly data: { readonly train: DatasetSpec; readonly eval: DatasetSpec };
  readonly hyperparameters: Hyperparameters;
  readonly loss: LossName;
  readonly stepsPerEpoch: number;
  readonly maxEpochs: number;
  readonly seed: number;
  readonly checkpoint: CheckpointPolicy;
  readonly earlyStopping?: EarlyStoppingConfig;
  readonly reduceLrOnPlateau?: ReduceLrOnPlateauConfig;
  readonly warmStartFrom?: string;
  /**
   * Continue the run already under `<checkpoint.uri>/<runId>/`: start after its last recorded epoch
   * (history, best, early-stopping and plateau state rebuilt from its metrics records) instead of at
   * epoch 0. Used by successive halving to give a trial more epochs.
   */
  readonly resume?: true;
  /** MLflow tracking (src/config/tracking-config.ts). */
  readonly tracking?: TrackingConfig;
  /** Continue as new every N epochs (0: only when the server suggests it). */
  readonly continueAsNewEvery: number;
  /** How many epochs of history the workflow keeps in its state (the full history is in metrics.jsonl). */
  readonly historyLimit: number;
  readonly timeouts: Timeouts;
  /**
   * Set by hyperparameterSearch, never by a user: this run is one of its trials, whose registry names
   * and URIs the search's own start checked (src/workflows/search-trial-checks.ts), so the run skips
   * those checks; `mlflow`: the worker tracks every run to MLflow. A run that is not the trial of
   * the search that started it fails with InvalidConfig (src/workflows/train-model.ts).
   */
  readonly searchTrial?: SearchTrialMark;
}

export interface SearchTrialMark {
  readonly mlflow: boolean;
}

/** What users may send: the same shape with optional fields. */
export type TrainInput = DeepPartial<TrainConfig> & { readonly [key: string]: unknown };
type DeepPartial<T> = { readonly [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> | T[K] : T[K] };

/** Every default, in one place (the README's table is generated from the same values). */
export const DEFAULTS = {
  loss: 'categoricalCrossentropy' as LossName,
  seed: 1,
  hyperparameters: { optimizer: 'adam' as OptimizerName, learningRate: 0.001, batchSize: 32, momentum: 0.9 },
  checkpoint: { everySteps: 0, everySeconds: 600, keepLast: 3 },
  earlyStopping: {
    monitor: 'val_loss',
    minDelta: 0,
    patience: 0,
    baseline: null,
    restoreBestWeights: false,
    startFromEpoch: 0,
  },
  reduceLrOnPlateau: { monitor: 'val_loss', factor: 0.1, patience: 10, minDelta: 1e-4, cooldown: 0, minLr: 0 },
  continueAsNewEvery: 0,
  historyLimit: 100,
  timeouts: { heartbeatSeconds: 30, epochMinutes: 24 * 60 },
} as const;

const TOP_LEVEL_FIELDS = [
  'runId', 'model', 'data', 'hyperparameters', 'loss', 'stepsPerEpoch', 'maxEpochs', 'seed', 'checkpoint',
  'earlyStopping', 'reduceLrOnPlateau', 'warmStartFrom', 'resume', 'tracking', 'continueAsNewEvery', 'historyLimit', 'timeouts',
  'searchTrial',
] as const;

/** Keras's `auto` mode: metrics that measure accuracy are maximised, everything else minimised. */
export function autoMode(monitor: string): Mode {
  return /acc|auc|precision|recall|f1/i.test(monitor) ? 'max' : 'min';
}

function checkMonitorMode(c: Checker, field: string, o: JsonObject, fallbackMonitor: string): { monitor: string; mode: Mode } {
  let monitor = c.string(`${field}.monitor`, o.monitor, { required: false }) ?? fallbackMonitor;
  if (monitor.length > MAX_NAME_LENGTH) monitor = c.fail(`${field}.monitor`, `a metric name of at most ${MAX_NAME_LENGTH} characters`, monitor) ?? fallbackMonitor;
  const mode = c.oneOf(`${field}.mode`, o.mode, ['min', 'max', 'auto'] as const, 'auto') ?? 'auto';
  return { monitor, mode: mode === 'auto' ? autoMode(monitor) : mode };
}

function checkHyperparameters(c: Checker, value: unknown): Hyperparameters {
  const hp = c.object('hyperparameters', value, false) ?? {};
  c.noUnknownKeys('hyperparameters', hp, ['optimizer', 'learningRate', 'batchSize', 'momentum']);
  const H = DEFAULTS.hyperparameters;
  return {
    optimizer: c.oneOf('hyperparameters.optimizer', hp.optimizer, OPTIMIZERS, H.optimizer) ?? H.optimizer,
    learningRate: c.number('hyperparameters.learningRate', hp.learningRate, { exclusiveMin: 0, max: MAX_LEARNING_RATE, fallback: H.learningRate }) ?? H.learningRate,
    batchSize: c.number('hyperparameters.batchSize', hp.batchSize, { integer: true, min: 1, max: MAX_BATCH_SIZE, fallback: H.batchSize }) ?? H.batchSize,
    momentum: c.number('hyperparameters.momentum', hp.momentum, { min: 0, max: 1, fallback: H.momentum }) ?? H.momentum,
  };
}

/** The checkpoint policy; a step cadence beyond the run's last step (`totalSteps`) would never fire: a typo, not a policy. */
function checkCheckpointPolicy(c: Checker, value: unknown, totalSteps: number | undefined): CheckpointPolicy {
  const cp = c.object('checkpoint', value, false) ?? {};
  c.noUnknownKeys('checkpoint', cp, ['uri', 'everySteps', 'everySeconds', 'keepLast']);
  const C = DEFAULTS.checkpoint;
  const cpGiven = c.string('checkpoint.uri', cp.uri, { required: false });
  const cpUri = cpGiven === undefined ? undefined : checkStoreUri(c, 'checkpoint.uri', cpGiven, 'a `file:///absolute/path` or `gs://bucket/prefix` URI');
  const everyStepsMax = Math.max(totalSteps ?? MAX_TOTAL_STEPS, 1);
  return {
    ...(cpUri !== undefined && { uri: cpUri.replace(/\/+$/, '') }),
    everySteps: c.number('checkpoint.everySteps', cp.everySteps, { integer: true, min: 0, max: everyStepsMax, fallback: C.everySteps }) ?? C.everySteps,
    everySeconds: c.number('checkpoint.everySeconds', cp.everySeconds, { min: 0, max: MAX_CHECKPOINT_SECONDS, fallback: C.everySeconds }) ?? C.everySeconds,
    keepLast: c.number('checkpoint.keepLast', cp.keepLast, { integer: true, min: 1, max: MAX_KEEP_LAST, fallback: C.keepLast }) ?? C.keepLast,
  };
}

/** Keras's EarlyStopping arguments; undefined when the object itself is refused. */
function checkEarlyStopping(c: Checker, value: unknown): EarlyStoppingConfig | undefined {
  const es = c.object('earlyStopping', value);
  if (!es) return undefined;
  const E = DEFAULTS.earlyStopping;
  c.noUnknownKeys('earlyStopping', es, ['monitor', 'mode', 'minDelta', 'patience', 'baseline', 'restoreBestWeights', 'startFromEpoch']);
  const baseline = es.baseline === undefined || es.baseline === null ? null : c.number('earlyStopping.baseline', es.baseline) ?? null;
  return {
    ...checkMonitorMode(c, 'earlyStopping', es, E.monitor),
    minDelta: Math.abs(c.number('earlyStopping.minDelta', es.minDelta, { min: 0, fallback: E.minDelta }) ?? 0),
    patience: c.number('earlyStopping.patience', es.patience, { integer: true, min: 0, max: MAX_EPOCH_COUNT, fallback: E.patience }) ?? 0,
    baseline,
    restoreBestWeights: c.boolean('earlyStopping.restoreBestWeights', es.restoreBestWeights, E.restoreBestWeights),
    startFromEpoch: c.number('earlyStopping.startFromEpoch', es.startFromEpoch, { integer: true, min: 0, max: MAX_EPOCH_COUNT, fallback: E.startFromEpoch }) ?? 0,
  };
}

/** Keras's ReduceLROnPlateau arguments; undefined when the object itself is refused. */
function checkReduceLrOnPlateau(c: Checker, value: unknown): ReduceLrOnPlateauConfig | undefined {
  const r = c.object('reduceLrOnPlateau', value);
  if (!r) return undefined;
  const R = DEFAULTS.reduceLrOnPlateau;
  c.noUnknownKeys('reduceLrOnPlateau', r, ['monitor', 'mode', 'factor', 'patience', 'minDelta', 'cooldown', 'minLr']);
  const factor = c.number('reduceLrOnPlateau.factor', r.factor, { exclusiveMin: 0, fallback: R.factor }) ?? R.factor;
  if (factor >= 1) c.fail('reduceLrOnPlateau.factor', 'a number greater than 0 and less than 1', factor);
  return {
    ...checkMonitorMode(c, 'reduceLrOnPlateau', r, R.monitor),
    factor,
    patience: c.number('reduceLrOnPlateau.patience', r.patience, { integer: true, min: 0, max: MAX_EPOCH_COUNT, fallback: R.patience }) ?? R.patience,
    minDelta: c.number('reduceLrOnPlateau.minDelta', r.minDelta, { min: 0, fallback: R.minDelta }) ?? R.minDelta,
    cooldown: c.number('reduceLrOnPlateau.cooldown', r.cooldown, { integer: true, min: 0, max: MAX_EPOCH_COUNT, fallback: R.cooldown }) ?? R.cooldown,
    minLr: c.number('reduceLrOnPlateau.minLr', r.minLr, { min: 0, fallback: R.minLr }) ?? R.minLr,
  };
}

/** Activity timeouts; an epoch's activity must outlive one heartbeat interval, or it times out before its first heartbeat. */
function checkTimeouts(c: Checker, value: unknown): Timeouts {
  const t = c.object('timeouts', value, false) ?? {};
  c.noUnknownKeys('timeouts', t, ['heartbeatSeconds', 'epochMinutes']);
  const T = DEFAULTS.timeouts;
  const timeouts: Timeouts = {
    heartbeatSeconds: c.number('timeouts.heartbeatSeconds', t.heartbeatSeconds, { min: 1, max: MAX_HEARTBEAT_SECONDS, fallback: T.heartbeatSeconds }) ?? T.heartbeatSeconds,
    epochMinutes: c.number('timeouts.epochMinutes', t.epochMinutes, { exclusiveMin: 0, max: MAX_EPOCH_MINUTES, fallback: T.epochMinutes }) ?? T.epochMinutes,
  };
  if (timeouts.epochMinutes * 60 <= timeouts.heartbeatSeconds && t.epochMinutes !== undefined) {
    c.fail('timeouts.epochMinutes', `more than \`timeouts.heartbeatSeconds\` (${timeouts.heartbeatSeconds} s) in minutes`, t.epochMinutes);
  }
  return timeouts;
}

/** Validates a `trainModel` input and fills in defaults. Throws ConfigError naming every bad field. */
export function parseTrainConfig(input: unknown): TrainConfig {
  const c = new Checker();
  const o = c.object('input', input);
  if (!o) {
    c.throwIfAny('Invalid trainModel input');
    throw new Error('unreachable');
  }
  c.noUnknownKeys('', o, TOP_LEVEL_FIELDS);

  const runId = o.runId === undefined ? undefined : checkPathSegment(c, 'runId', o.runId);
  const model = checkModel(c, o.model);

  const dataObj = c.object('data', o.data);
  if (dataObj) c.noUnknownKeys('data', dataObj, ['train', 'eval']);
  const train = dataObj && checkDataset(c, 'data.train', dataObj.train);
  const evalSet = dataObj && checkDataset(c, 'data.eval', dataObj.eval);

  const hyperparameters = checkHyperparameters(c, o.hyperparameters);

  const loss = c.oneOf('loss', o.loss, LOSSES, DEFAULTS.loss) ?? DEFAULTS.loss;
  const stepsPerEpoch = c.number('stepsPerEpoch', o.stepsPerEpoch, { integer: true, min: 1, max: MAX_STEPS_PER_EPOCH });
  const maxEpochs = c.number('maxEpochs', o.maxEpochs, { integer: true, min: 1, max: MAX_EPOCHS });
  const totalSteps = stepsPerEpoch !== undefined && maxEpochs !== undefined ? stepsPerEpoch * maxEpochs : undefined;
  if (totalSteps !== undefined && totalSteps > MAX_TOTAL_STEPS) {
    c.fail('maxEpochs', `a whole number whose product with \`stepsPerEpoch\` (${stepsPerEpoch}) is at most ${MAX_TOTAL_STEPS} steps`, maxEpochs);
  }
  // tfjs treats seed 0 as "unseeded" in some initializers, so seeds start at 1.
  const seed = c.number('seed', o.seed, { integer: true, min: 1, max: MAX_SEED, fallback: DEFAULTS.seed }) ?? DEFAULTS.seed;

  const checkpoint = checkCheckpointPolicy(c, o.checkpoint, totalSteps);

  const earlyStopping = o.earlyStopping === undefined ? undefined : checkEarlyStopping(c, o.earlyStopping);

  const reduceLrOnPlateau = o.reduceLrOnPlateau === undefined ? undefined : checkReduceLrOnPlateau(c, o.reduceLrOnPlateau);

  const warmGiven = c.string('warmStartFrom', o.warmStartFrom, { required: false });
  const warmStartFrom = warmGiven === undefined ? undefined : checkStoreUri(c, 'warmStartFrom', warmGiven, 'a checkpoint URI (`file:///...` or `gs://...`)');
  const resume = c.boolean('resume', o.resume, false);
  const tracking = parseTracking(c, o.tracking);
  const continueAsNewEvery = c.number('continueAsNewEvery', o.continueAsNewEvery, { integer: true, min: 0, max: MAX_EPOCHS, fallback: DEFAULTS.continueAsNewEvery }) ?? 0;
  const historyLimit = c.number('historyLimit', o.historyLimit, { integer: true, min: 1, max: MAX_HISTORY_LIMIT, fallback: DEFAULTS.historyLimit }) ?? DEFAULTS.historyLimit;

  const timeouts = checkTimeouts(c, o.timeouts);
  const searchTrial = checkSearchTrial(c, o.searchTrial);

  c.throwIfAny('Invalid trainModel input');
  // Every required value was checked above; throwIfAny guarantees they are defined here.
  return {
    ...(runId !== undefined && { runId }),
    model: model!,
    data: { train: train!, eval: evalSet! },
    hyperparameters,
    loss,
    stepsPerEpoch: stepsPerEpoch!,
    maxEpochs: maxEpochs!,
    seed,
    checkpoint,
    ...(earlyStopping && { earlyStopping }),
    ...(reduceLrOnPlateau && { reduceLrOnPlateau }),
    ...(warmStartFrom !== undefined && { warmStartFrom }),
    ...(resume && { resume: true as const }),
    ...(tracking && { tracking }),
    continueAsNewEvery,
    historyLimit,
    timeouts,
    ...(searchTrial && { searchTrial }),
  };
}

function checkSearchTrial(c: Checker, value: unknown): SearchTrialMark | undefined {
  if (value === undefined) return undefined;
  const o = c.object('searchTrial', value);
  if (!o) return undefined;
  c.noUnknownKeys('searchTrial', o, ['mlflow']);
  if (typeof o.mlflow !== 'boolean') return c.fail('searchTrial.mlflow', 'a boolean', o.mlflow);
  return { mlflow: o.mlflow };
}

export { isObject };
