/**
 * Where everything lives under a run folder, and how URIs are put together. Pure: no Node
 * built-ins, no I/O, so workflows, activities and the trainer all import this one module and a
 * path or key format is written exactly once.
 *
 *   <root>/<runId>/                              a run folder (a search: <root>/<searchRunId>/trial-<n>/)
 *     checkpoints/<step: 12 digits>/             one checkpoint (model.json, weights.bin, optimizer.bin, state.json, [preprocessing.json]; manifest.json last)
 *     preprocessing.json                         a tabular run's input transform, fitted once on the training split (create-only)
 *     latest.json                                pointer to the newest committed step (compare-and-swap)
 *     lease.json                                 the run's writer lease and fencing token (compare-and-swap)
 *     run.json                                   the run's identity: fingerprint of what determines its weights
 *     checkpoints/<step>/w-<token>-<nonce>/<name>  an object whose canonical name another writer took first
 *     metrics/epoch-<epoch: 8 digits>.json       one record per evaluated epoch, written once
 *     tensorboard/{train,validation}/…           one TensorBoard event file per recorded epoch
 *     metrics.jsonl, learning-curve.svg|png      written by finalizeRun
 *     model/model.json, model/weights.bin        the exported model (and model/preprocessing.json: the transform it expects)
 *     rungs/rung-<r>/model/                      successive halving: each rung's export of a trial
 *     lineage/round-<r: 6 digits>-<copied-from|copied-to>-trial-<n>.json  PBT: a checkpoint copy between trials, in both
 *     results.json|csv|svg                       a search's summary, in the search's folder
 *     search.json                                a search's identity and owners, in the search's folder (src/checkpoints/search-identity.ts)
 *     log/<seq: 12 digits>.jsonl                 a search's log: trial rows, edits, lineage; create-only segments (src/checkpoints/search-log.ts)
 *     retrain-decision.json                      a retrain's decision, beside the challenger's run
 *   <championRoot>/champions/<modelName>/champion.json, decisions/<n: 6 digits>.json
 */

import { STEP_DIGITS } from '../config/bounds';
export { MAX_STEP, STEP_DIGITS } from '../config/bounds';

export const CHECKPOINTS_PREFIX = 'checkpoints/';
export const LATEST_KEY = 'latest.json';
export const LEASE_KEY = 'lease.json';
export const RUN_JSON = 'run.json';
/** A search folder's owner record: the search's identity and the workflows that run it. */
export const SEARCH_JSON = 'search.json';
export const MANIFEST = 'manifest.json';
/** The objects of one checkpoint, besides its manifest. */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';
export const OPTIMIZER_BIN = 'optimizer.bin';
export const STATE_JSON = 'state.json';
/**
 * A tabular dataset's input transform (standardization, one-hot vocabularies, imputed values),
 * fitted on the training split: one name for the run folder's copy, each checkpoint's copy and
 * the exported model's copy, so a resumed run, an evaluation and a served model apply the same one.
 */
export const PREPROCESSING_JSON = 'preprocessing.json';

export const METRICS_PREFIX = 'metrics/';
export const METRICS_JSONL = 'metrics.jsonl';
export const LEARNING_CURVE_SVG = 'learning-curve.svg';
export const LEARNING_CURVE_PNG = 'learning-curve.png';
/** The exported model's folder under the run. */
export const MODEL_DIR = 'model';
export const RESULTS_JSON = 'results.json';
export const RESULTS_CSV = 'results.csv';
export const RESULTS_SVG = 'results.svg';
export const RETRAIN_DECISION = 'retrain-decision.json';

function pad(n: number, digits: number, what: string): string {
  if (!Number.isSafeInteger(n) || n < 0 || n >= 10 ** digits) {
    throw new RangeError(`Expected ${what} to be a whole number from 0 to ${10 ** digits - 1}, got ${String(n)}`);
  }
  return String(n).padStart(digits, '0');
}

/** `checkpoints/000000000120`: the key prefix of the checkpoint at `step`. */
export function checkpointKey(step: number): string {
  return `${CHECKPOINTS_PREFIX}${pad(step, STEP_DIGITS, 'a checkpoint step')}`;
}

/** `checkpoints/000000000120/<name>`. */
export function checkpointObjectKey(step: number, name: string): string {
  return `${checkpointKey(step)}/${name}`;
}

/** `w-000000000007-9f2c…`: the folder, inside a step, of one writer's objects whose canonical names were taken. */
export function writerDirName(token: number, nonce: string): string {
  if (!/^[0-9a-f]{1,32}$/.test(nonce)) throw new RangeError(`Expected a writer nonce of hex digits, got ${JSON.stringify(nonce)}`);
  return `w-${pad(token, STEP_DIGITS, 'a fencing token')}-${nonce}`;
}

const STEP_OBJECT_KEY = new RegExp(`^${CHECKPOINTS_PREFIX}(\\d{${STEP_DIGITS}})/(.+)$`);
/** Splits `checkpoints/<step>/<rest>` into the step and the rest; undefined for any other key. */
export function parseCheckpointObjectKey(key: string): { step: number; name: string } | undefined {
  const m = STEP_OBJECT_KEY.exec(key);
  return m ? { step: Number(m[1]), name: m[2]! } : undefined;
}

