/**
 * Params of the `sharded` dataset (src/data/): many shards of JSONL, CSV or TFRecord (plain or gzip) or Parquet, named by a
 * glob or a manifest, streamed into the trainer. Pure (the workflow checks them before any activity;
 * the trainer checks them again with the same function).
 *
 *   { "name": "sharded", "params": { "uri": "gs://bucket/train/part-*.jsonl.gz", "format": "jsonl",
 *     "label": "y", "features": ["pixels"], "classes": [0, 1, 2] } }
 *
 * A window of daily partitions (config/data-window.ts): `uri` holds `{date}` and `window` names how many
 * days; the workflow resolves it when it starts, writing `windowEnd` (the newest day) and `uris` (the
 * concrete globs, oldest first) into the spec, which is what the trainer lists and the run records.
 */
import { MAX_URI_LENGTH } from './bounds';
import {
  DEFAULT_WINDOW_LAG,
  MAX_WINDOW_DAYS,
  MAX_WINDOW_LAG,
  WINDOW_PLACEHOLDERS,
  hasPlaceholder,
  parseUtcDay,
  unknownPlaceholders,
  windowUris,
} from './data-window';
import { checkImageLabel, checkImageParams, IMAGE_FORMATS, isImageFormat, type ImageFormat, type ImageParams } from './image-params';
import type { Checker, JsonObject } from './validate';

export const SHARDED_DATASET = 'sharded';

/** More shards than this in one listing is refused (the listing, its index and the run's identity stay bounded). */
export const MAX_SHARDS = 10_000;
/** Examples per shuffle window (the records one window holds decoded). */
export const DEFAULT_SHUFFLE_WINDOW = 16_384;
export const MAX_SHUFFLE_WINDOW = 1 << 22;
/** Feature columns listed (each a number, or a fixed-length array of numbers in JSONL, TFRecord and Parquet). */
export const MAX_FEATURE_COLUMNS = 4096;
export const MAX_CLASSES = 100_000;

export type ShardFormat = 'jsonl' | 'csv' | 'tfrecord' | 'parquet' | ImageFormat;

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
  /** A window of daily partitions (`uri` holds `{date}`): absent for a plain URI. */
  readonly window?: DataWindow;
  /** Image formats only (config/image-params.ts): size, channels, resize and scale. */
  readonly image?: ImageParams;
  /**
   * The tabular datasets' `normalize` (training/tabular-preprocess.ts), fitted over the training
   * shards by the index pass (data/preprocess.ts); absent for `none` (the default: values as they are).
   */
  readonly normalize?: 'standard' | 'minmax';
  /**
   * What to list, oldest partition first: `[uri]` without a window, the window's globs once it is
   * resolved; absent while a window is not resolved yet (the workflow resolves it before any activity).
   */
  readonly uris?: readonly string[];
}

export interface DataWindow {
  /** How many daily partitions (UTC days). */
  readonly days: number;
  /** Days between the newest partition and the run's nominal day. @default 1 */
  readonly lag: number;
  /** The newest partition's day (`YYYY-MM-DD`): set by the workflow from the nominal time, or pinned by the input. */
  readonly end: string | undefined;
}

const KNOWN = ['uri', 'manifest', 'format', 'label', 'features', 'task', 'classes', 'shuffleWindow', 'window', 'windowLag', 'windowEnd', 'uris', 'image', 'normalize'] as const;

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
  const given = c.string(`${f}.uri`, params.uri);
  // Credentials in the authority (`https://user:token@host`, `gs://user:token@bucket`) never reach a
  // message: the URI is refused and shown with them masked.
  const credentials = given !== undefined && /^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(given);
  const uri = credentials ? given.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/]*@/i, '$1***@') : given;
  if (credentials) c.fail(`${f}.uri`, 'a URI without credentials (`user:password@`): the worker reads with its own', uri);
  else if (uri !== undefined && (!(uri.startsWith('file:///') || uri.startsWith('gs://')) || uri.length > MAX_URI_LENGTH)) {
    c.fail(`${f}.uri`, `a file:/// or gs:// URI of at most ${MAX_URI_LENGTH} characters`, uri);
  }
  if (uri !== undefined && /[*?[\]]/.test(uri.slice(0, uri.lastIndexOf('/') + 1))) {
    c.fail(`${f}.uri`, 'wildcards only in the last path segment (`gs://bucket/train/part-*.jsonl.gz`)', uri);
  }
  const manifest = c.boolean(`${f}.manifest`, params.manifest, false);
  if (manifest && uri !== undefined && /[*?[\]]/.test(uri)) c.fail(`${f}.uri`, 'the URI of one manifest file (no wildcards) when `manifest` is true', uri);
  const format = c.oneOf(`${f}.format`, params.format, ['jsonl', 'csv', 'tfrecord', 'parquet', ...IMAGE_FORMATS] as const);
  const imageFormat = format !== undefined && isImageFormat(format);
  const images = imageFormat ? checkImageLabel(c, f, format, params) : undefined;
  const image = imageFormat && params.image !== undefined ? checkImageParams(c, f, params.image) : undefined;
  if (params.image !== undefined && !imageFormat) c.fail(`${f}.image`, `absent for format \`${format}\` (images: \`tar\`, \`imagefolder\`)`, params.image);
  const label = imageFormat ? images?.[0] : c.string(`${f}.label`, params.label);
  let features: string[] | undefined;
  const fs = params.features;
  if (imageFormat) {
    features = images?.[1];
  } else if (!Array.isArray(fs) || fs.length === 0 || fs.length > MAX_FEATURE_COLUMNS || !fs.every((x) => typeof x === 'string' && x !== '')) {
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
  const normalize = c.oneOf(`${f}.normalize`, params.normalize, ['standard', 'minmax', 'none'] as const, 'none');
  if (imageFormat && params.normalize !== undefined) c.fail(`${f}.normalize`, 'absent for images (their `image.scale` says how pixels are scaled)', params.normalize);
  const windowed = checkWindow(c, f, uri, params);
  if (c.issues.length > before || uri === undefined || format === undefined || label === undefined || features === undefined || task === undefined || shuffleWindow === undefined) {
    return undefined;
  }
  const base = { uri, manifest, format, label, features, task, classes, shuffleWindow, ...(image && { image }), ...(normalize !== undefined && normalize !== 'none' && { normalize }) };
  if (!windowed) return { ...base, uris: [uri] };
  return { ...base, window: windowed.window, ...(windowed.uris && { uris: windowed.uris }) };
}

