/**
 * Where a model's files come from, for every route: `warmStartFrom` (a checkpoint, a run's newest
 * checkpoint, or an exported model's folder) and the exported models that evaluateModels compares.
 * Routes decide what the files mean (router.ts picks the route from model.json).
 */
import { listCheckpointSteps, loadLatestCheckpoint, readCheckpoint } from '../checkpoints/format';
import { MANIFEST, MODEL_JSON, modelFolderOf, parseCheckpointUri, WEIGHTS_BIN } from '../checkpoints/layout';
import type { CheckpointStore } from '../checkpoints/store';
import { NonRetryableTrainingError } from './protocol';
import type { ModelFiles } from './route';

type OpenStore = (uri: string) => CheckpointStore;

/** model.json parsed; not a JSON object is an input error. */
export function describeModelJson(modelJson: Buffer, uri: string): Readonly<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(modelJson.toString('utf8'));
  } catch (err) {
    throw new NonRetryableTrainingError(`Expected the ${MODEL_JSON} at ${uri} to be JSON, got: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new NonRetryableTrainingError(`Expected the ${MODEL_JSON} at ${uri} to be a JSON object, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`);
  }
  return parsed as Record<string, unknown>;
}

function files(uri: string, modelJson: Buffer | undefined, weights: Buffer | undefined): ModelFiles | undefined {
  if (!modelJson || !weights) return undefined;
  return { uri, modelJson, weights, description: describeModelJson(modelJson, uri) };
}

/** The model.json and weights.bin of an exported model (`…/model/model.json` or its folder). */
export async function readExportedModel(uri: string, openStore: OpenStore): Promise<ModelFiles> {
  const folder = modelFolderOf(uri);
  const store = openStore(folder);
  const [modelJson, weights] = await Promise.all([store.get(MODEL_JSON), store.get(WEIGHTS_BIN)]);
  const found = files(folder, modelJson, weights);
  if (!found) throw new NonRetryableTrainingError(`Cannot evaluate ${uri}: no ${MODEL_JSON} and ${WEIGHTS_BIN} there`);
  return found;
}

/** The model files `warmStartFrom` names: a checkpoint, a run (its newest good checkpoint), or an exported model. */
export async function readWarmStartSource(uri: string, openStore: OpenStore, log: (message: string) => void): Promise<ModelFiles> {
  const store = openStore(uri);
  let found: ModelFiles | undefined;
  if (await store.get(MANIFEST)) {
    const at = parseCheckpointUri(uri);
    const read = at ? await readCheckpoint(openStore(at.runUri), at.step) : undefined;
    if (!read?.ok) throw new NonRetryableTrainingError(`warmStartFrom ${uri}: not a valid checkpoint`);
    found = files(uri, read.checkpoint.objects.get(MODEL_JSON), read.checkpoint.objects.get(WEIGHTS_BIN));
  } else if ((await listCheckpointSteps(store)).length > 0) {
    const latest = await loadLatestCheckpoint(store, Number.MAX_SAFE_INTEGER, log);
    found = latest && files(latest.uri, latest.objects.get(MODEL_JSON), latest.objects.get(WEIGHTS_BIN));
  } else {
    found = files(uri, await store.get(MODEL_JSON), await store.get(WEIGHTS_BIN));
  }
  if (!found) throw new NonRetryableTrainingError(`warmStartFrom ${uri}: found no checkpoint or model there`);
  return found;
}
