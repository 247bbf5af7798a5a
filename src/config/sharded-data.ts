/**
 * Params of the `sharded` dataset (src/data/): many shards of JSONL, CSV or TFRecord (plain or gzip) or Parquet, named by a
 * glob or a manifest, streamed into the trainer. Pure (the workflow checks them before any activity;
 * the trainer checks them again with the same function).
 *
 *   { "name": "sharded", "params": { "uri": "gs://bucket/train/part-*.jsonl.gz", "format": "jsonl",
 *     "label": "y", "features": ["pixels"], "classes": [0, 1, 2] } }
 */
import { MAX_URI_LENGTH } from './bounds';
import type { Checker, JsonObject } from './validate';

export const SHARDED_DATASET = 'sharded';

/** More shards than this in one listing is refused (the listing, its index and the run's identity stay bounded). */
export const MAX_SHARDS = 10_000;
/** Examples per shuffle window (the records one window holds decoded). */
export const DEFAULT_SHUFFLE_WINDOW = 16_384;
export const MAX_SHUFFLE_WINDOW = 1 << 22;
/** Feature columns listed (each a number, or a fixed-length array of numbers in JSONL). */
export const MAX_FEATURE_COLUMNS = 4096;
export const MAX_CLASSES = 100_000;

export type ShardFormat = 'jsonl' | 'csv' | 'tfrecord' | 'parquet';

export interface ShardedParams {
  /** A file, a glob whose last segment has wildcards (`*`, `?`, `[...]`), or (with `manifest`) a file listing shard URIs. */
  readonly uri: string;
  readonly manifest: boolean;
  readonly format: ShardFormat;
  readonly label: string;
  readonly features: readonly string[];
  readonly task: 'classification' | 'regression';
  /** Classification: the class order (labels as strings); a label outside it fails. */
  readonly classes: readonly string[] | undefined;
  readonly shuffleWindow: number;
}

const KNOWN = ['uri', 'manifest', 'format', 'label', 'features', 'task', 'classes', 'shuffleWindow'] as const;

/** Checks `split` and `params` of a `sharded` dataset spec; undefined when an issue was added to `c`. */
export function checkShardedParams(c: Checker, field: string, split: string | undefined, params: JsonObject | undefined): ShardedParams | undefined {
  const before = c.issues.length;
  if (split !== undefined) c.fail(`${field}.split`, 'absent (a sharded dataset names its split by its URI: one glob for train, another for eval)', split);
  const f = `${field}.params`;
  if (params === undefined) {
    c.fail(f, 'an object with at least `uri`, `format`, `label` and `features`', params);
    return undefined;
  }
  c.noUnknownKeys(f, params, KNOWN);
  const uri = c.string(`${f}.uri`, params.uri);
  if (uri !== undefined && (!(uri.startsWith('file:///') || uri.startsWith('gs://')) || uri.length > MAX_URI_LENGTH)) {
    c.fail(`${f}.uri`, `a file:/// or gs:// URI of at most ${MAX_URI_LENGTH} characters`, uri);
  }
  if (uri !== undefined && /[*?[\]]/.test(uri.slice(0, uri.lastIndexOf('/') + 1))) {
    c.fail(`${f}.uri`, 'wildcards only in the last path segment (`gs://bucket/train/part-*.jsonl.gz`)', uri);
  }
  const manifest = c.boolean(`${f}.manifest`, params.manifest, false);
  if (manifest && uri !== undefined && /[*?[\]]/.test(uri)) c.fail(`${f}.uri`, 'the URI of one manifest file (no wildcards) when `manifest` is true', uri);
  const format = c.oneOf(`${f}.format`, params.format, ['jsonl', 'csv', 'tfrecord', 'parquet'] as const);
  const label = c.string(`${f}.label`, params.label);
  let features: string[] | undefined;
  const fs = params.features;
  if (!Array.isArray(fs) || fs.length === 0 || fs.length > MAX_FEATURE_COLUMNS || !fs.every((x) => typeof x === 'string' && x !== '')) {
    c.fail(`${f}.features`, `a list of 1 to ${MAX_FEATURE_COLUMNS} column names`, fs);
  } else {
    const dup = fs.find((x, i) => fs.indexOf(x) !== i);
    if (dup !== undefined) c.fail(`${f}.features`, 'distinct column names', dup);
    else if (label !== undefined && fs.includes(label)) c.fail(`${f}.features`, `columns other than the label \`${label}\``, label);
    else features = fs as string[];
  }
  const task = c.oneOf(`${f}.task`, params.task, ['classification', 'regression'] as const, 'classification');
  let classes: string[] | undefined;
  if (task === 'regression') {
    if (params.classes !== undefined) c.fail(`${f}.classes`, 'absent for task `regression`', params.classes);
  } else {
    const cl = params.classes;
    if (!Array.isArray(cl) || cl.length === 0 || cl.length > MAX_CLASSES || !cl.every((v) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)))) {
      c.fail(`${f}.classes`, `a list of 1 to ${MAX_CLASSES} label values (strings or numbers): a streamed dataset is never read whole to find them`, cl);
    } else {
      classes = cl.map(String);
      const dup = classes.find((v, i) => classes!.indexOf(v) !== i);
      if (dup !== undefined) c.fail(`${f}.classes`, 'distinct label values', dup);
    }
  }
  const shuffleWindow = c.number(`${f}.shuffleWindow`, params.shuffleWindow, { integer: true, min: 1, max: MAX_SHUFFLE_WINDOW, fallback: DEFAULT_SHUFFLE_WINDOW });
  if (c.issues.length > before || uri === undefined || format === undefined || label === undefined || features === undefined || task === undefined || shuffleWindow === undefined) {
    return undefined;
  }
  return { uri, manifest, format, label, features, task, classes, shuffleWindow };
}
