/** Warm start on the eager route: a fresh model takes the weights of a tfjs-layers model of the same shapes. */
import * as tf from '@tensorflow/tfjs';
import { NonRetryableTrainingError } from '../protocol';
import type { ModelFiles } from '../route';
import { deserializeModel, isLayersModelJson, LAYERS_MODEL_FORMAT } from './serialization';

export async function copyWeightsInto(model: tf.LayersModel, source: ModelFiles, warmStartFrom: string): Promise<void> {
  if (!isLayersModelJson(source.description)) {
    throw new NonRetryableTrainingError(
      `warmStartFrom ${warmStartFrom}: expected a tfjs-layers model (format \`${LAYERS_MODEL_FORMAT}\`) for this tfjs-layers run, ` +
        `got format ${JSON.stringify(source.description.format)} at ${source.uri}`,
    );
  }
  const from = await deserializeModel(source.modelJson, source.weights, source.uri);
  try {
    const weights = from.getWeights();
    const to = model.getWeights();
    const mismatch = weights.length !== to.length || weights.some((w, i) => !tf.util.arraysEqual(w.shape, to[i]!.shape));
    if (mismatch) {
      throw new NonRetryableTrainingError(
        `warmStartFrom ${warmStartFrom}: its weights (${weights.map((w) => `[${w.shape}]`).join(' ')}) do not fit this model (${to.map((w) => `[${w.shape}]`).join(' ')})`,
      );
    }
    model.setWeights(weights);
  } finally {
    from.dispose();
  }
}