const MANIFEST_KEY = new RegExp(`^${CHECKPOINTS_PREFIX}(\\d{${STEP_DIGITS}})/${MANIFEST.replace('.', '\\.')}$`);
/** The step of a `checkpoints/<step>/manifest.json` key, else undefined. */
export function stepOfManifestKey(key: string): number | undefined {
  const m = MANIFEST_KEY.exec(key);
  return m ? Number(m[1]) : undefined;
}

const CHECKPOINT_URI = new RegExp(`^(.*)/${CHECKPOINTS_PREFIX}(\\d{${STEP_DIGITS}})/?$`);
/** Splits `<run>/checkpoints/<step>` into the run's URI and the step; undefined for any other URI. */
export function parseCheckpointUri(uri: string): { runUri: string; step: number } | undefined {
  const m = CHECKPOINT_URI.exec(uri);
  return m ? { runUri: m[1]!, step: Number(m[2]) } : undefined;
}

/** `metrics/epoch-00000003.json`. */
export function epochRecordKey(epoch: number): string {
  return `${METRICS_PREFIX}epoch-${pad(epoch, 8, 'an epoch')}.json`;
}

/** `model/model.json` (or `<dir>/model.json`). */
export function modelJsonKey(dir: string = MODEL_DIR): string {
  return `${dir}/${MODEL_JSON}`;
}

/** `model/weights.bin` (or `<dir>/weights.bin`). */
export function weightsKey(dir: string = MODEL_DIR): string {
  return `${dir}/${WEIGHTS_BIN}`;
}

/** `model/preprocessing.json` (or `<dir>/preprocessing.json`). */
export function preprocessingKey(dir: string = MODEL_DIR): string {
  return `${dir}/${PREPROCESSING_JSON}`;
}

/** `lineage/round-000002-copied-from-trial-3.json`: PBT's record of a checkpoint copy, in the recipient's and the donor's folders. */
export function lineageKey(round: number, role: 'copied-from' | 'copied-to', otherTrial: string): string {
  return `lineage/round-${pad(round, 6, 'a PBT round')}-${role}-${otherTrial}.json`;
}

/** `rungs/rung-2/model`: where successive halving keeps a trial's export at the end of a rung. */
export function rungModelDir(rung: number): string {
  return `rungs/rung-${rung}/${MODEL_DIR}`;
}

/** A search's log segments, under the search's folder (src/checkpoints/search-log.ts, docs/search-log.md). */
export const SEARCH_LOG_PREFIX = 'log/';
const SEARCH_LOG_SUFFIX = '.jsonl';

/** `log/000000000007.jsonl`: segment `seq` of a search's log. */
export function searchLogKey(seq: number): string {
  return `${SEARCH_LOG_PREFIX}${pad(seq, STEP_DIGITS, 'a search log sequence number')}${SEARCH_LOG_SUFFIX}`;
}

/** The sequence number of a search log segment's key, or undefined for any other key. */
export function searchLogSeqOf(key: string): number | undefined {
  const m = /^log\/(\d{12})\.jsonl$/.exec(key);
  return m ? Number(m[1]) : undefined;
}

/** `trial-3`: a trial's run id, and its folder under the search's folder. */
export function trialId(trialNumber: number): string {
  return `trial-${trialNumber}`;
}

/** `champions/<modelName>` under the champion root. */
export function championDir(modelName: string): string {
  return `champions/${modelName}`;
}

export function championKey(modelName: string): string {
  return `${championDir(modelName)}/champion.json`;
}

export function decisionsPrefix(modelName: string): string {
  return `${championDir(modelName)}/decisions/`;
}

export function decisionKey(modelName: string, n: number): string {
  return `${decisionsPrefix(modelName)}${pad(n, 6, 'a decision number')}.json`;
}

const DECISION_KEY = /\/decisions\/(\d+)\.json$/;
/** The number of a `…/decisions/<n>.json` key, else undefined. */
export function decisionNumberOfKey(key: string): number | undefined {
  const m = DECISION_KEY.exec(key);
  return m ? Number(m[1]) : undefined;
}

/** Joins a root URI and relative segments with single slashes (`file:///a/` + `b` = `file:///a/b`). */
export function joinUri(root: string, ...segments: string[]): string {
  const parts = segments.map((s) => s.replace(/^\/+|\/+$/g, '')).filter((s) => s.length > 0);
  return [root.replace(/\/+$/, ''), ...parts].join('/');
}

/** `<root>/<runId>`. */
export function runUriOf(root: string, runId: string): string {
  return joinUri(root, runId);
}

/** `<run>/checkpoints/<step>`. */
export function checkpointUri(runUri: string, step: number): string {
  return joinUri(runUri, checkpointKey(step));
}

/** `<run>/model/model.json`: the model a finished run exports. */
export function exportedModelUri(runUri: string): string {
  return joinUri(runUri, modelJsonKey());
}

/** The folder of an exported model, from its `…/model.json` URI or the folder itself. */
export function modelFolderOf(uri: string): string {
  return uri.replace(/\/+$/, '').replace(new RegExp(`/${MODEL_JSON.replace('.', '\\.')}$`), '');
}

/** TensorBoard's folder under a run; `tensorboard --logdir <root>` finds every run (and every trial of a search). */
export const TENSORBOARD_DIR = 'tensorboard';
export type TensorBoardSplit = 'train' | 'validation';

/** One event file per recorded epoch, named so that TensorBoard reads them in step order. */
export function tensorboardEventsKey(split: TensorBoardSplit, epoch: number): string {
  return `${TENSORBOARD_DIR}/${split}/events.out.tfevents.${pad(epoch, 8, 'an epoch')}.durable-train.v2`;
}