/** `window`, `windowLag`, `windowEnd` and `uris` (see the top of this file); undefined for a plain URI. */
function checkWindow(c: Checker, f: string, uri: string | undefined, params: JsonObject): { window: DataWindow; uris?: string[] } | undefined {
  const placeholders = WINDOW_PLACEHOLDERS.map((p) => `\`${p}\``).join(', ');
  if (params.window === undefined) {
    for (const k of ['windowLag', 'windowEnd', 'uris'] as const) if (params[k] !== undefined) c.fail(`${f}.${k}`, 'absent without `window`', params[k]);
    if (uri !== undefined && hasPlaceholder(uri)) c.fail(`${f}.window`, `a number of daily partitions, since \`uri\` holds a date placeholder (${uri})`, params.window);
    return undefined;
  }
  const days = c.number(`${f}.window`, params.window, { integer: true, min: 1, max: MAX_WINDOW_DAYS });
  const lag = c.number(`${f}.windowLag`, params.windowLag, { integer: true, min: 0, max: MAX_WINDOW_LAG, fallback: DEFAULT_WINDOW_LAG });
  if (uri !== undefined) {
    const unknown = unknownPlaceholders(uri);
    if (unknown.length > 0) c.fail(`${f}.uri`, `only the placeholders ${placeholders} with \`window\``, unknown[0]);
    else if (!/\{(date|yyyymmdd|dd)\}/.test(uri)) c.fail(`${f}.uri`, 'a URI holding `{date}`, `{yyyymmdd}` or `{dd}` (one glob per daily partition) with `window`', uri);
  }
  let end: string | undefined;
  if (params.windowEnd !== undefined) {
    if (typeof params.windowEnd !== 'string' || parseUtcDay(params.windowEnd) === undefined) c.fail(`${f}.windowEnd`, 'a UTC day `YYYY-MM-DD` (the newest partition of the window)', params.windowEnd);
    else end = params.windowEnd;
  }
  if (days === undefined || lag === undefined || uri === undefined || c.issues.some((i) => i.field.startsWith(`${f}.uri`) || i.field.startsWith(`${f}.window`))) return undefined;
  const window: DataWindow = { days, lag, end };
  if (end === undefined) {
    if (params.uris !== undefined) c.fail(`${f}.uris`, 'absent without `windowEnd` (the workflow writes both when it resolves the window)', params.uris);
    return { window };
  }
  const uris = windowUris(uri, end, days);
  const tooLong = uris.find((u) => u.length > MAX_URI_LENGTH);
  if (tooLong !== undefined) c.fail(`${f}.uri`, `partition URIs of at most ${MAX_URI_LENGTH} characters`, tooLong);
  const dup = uris.find((u, i) => uris.indexOf(u) !== i);
  if (dup !== undefined) c.fail(`${f}.uri`, `one glob per day of the window (${days} days): add \`{date}\``, dup);
  if (params.uris !== undefined && JSON.stringify(params.uris) !== JSON.stringify(uris)) {
    c.fail(`${f}.uris`, `the window's globs as \`uri\`, \`window\` and \`windowEnd\` resolve them (${uris.length}, ${uris[0]} to ${uris.at(-1)}); omit it`, params.uris);
  }
  return { window, uris };
}
