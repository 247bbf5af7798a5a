/**
 * Early stopping and learning-rate-on-plateau decisions, step by step, exactly as Keras 3's
 * `EarlyStopping.on_epoch_end` and `ReduceLROnPlateau.on_epoch_end` make them.
 *
 * Workflow code: pure and deterministic. The states are plain JSON (no NaN or Infinity, which JSON
 * cannot carry), so they survive continue-as-new inside the workflow input. Our epochs are numbered
 * from 1; Keras's epoch index is `epoch - 1`. test/callbacks.test.ts checks every step against
 * outcomes recorded from the real Keras callbacks (tools/keras_callbacks_reference.py).
 *
 * Keras compares monitored values as float32 tensors (`ops.less(current - min_delta, best)` converts
 * both Python floats to float32), so differences below float32 resolution are not improvements:
 * `improves` below rounds both sides with Math.fround to match.
 */
import type { EarlyStoppingConfig, Mode, ReduceLrOnPlateauConfig } from '../config/train-config';

/** A float as JSON can carry it: non-finite values are spelled as strings. */
export type JsonFloat = number | 'NaN' | 'Infinity' | '-Infinity';

/** Encodes a number for JSON-safe state. */
export function toJsonFloat(x: number): JsonFloat {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  return x;
}

/** Decodes a JsonFloat back to a number. */
export function fromJsonFloat(x: JsonFloat): number {
  return typeof x === 'number' ? x : x === 'NaN' ? NaN : x === 'Infinity' ? Infinity : -Infinity;
}

/** The monitored value, or undefined when absent (Keras's `logs.get(monitor)` is None). */
function monitored(metrics: Readonly<Record<string, number>>, monitor: string): number | undefined {
  if (!Object.prototype.hasOwnProperty.call(metrics, monitor)) return undefined;
  const value: unknown = metrics[monitor];
  return typeof value === 'number' ? value : undefined;
}

/** Keras's `MonitorCallback._is_improvement`: `monitor_op(current - min_delta, reference)` in float32, min_delta negated for 'min'. */
function improves(mode: Mode, minDelta: number, current: number, reference: JsonFloat | null): boolean {
  if (reference === null) return true;
  const ref = Math.fround(fromJsonFloat(reference));
  return mode === 'min' ? Math.fround(current + minDelta) < ref : Math.fround(current - minDelta) > ref;
}

// ---------------------------------------------------------------------------------------------
// EarlyStopping

/** Keras's EarlyStopping attributes, as JSON (epochs numbered from 1). */
export interface EarlyStoppingState {
  /** Monitored epochs since the last improvement that also beat the baseline (Keras `wait`). */
  readonly wait: number;
  /** Best monitored value so far; null before the first monitored epoch (Keras `best` is None). */
  readonly best: JsonFloat | null;
  /** Epoch of `best` (Keras `best_epoch + 1`); null until the first monitored epoch, when Keras has no best weights. */
  readonly bestEpoch: number | null;
  /** Epoch at which stopping was requested (Keras `stopped_epoch + 1`); null while not stopped. */
  readonly stoppedEpoch: number | null;
}

/** The outcome of one epoch's early-stopping check. */
export interface EarlyStoppingStep {
  readonly state: EarlyStoppingState;
  /** Stop training after this epoch (Keras sets `model.stop_training`). */
  readonly stop: boolean;
  /** This epoch's value became the new best (its checkpoint is the one to restore). */
  readonly improved: boolean;
  /** The monitored metric was absent from `metrics`: nothing was counted (Keras only warns). */
  readonly missing: boolean;
  /** The epoch is within `startFromEpoch`: nothing was counted. */
  readonly warmup: boolean;
}

/** Keras's `EarlyStopping.on_train_begin` state. */
export function initialEarlyStopping(): EarlyStoppingState {
  return { wait: 0, best: null, bestEpoch: null, stoppedEpoch: null };
}

