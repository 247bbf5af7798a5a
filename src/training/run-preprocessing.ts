/**
 * Where a run's input transform lives (tabular datasets: tabular-preprocess.ts): fitted ONCE on
 * the training split and written create-only to `<run>/preprocessing.json`, copied into every
 * checkpoint, exported beside the model. Every later load (a resumed run in a new process, an
 * evaluation, a champion/challenger comparison) is given the stored transform, so no split is ever
 * normalized with statistics of its own and a resumed run sees bitwise the same inputs.
 */
import { checkpointObjectKey, PREPROCESSING_JSON } from '../checkpoints/layout';
import { PreconditionFailedError, type CheckpointStore } from '../checkpoints/store';
import { SHARDED_DATASET } from '../config/sharded-data';
import type { DatasetSpec } from '../config/train-config';
import { naming, openShardedEval } from '../data/streamed';
import type { Dataset } from './dataset';
import type { DatasetRegistry } from './dataset-registry';
import type { EvalData } from './eval-data';
import { UserEvalStream } from './record-source';
import { parsePreprocessing, preprocessingBytes, readPreprocessing, type Preprocessing } from './tabular-preprocess';

/** The bytes of a dataset's transform, if it has one (what a checkpoint and an export carry). */
export function preprocessingObject(data: Dataset): Buffer | undefined {
  return data.preprocessing === undefined ? undefined : preprocessingBytes(data.preprocessing as Preprocessing);
}

async function stored(store: CheckpointStore, key: string): Promise<Preprocessing | undefined> {
  const bytes = await store.get(key);
  return bytes && readPreprocessing(bytes, store.uriOf(key));
}

/** The training split, with the run's stored transform; the first load fits it and stores it. */
export async function loadTrainData(datasets: DatasetRegistry, store: CheckpointStore, spec: DatasetSpec): Promise<Dataset> {
  const saved = await stored(store, PREPROCESSING_JSON);
  if (saved) return datasets.load(spec, { preprocessing: saved });
  const data = await datasets.load(spec);
  const bytes = preprocessingObject(data);
  if (!bytes) return data;
  // Validates what the factory produced before it becomes the run's transform.
  parsePreprocessing(data.preprocessing, `the transform fitted on ${spec.name}`);
  try {
    await store.putIfVersion(PREPROCESSING_JSON, bytes, undefined);
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
    // Another attempt stored it first: train with the stored one, as every later attempt will.
    return loadTrainData(datasets, store, spec);
  }
  return data;
}

/**
 * The evaluation split, given the transform of the checkpoint at `step` (else the run folder's,
 * else the training split's, fitted now): never statistics of the evaluation split itself. A
 * `sharded` one is streamed, never loaded whole (data/streamed.ts), with the stored transform if
 * the run has one (`params.normalize`, fitted by the index pass: data/preprocess.ts).
 */
export async function loadEvalData(datasets: DatasetRegistry, store: CheckpointStore, spec: DatasetSpec, trainSpec: DatasetSpec, step: number): Promise<EvalData> {
  const user = datasets.streamed(spec.name);
  if (user) return new UserEvalStream(spec.name, await user(spec), spec.limit);
  const saved = (await stored(store, checkpointObjectKey(step, PREPROCESSING_JSON))) ?? (await stored(store, PREPROCESSING_JSON));
  // Streamed: the training run's transform when it has one (`params.normalize`), else values as they are.
  if (spec.name === SHARDED_DATASET) return naming('data.eval', () => openShardedEval(spec, saved ? { preprocessing: saved } : {}));
  const preprocessing = saved ?? (await datasets.load(trainSpec)).preprocessing;
  return preprocessing === undefined ? datasets.load(spec) : datasets.load(spec, { preprocessing });
}

/** The evaluation split as an exported model expects it: with the transform exported beside it, if any. */
export async function loadDataForModel(datasets: DatasetRegistry, modelStore: CheckpointStore, spec: DatasetSpec): Promise<EvalData> {
  const user = datasets.streamed(spec.name);
  if (user) return new UserEvalStream(spec.name, await user(spec), spec.limit);
  const saved = await stored(modelStore, PREPROCESSING_JSON);
  if (spec.name === SHARDED_DATASET) return naming('data.eval', () => openShardedEval(spec, saved ? { preprocessing: saved } : {}));
  return saved ? datasets.load(spec, { preprocessing: saved }) : datasets.load(spec);
}
