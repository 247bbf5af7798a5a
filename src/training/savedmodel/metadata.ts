/**
 * What a trainable SavedModel is: `{ "kind": "savedmodel", "uri": ... }` names a directory that
 * tools/export_trainable_savedmodel.py wrote (saved_model.pb, variables/, and durable-train.json,
 * the metadata read here: endpoints, shapes, loss, metrics, optimizer, and the layout of the
 * state vectors that get_state / set_state exchange).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ModelSpec } from '../../config/train-config';
import { sha256 } from '../../checkpoints/digest';
import { NonRetryableTrainingError } from '../protocol';

export const SAVEDMODEL_FORMAT = 'durable-train/trainable-savedmodel@1';
export const METADATA_FILE = 'durable-train.json';
export const REQUIRED_ENDPOINTS = ['train_step', 'eval_step', 'get_state', 'set_state', 'set_learning_rate'] as const;
export type Endpoint = (typeof REQUIRED_ENDPOINTS)[number];
export const TAGS = ['serve'];
export const EXPORTER = 'tools/export_trainable_savedmodel.py';

export interface SavedModelSpec {
  readonly kind: 'savedmodel';
  /** `file:///abs/dir` or `gs://bucket/prefix` of the SavedModel directory (saved_model.pb, variables/, durable-train.json). */
  readonly uri: string;
}

export function isSavedModelSpec(spec: ModelSpec | undefined): spec is ModelSpec & SavedModelSpec {
  return !!spec && (spec as { kind?: unknown }).kind === 'savedmodel';
}

export interface StateVariable {
  readonly name: string;
  readonly shape: number[];
  readonly dtype: string;
  readonly offset: number;
  readonly words: number;
}

/** durable-train.json, written by the exporter beside saved_model.pb. */
export interface SavedModelMetadata {
  readonly format: typeof SAVEDMODEL_FORMAT;
  readonly endpoints: string[];
  readonly inputs: { readonly x: { shape: (number | null)[] }; readonly y: { shape: (number | null)[] } };
  readonly loss: string;
  /** Names of eval_step's outputs (per-batch sums), `loss` first. */
  readonly metrics: string[];
  readonly optimizer: {
    readonly class: string;
    readonly config: Record<string, unknown>;
    readonly learningRateVariable: string;
    /** The optimizer's step counter (int64 in Keras: two words of the state). */
    readonly iterationsVariable?: string;
  };
  readonly state: {
    readonly model: { readonly words: number; readonly variables: StateVariable[] };
    readonly optimizer: { readonly words: number; readonly variables: StateVariable[] };
  };
  readonly exportedWith?: Record<string, string>;
}

export function fail(message: string): never {
  throw new NonRetryableTrainingError(message);
}

export function readMetadata(dir: string, uri: string): { metadata: SavedModelMetadata; sha256: string } {
  const file = path.join(dir, METADATA_FILE);
  if (!fs.existsSync(path.join(dir, 'saved_model.pb'))) fail(`No SavedModel at ${uri}: there is no saved_model.pb`);
  if (!fs.existsSync(file)) {
    fail(`The SavedModel at ${uri} has no ${METADATA_FILE}: it is not a trainable SavedModel (export it with ${EXPORTER})`);
  }
  const bytes = fs.readFileSync(file);
  let metadata: SavedModelMetadata;
  try {
    metadata = JSON.parse(bytes.toString('utf8')) as SavedModelMetadata;
  } catch (err) {
    fail(`${METADATA_FILE} of the SavedModel at ${uri} is not valid JSON: ${(err as Error).message}`);
  }
  if (metadata.format !== SAVEDMODEL_FORMAT) {
    fail(`${METADATA_FILE} of the SavedModel at ${uri} has format ${JSON.stringify(metadata.format)}, expected ${SAVEDMODEL_FORMAT}`);
  }
  return { metadata, sha256: sha256(bytes) };
}
