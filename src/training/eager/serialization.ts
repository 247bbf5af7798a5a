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

function toArrayBuffer(data: tf.io.WeightData): ArrayBuffer {
  return Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : (data as ArrayBuffer);
}

/** model.json + weights.bin in the standard tfjs-layers format. */
export async function serializeModel(model: tf.LayersModel): Promise<{ modelJson: Buffer; weights: Buffer }> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifacts?.weightData || !artifacts.weightSpecs) throw new Error('tfjs returned no weights when saving the model');
  const modelJson = {
    format: LAYERS_MODEL_FORMAT,
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
    convertedBy: 'durable-train',
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs }],
  };
  return { modelJson: Buffer.from(JSON.stringify(modelJson)), weights: Buffer.from(toArrayBuffer(artifacts.weightData)) };
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
