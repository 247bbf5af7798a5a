/** Evaluation on the eager route: one forward pass per batch over a whole dataset. */
import * as tf from '@tensorflow/tfjs';
import type { LossName } from '../../config/train-config';
import { evalBatches, type EvalData } from '../eval-data';
import { breathe } from '../liveness';
import { lossFunction } from './step';

/**
 * Mean loss and (for classification) accuracy over a whole dataset (in memory or streamed: the same
 * batches either way, eval-data.ts), in batches, yielding to the event loop after each (a large eval
 * set keeps the trainer answering and heartbeating).
 */
export async function evaluateModel(model: tf.LayersModel, data: EvalData, loss: LossName, batchSize = 512): Promise<Record<string, number>> {
  const lossFn = lossFunction(loss);
  const classification = loss !== 'meanSquaredError';
  let lossSum = 0;
  let correct = 0;
  let examples = 0;
  for await (const batch of evalBatches(data, batchSize)) {
    const { n } = batch;
    examples += n;
    const [l, c] = tf.tidy(() => {
      const x = tf.tensor(batch.x, [n, ...data.xShape]);
      const y = tf.tensor(batch.y, [n, ...data.yShape]);
      // One forward pass per batch: predict() would split it again into batches of 32.
      const p = model.apply(x, { training: false }) as tf.Tensor;
      const batchLoss = tf.sum(lossFn(y, p));
      const hits = classification
        ? tf.sum(tf.cast(tf.equal(tf.argMax(p, -1), tf.argMax(y, -1)), 'float32'))
        : tf.scalar(0);
      return [batchLoss.dataSync()[0]!, hits.dataSync()[0]!];
    });
    lossSum += l;
    correct += c;
    await breathe();
  }
  const metrics: Record<string, number> = { val_loss: lossSum / examples };
  if (classification) metrics.val_accuracy = correct / examples;
  return metrics;
}
