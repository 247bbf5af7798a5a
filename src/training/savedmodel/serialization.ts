/**
 * The savedmodel route's files. A checkpoint holds the model variables' raw bytes as weights.bin
 * and the optimizer's as optimizer.bin (int32 words, as get_state returns them), described by
 * model.json (format SAVEDMODEL_WEIGHTS_FORMAT, naming the SavedModel) and state.json; the batch
 * order and the epoch-loss sum work exactly as in the eager route. finalizeRun exports the
 * model.json + weights.bin pair as the run's model.
 */
import type { TrainConfig } from '../../config/train-config';
import type { ModelFiles } from '../route';
import { fail, METADATA_FILE, type SavedModelMetadata, type StateVariable } from './metadata';

/** model.json of a savedmodel checkpoint or export. */
export const SAVEDMODEL_WEIGHTS_FORMAT = 'durable-train/savedmodel-weights@1';

export interface SavedModelWeightsDescription {
  readonly format: typeof SAVEDMODEL_WEIGHTS_FORMAT;
  /** The SavedModel's URI (its model spec's `uri`). */
  readonly savedModel: string;
  readonly encoding: string;
  readonly variables: readonly StateVariable[];
}

/** state.json of a savedmodel checkpoint (the fields the two routes share have the same names and meaning). */
export interface SavedModelCheckpointState {
  readonly format: 'durable-train/state@1';
  readonly step: number;
  readonly epoch: number;
  readonly learningRate: number;
  readonly model: { readonly kind: 'savedmodel'; readonly uri: string; readonly metadataSha256: string };
  readonly optimizer: { readonly class: string; readonly iterations: number; readonly learningRateVariable: string };
  /** weights.bin holds model.variables, optimizer.bin optimizer.variables, as described here. */
  readonly stateLayout: { readonly encoding: 'raw-bytes-as-int32-words@1'; readonly modelWords: number; readonly optimizerWords: number };
  readonly dataCursor: { readonly scheme: 'permutation-stream@1'; readonly seed: number; readonly batchSize: number; readonly step: number };
  /** Randomness inside the graph (dropout) comes from Keras seed-generator variables, which are in weights.bin. */
  readonly rng: { readonly scheme: 'in-graph-seed-variables@1'; readonly seed: number };
  readonly epochLoss: { readonly sum: number; readonly steps: number };
  readonly backend: string;
  readonly config: TrainConfig;
}

/** Key order is part of the checkpoint bytes: keep it. */
export function weightsDescription(savedModelUri: string, metadata: SavedModelMetadata): SavedModelWeightsDescription {
  return {
    format: SAVEDMODEL_WEIGHTS_FORMAT,
    savedModel: savedModelUri,
    encoding: 'raw little-endian bytes of each variable, in this order',
    variables: metadata.state.model.variables,
  };
}

export function isSavedModelWeightsJson(description: Readonly<Record<string, unknown>>): boolean {
  return description.format === SAVEDMODEL_WEIGHTS_FORMAT;
}

const layout = (vs: readonly StateVariable[]): string => vs.map((v) => `${v.name}:${v.dtype}[${v.shape.join(',')}]`).join(' ');

/**
 * The model bytes of `files` when they fit the SavedModel described by `metadata`: same format,
 * same variables (names, dtypes, shapes, in order), same size. Anything else is an input error.
 */
export function modelWordsFitting(files: ModelFiles, metadata: SavedModelMetadata, savedModelUri: string, what: string): Buffer {
  const d = files.description as Partial<SavedModelWeightsDescription>;
  if (!isSavedModelWeightsJson(files.description)) {
    fail(`${what}: expected the weights of a trainable SavedModel (format \`${SAVEDMODEL_WEIGHTS_FORMAT}\`), got format ${JSON.stringify(d.format)} at ${files.uri}`);
  }
  const want = layout(metadata.state.model.variables);
  const got = layout(d.variables ?? []);
  if (got !== want) {
    fail(`${what}: the variables at ${files.uri} (${got || 'none'}) do not fit the SavedModel at ${savedModelUri} (${want}, from its ${METADATA_FILE})`);
  }
  const bytes = metadata.state.model.words * 4;
  if (files.weights.length !== bytes) {
    fail(`${what}: ${files.uri} has ${files.weights.length} bytes of weights, the SavedModel at ${savedModelUri} needs ${bytes}`);
  }
  return files.weights;
}
