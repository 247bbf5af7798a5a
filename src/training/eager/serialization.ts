/**
 * The eager route's files: model.json + weights.bin in the standard tfjs-layers format (every
 * checkpoint and export is a loadable tfjs model), and the schema of its checkpoints' state.json.
 */
import * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../../config/train-config';
import { MODEL_JSON, WEIGHTS_BIN } from '../../checkpoints/layout';
import { NonRetryableTrainingError } from '../protocol';
import type { EagerOptimizerState } from './optimizers';

export const LAYERS_MODEL_FORMAT = 'layers-model';

/** Everything in an eager checkpoint's state.json: with the model and optimizer bytes, all that training needs to continue. */
export interface EagerCheckpointState {
  readonly format: 'durable-train/state@1';
  readonly step: number;
  readonly epoch: number;
  readonly learningRate: number;
  readonly optimizer: EagerOptimizerState;
  /** The batch order is a pure function of (seed, step): the cursor is the step. */
  readonly dataCursor: { readonly scheme: 'permutation-stream@1'; readonly seed: number; readonly batchSize: number; readonly step: number };
  /** Dropout masks are drawn from hash32(seed, step, layer): nothing else to save. */
  readonly rng: { readonly scheme: 'hash32(seed,step,layer)@1'; readonly seed: number };
  /** Running sum of float32 losses since the epoch began, so the epoch's mean survives a resume. */
  readonly epochLoss: { readonly sum: number; readonly steps: number };
  readonly backend: string;
  readonly config: TrainConfig;
}

/** A tfjs-layers model.json (converted Keras models may leave out `format`). */
export function isLayersModelJson(description: Readonly<Record<string, unknown>>): boolean {
  return description.format === LAYERS_MODEL_FORMAT || (description.format === undefined && typeof description.modelTopology === 'object');
}

/** A model's weights as tfjs-layers names them, in save order (`LayersModel.getNamedWeights`, what `save` encodes). */
function namedWeights(model: tf.LayersModel): Array<{ name: string; tensor: tf.Tensor }> {
  return (model as unknown as { getNamedWeights(): Array<{ name: string; tensor: tf.Tensor }> }).getNamedWeights();
}

/**
 * model.json + weights.bin in the standard tfjs-layers format, the bytes `model.save` writes, with
 * weights.bin as one chunk per weight tensor (its host copy) instead of one buffer: nothing is
 * concatenated, the store writes the chunks with writev and hashes them as it goes.
 */
export async function serializeModel(model: tf.LayersModel): Promise<{ modelJson: Buffer; weights: Buffer[] }> {
  const named = namedWeights(model);
  const weightSpecs: tf.io.WeightsManifestEntry[] = named.map(({ name, tensor }) => {
    // What encodeWeights writes byte for byte without a conversion (string weights have a length-prefixed encoding).
    if (tensor.dtype !== 'float32' && tensor.dtype !== 'int32' && tensor.dtype !== 'bool') throw new Error(`Unsupported dtype in weight '${name}': ${tensor.dtype}`);
    return { name, shape: tensor.shape, dtype: tensor.dtype };
  });
  const values = await Promise.all(named.map(({ tensor }) => tensor.data()));
  const modelJson = {
    format: LAYERS_MODEL_FORMAT,
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
    convertedBy: 'durable-train',
    modelTopology: model.toJSON(null, false),
    weightsManifest: [{ paths: [WEIGHTS_BIN], weights: weightSpecs }],
  };
  return { modelJson: Buffer.from(JSON.stringify(modelJson)), weights: values.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength)) };
}

/** Loads a model.json + weights.bin pair; one that is not tfjs-layers is an input error. */
export async function deserializeModel(modelJsonBytes: Buffer, weights: Buffer, uri = MODEL_JSON): Promise<tf.LayersModel> {
  const json = JSON.parse(modelJsonBytes.toString('utf8')) as {
    format?: unknown;
    modelTopology?: object;
    weightsManifest?: Array<{ weights: tf.io.WeightsManifestEntry[] }>;
  };
  if (!isLayersModelJson(json) || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new NonRetryableTrainingError(
      `Expected ${uri} to be a tfjs-layers model (format \`${LAYERS_MODEL_FORMAT}\` with modelTopology and weightsManifest), got format ${JSON.stringify(json.format)}`,
    );
  }
  const weightSpecs = json.weightsManifest.flatMap((g) => g.weights);
  const weightData = new Uint8Array(weights).buffer;
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
}