/** Keras 3's `EarlyStopping.on_epoch_end` for our 1-based `epoch`; returns a new state. */
export function stepEarlyStopping(
  cfg: EarlyStoppingConfig,
  state: EarlyStoppingState,
  epoch: number,
  metrics: Readonly<Record<string, number>>,
): EarlyStoppingStep {
  const index = epoch - 1; // Keras's epoch index
  const current = monitored(metrics, cfg.monitor);
  if (current === undefined) return { state: { ...state }, stop: false, improved: false, missing: true, warmup: false };
  if (index < cfg.startFromEpoch) return { state: { ...state }, stop: false, improved: false, missing: false, warmup: true };

  // Keras records the first monitored epoch's weights when restore_best_weights is set; since `best`
  // is still None then, that epoch also counts as an improvement below, so bestEpoch is set either way.
  let bestEpoch = cfg.restoreBestWeights && state.bestEpoch === null ? epoch : state.bestEpoch;
  let wait = state.wait + 1;
  if (improves(cfg.mode, cfg.minDelta, current, state.best)) {
    bestEpoch = epoch;
    // Only restart wait if we beat both the baseline and our previous best (and never stop on an improving epoch).
    if (cfg.baseline === null || improves(cfg.mode, cfg.minDelta, current, cfg.baseline)) wait = 0;
    return {
      state: { ...state, wait, best: toJsonFloat(current), bestEpoch },
      stop: false,
      improved: true,
      missing: false,
      warmup: false,
    };
  }
  // Keras's `epoch > 0`: unreachable in Keras 3 (best starts as None, so the first monitored epoch always improves), kept for fidelity.
  const stop = wait >= cfg.patience && index > 0;
  return {
    state: { ...state, wait, bestEpoch, stoppedEpoch: stop ? epoch : state.stoppedEpoch },
    stop,
    improved: false,
    missing: false,
    warmup: false,
  };
}

/** Epoch whose checkpoint becomes the final model at train end, stopped or not (keras#12511); null: keep the last epoch's. */
export function restoreEpoch(cfg: EarlyStoppingConfig, state: EarlyStoppingState): number | null {
  return cfg.restoreBestWeights ? state.bestEpoch : null;
}

// ---------------------------------------------------------------------------------------------
// ReduceLROnPlateau

/** Keras's ReduceLROnPlateau attributes, as JSON. */
export interface PlateauState {
  /** Epochs without improvement outside cooldown (Keras `wait`). */
  readonly wait: number;
  /** Epochs of cooldown left (Keras `cooldown_counter`). */
  readonly cooldownCounter: number;
  /** Best monitored value; null before the first monitored epoch (Keras `best` is None, i.e. ±inf). */
  readonly best: JsonFloat | null;
  /** The float32 learning rate after the last step (informational: stepPlateau reads its `currentLr`). */
  readonly lr: number;
}

/** The outcome of one epoch's plateau check. */
export interface PlateauStep {
  readonly state: PlateauState;
  /** The learning rate for the next epoch, as float32 (equal to float32(currentLr) unless reduced). */
  readonly newLr: number;
  /** The learning rate was reduced this epoch (cooldown starts). */
  readonly reduced: boolean;
  /** The monitored metric was absent from `metrics`: nothing changed, not even the cooldown. */
  readonly missing: boolean;
}

/** Keras's `ReduceLROnPlateau.on_train_begin` state (`_reset`), for a run starting at `initialLr`. */
export function initialPlateau(_cfg: ReduceLrOnPlateauConfig, initialLr: number): PlateauState {
  return { wait: 0, cooldownCounter: 0, best: null, lr: Math.fround(initialLr) };
}

/** Keras 3's `ReduceLROnPlateau.on_epoch_end` with the optimizer at `currentLr`; returns a new state. */
export function stepPlateau(
  cfg: ReduceLrOnPlateauConfig,
  state: PlateauState,
  metrics: Readonly<Record<string, number>>,
  currentLr: number,
): PlateauStep {
  // Keras keeps the LR in a float32 variable, so we fround every LR we hand out: sequences match Keras exactly.
  const oldLr = Math.fround(currentLr);
  const current = monitored(metrics, cfg.monitor);
  if (current === undefined) return { state: { ...state, lr: oldLr }, newLr: oldLr, reduced: false, missing: true };

  let { wait, cooldownCounter, best } = state;
  let newLr = oldLr;
  let reduced = false;
  if (cooldownCounter > 0) {
    cooldownCounter -= 1;
    wait = 0;
  }
  if (improves(cfg.mode, cfg.minDelta, current, best)) {
    best = toJsonFloat(current);
    wait = 0;
  } else if (!(cooldownCounter > 0)) {
    wait += 1;
    // At the floor (old_lr <= float32(min_lr)) Keras neither reduces nor resets wait, which keeps growing.
    if (wait >= cfg.patience && oldLr > Math.fround(cfg.minLr)) {
      newLr = Math.fround(Math.max(oldLr * cfg.factor, cfg.minLr));
      reduced = true;
      cooldownCounter = cfg.cooldown;
      wait = 0;
    }
  }
  return { state: { wait, cooldownCounter, best, lr: newLr }, newLr, reduced, missing: false };
}
