/**
 * Train and evaluation data checked against each other before the first step: the model is built
 * for the training split's shapes, so an evaluation split of other shapes fails at its first
 * evaluation, on every attempt (`Input 0 is incompatible with layer …`), after a whole epoch of
 * training. Refused instead, non-retryably, naming both fields and both shapes. Pure.
 */
import type { DatasetShapes } from './dataset';
import { NonRetryableTrainingError } from './protocol';

const shown = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/** The message for train and eval shapes that differ, else undefined. */
export function dataShapeMismatch(train: DatasetShapes, evalData: DatasetShapes, names: { train: string; eval: string } = { train: 'data.train', eval: 'data.eval' }): string | undefined {
  const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((n, i) => n === b[i]);
  const parts: string[] = [];
  if (!same(train.xShape, evalData.xShape)) parts.push(`features ${shown(evalData.xShape)} where \`${names.train}\` has ${shown(train.xShape)}`);
  if (!same(train.yShape, evalData.yShape)) parts.push(`targets (classes or outputs) ${shown(evalData.yShape)} where \`${names.train}\` has ${shown(train.yShape)}`);
  if (parts.length === 0) return undefined;
  return `Expected \`${names.eval}\` to have the example shapes of \`${names.train}\` (features ${shown(train.xShape)}, targets ${shown(train.yShape)}): the model is built for them; got ${parts.join(' and ')}`;
}

/** Throws NonRetryableTrainingError when the splits' shapes differ. */
export function checkDataShapes(train: DatasetShapes, evalData: DatasetShapes): void {
  const mismatch = dataShapeMismatch(train, evalData);
  if (mismatch !== undefined) throw new NonRetryableTrainingError(mismatch);
}
