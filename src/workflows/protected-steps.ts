/**
 * Which checkpoint steps retention must keep besides the last K, decided in the workflow (pure).
 *
 * The run exports early stopping's own best when `restoreBestWeights` is set (`restoreEpoch`: with
 * minDelta, float32 rounding, baseline and startFromEpoch as Keras decides them), which can differ
 * from the best by a plain comparison of the monitored values: keepLast 1, minDelta 0.05,
 * patience 2, val_loss 1.0 / 0.97 / 0.96 restores epoch 1 while the plain best is epoch 3. Both
 * are kept: the first is the model the run will export, the second is what the `progress` query
 * reports as `bestCheckpointUri`.
 */
import type { TrainConfig } from '../config/train-config';
import { restoreEpoch, type EarlyStoppingState } from './callbacks';

export function protectedSteps(
  config: Pick<TrainConfig, 'earlyStopping' | 'stepsPerEpoch'>,
  state: { readonly best: { readonly step: number } | null; readonly earlyStopping: EarlyStoppingState | null },
): number[] {
  const steps = new Set<number>();
  if (state.best) steps.add(state.best.step);
  const restore = config.earlyStopping && state.earlyStopping ? restoreEpoch(config.earlyStopping, state.earlyStopping) : null;
  if (restore !== null) steps.add(restore * config.stepsPerEpoch);
  return [...steps].sort((a, b) => a - b);
}
