/**
 * Built-in tabular datasets: `csv` and `jsonl` files at a URI (file://, gs://, or an absolute path).
 *
 *   { "name": "csv", "split": "train", "params": { "uri": "gs://bucket/iris.csv", "label": "species" } }
 *
 * params:
 *   uri           the file. Read through openStore(<parent URI>).get(<file name>), so gs:// works
 *                 like file:// (and honours STORAGE_EMULATOR_HOST).
 *   label         the target column (CSV header) or field (JSONL).
 *   features      columns to use, in this order. Default: every column except the label, in header
 *                 order (JSONL: the first object's key order). A column whose training-split values
 *                 are mostly numbers is numeric (any other value in it is an error); otherwise it
 *                 holds strings and is one-hot encoded.
 *   categorical   columns to one-hot even though they hold numbers (codes, ids).
 *   normalize     numeric columns: `standard` (default: minus the mean, over the population standard
 *                 deviation), `minmax` (to [0, 1]), or `none`. A constant column is scaled by 1.
 *   impute        `none` (default: a missing cell, i.e. empty, null, NaN or an absent field, is an
 *                 error naming row and column) or `mean`: the training split's mean for numbers, its
 *                 most frequent value for strings (ties: the first in sorted order).
 *   unknown       a string the training split never had, at evaluation: `error` (default, naming row
 *                 and column) or `bucket` (one extra input per string column, hot for unseen values).
 *   task          `classification` (default): the label becomes one-hot over `classes`, or over the
 *                 sorted distinct labels of the whole file (numerically if all are numbers) so that
 *                 train and test agree. `regression`: the label is a number, yShape [1].
 *   classes       classification only: the class order; a label not in it is an error.
 *   testFraction  with `split`: share of rows in `test` (default 0.2). Row n (1-based, in file order)
 *                 is a test row when floor(n·f) > floor((n-1)·f): with 0.2 every 5th row. No RNG.
 *   stratify      with `split`, classification: the same rule within each class (its n-th row), so
 *                 every class keeps its proportion in train and test.
 *
 * The transform (tabular-preprocess.ts) is fitted on the TRAINING split only: loading the `test`
 * split without a given transform fits it on the same file's `train` split, never on the test rows.
 * The trainer fits it once per run and stores it (run folder, each checkpoint, the exported model);
 * every later load of the run, for training or evaluation, is given the stored one.
 *
 * CSV: a header row, comma-separated, RFC 4180 quoting (quoted fields may hold commas, quotes as "",
 * and line breaks), blank lines ignored, unquoted fields trimmed. JSONL: one JSON object per line,
 * blank lines ignored. Bad data fails with the file URI, row and line, and at most a short escaped
 * excerpt of the cell: `<uri> row 16 (line 17), column \`sepal_width\`: expected a number, got "abc"`.
 * Every error is non-retryable (retrying reads the same file).
 */
import { constants as BUFFER_CONSTANTS } from 'node:buffer';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { assertAllowedUri, openAllowedStore } from '../checkpoints/open-store';
import type { CheckpointStore } from '../checkpoints/store';
import type { DatasetSpec } from '../config/train-config';
import { describeData, excerptList } from '../trust/excerpt';
import type { Dataset } from './dataset';
import { trainerMaxBytes } from './model-size';
import { expected, parseTabularParams, type TabularFormat, type TabularParams } from './tabular-params';
import { cellText, csvTable, fail, jsonlTable, type Row, type Table } from './tabular-parse';
import { fitPreprocessing, isMissing, parsePreprocessing, rowEncoder, toNumber, where, type Preprocessing } from './tabular-preprocess';

export { DEFAULT_TEST_FRACTION, parseTabularParams, type TabularFormat, type TabularParams, type TabularTask } from './tabular-params';

export interface TabularDeps {
  /** How a parent URI becomes a store. Default: openStore guarded by DT_ALLOWED_URIS (STORAGE_EMULATOR_HOST is honoured for gs://). */
  readonly openStore?: (uri: string) => CheckpointStore;
  /** Largest file read, in bytes. Default: MAX_TABULAR_FILE_BYTES. */
  readonly maxFileBytes?: number;
}

/**
 * The largest CSV/JSONL file read: the longest string V8 makes (512 MiB). A larger file failed in
 * Buffer.toString with a plain Error that was retried 20 times, reading the whole file each time.
 */
export const MAX_TABULAR_FILE_BYTES = BUFFER_CONSTANTS.MAX_STRING_LENGTH;

/** What the trainer passes when it loads a split: the transform fitted on the training split. */
export interface TabularLoadOptions {
  /** A stored transform (checked here); absent: fitted now on the training split of the same file. */
  readonly preprocessing?: unknown;
}

/** Splits a file URI into the store of its folder and the file's key in it. */
export function locate(format: TabularFormat, uri: string): { parent: string; name: string } {
  const bad = (why: string): never => expected(format, 'params.uri', `a file:// or gs:// URI of a .${format} file (${why})`, uri);
  if (uri.startsWith('gs://')) {
    const m = /^(gs:\/\/[^/]+(?:\/.*)?)\/([^/]+)$/.exec(uri);
    if (!m) return bad('it names no file in a bucket');
    return { parent: m[1]!, name: m[2]! };
  }
  let file: string;
  if (uri.startsWith('file://')) {
    try {
      file = fileURLToPath(uri);
    } catch (err) {
      return bad((err as Error).message);
    }
  } else if (path.isAbsolute(uri)) {
    file = uri;
  } else {
    return bad('a relative path or an unsupported scheme');
  }
  if (/[\\/]$/.test(uri)) return bad('it names a folder');
  return { parent: pathToFileURL(path.dirname(file)).href, name: path.basename(file) };
}

async function readFile(format: TabularFormat, uri: string, deps: TabularDeps): Promise<string> {
  const { parent, name } = locate(format, uri);
  // The file itself is checked too: in an allowed folder it may still be a symlink to elsewhere.
  if (!deps.openStore) assertAllowedUri('params.uri', uri);
  const store = (deps.openStore ?? openAllowedStore)(parent);
  const data = await store.get(name);
  if (data === undefined) fail(`Dataset ${format}: no file at ${uri} (\`params.uri\`)`);
  const max = deps.maxFileBytes ?? MAX_TABULAR_FILE_BYTES;
  if (data.length > max) {
    fail(`Expected dataset ${format} \`params.uri\` to name a file of at most ${max} bytes, got ${data.length} bytes at ${uri}: split it into shards (the \`sharded\` dataset streams them)`);
  }
  // Parsing holds the text, a row of cell strings and values per line: about 10-15 bytes per byte of
  // file on this machine (16 below). A file whose parse cannot fit is refused before it is parsed.
  const limit = trainerMaxBytes();
  if (data.length * PARSE_BYTES_PER_FILE_BYTE > limit) {
    fail(
      `Expected dataset ${format} \`params.uri\` (${uri}) to parse within the trainer's memory limit (DT_TRAINER_MAX_BYTES: ${limit} bytes), ` +
        `got ${data.length} bytes of file, about ${data.length * PARSE_BYTES_PER_FILE_BYTE} bytes to parse: split it into shards (the \`sharded\` dataset streams them) or raise the limit`,
    );
  }
  return data.toString('utf8').replace(/^\uFEFF/, '');
}

/** Trainer memory per byte of a CSV/JSONL file while it is parsed (measured 10-15 for 4-20 numeric columns). */
export const PARSE_BYTES_PER_FILE_BYTE = 16;

function labelKey(raw: unknown): string | undefined {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number' && Number.isFinite(raw)) return String(raw);
  if (typeof raw === 'boolean') return String(raw);
  return undefined;
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Sorted distinct labels: numerically when every label is a number, else by code unit (locale-free). */
export function sortLabels(labels: Iterable<string>): string[] {
  const distinct = [...new Set(labels)];
  if (distinct.every((l) => DECIMAL.test(l))) return distinct.sort((a, b) => Number(a) - Number(b) || (a < b ? -1 : a > b ? 1 : 0));
  return distinct.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Whether row number `n` (1-based, among data rows) is a test row for fraction `f`. */
export function isTestRow(n: number, f: number): boolean {
  return Math.floor(n * f) > Math.floor((n - 1) * f);
}

/**
 * Indexes of the rows of `split` (all rows when undefined). Stratified: the rule of isTestRow is
 * applied within each class (its n-th row in file order), so each class keeps its share in both
 * splits; deterministic, no RNG.
 */
export function splitRows(labels: readonly string[] | undefined, count: number, split: 'train' | 'test' | undefined, f: number): number[] {
  const seen = new Map<string, number>();
  const selected: number[] = [];
  for (let k = 0; k < count; k++) {
    let n = k + 1;
    if (labels) {
      n = (seen.get(labels[k]!) ?? 0) + 1;
      seen.set(labels[k]!, n);
    }
    if (split === undefined || isTestRow(n, f) === (split === 'test')) selected.push(k);
  }
  return selected;
}

/** The label of every row (classification), each a non-empty string. */
function readLabels(params: TabularParams, table: Table): string[] {
  return table.rows.map((row) => {
    const raw = row.values.get(params.label);
    if (isMissing(raw)) fail(`${where(params.uri, row, params.label)}: the label is missing (empty, null or NaN)`);
    const key = labelKey(raw);
    if (key === undefined) fail(`${where(params.uri, row, params.label)}: the label is not a string or number: ${describeData(raw)}`);
    return key.trim();
  });
}

function checkColumns(format: TabularFormat, uri: string, table: Table, field: string, wanted: readonly string[]): void {
  for (const f of wanted) {
    if (!table.columns.includes(f)) expected(format, field, `columns of ${uri} (columns: ${excerptList(table.columns)})`, f);
  }
}

/**
 * The encoded arrays, rows × (input width + outputs) floats, against the trainer's memory limit
 * before they are allocated (a too-wide encoding used to end in a RangeError retried 20 times).
 */
export function checkTabularFits(format: TabularFormat, params: Pick<TabularParams, 'uri' | 'label'>, rows: number, inputWidth: number, outputs: number, maxBytes: number = trainerMaxBytes()): void {
  const bytes = rows * (inputWidth + outputs) * 4;
  if (bytes <= maxBytes) return;
  fail(
    `Expected dataset ${format} ${params.uri} to fit in the trainer's memory limit once encoded (DT_TRAINER_MAX_BYTES: ${maxBytes} bytes), ` +
      `got ${rows} rows × (${inputWidth} inputs + ${outputs} outputs \`${cellText(params.label)}\`) × 4 bytes = ${bytes} bytes: fewer rows (\`limit\`), feature columns or classes`,
  );
}

/** Builds the dataset from a parsed table: classes, the transform (fitted on the training split, or given), the split, the arrays. */
function toDataset(format: TabularFormat, params: TabularParams, table: Table, given: Preprocessing | undefined): Dataset {
  const { uri, label } = params;
  if (!table.columns.includes(label)) return expected(format, 'params.label', `a column of ${uri} (columns: ${excerptList(table.columns)})`, label);
  const features = given ? given.columns.map((c) => c.name) : (params.features ?? table.columns.filter((c) => c !== label));
  checkColumns(format, uri, table, given ? 'params.features (as fitted on the training split)' : 'params.features', features);
  if (params.features && given && params.features.join('\0') !== features.join('\0')) {
    expected(format, 'params.features', `the training split's columns in order (${excerptList(features)})`, params.features);
  }
  checkColumns(format, uri, table, 'params.categorical', params.categorical);
  if (features.length === 0) fail(`Dataset ${format}: ${uri} has no feature columns besides the label \`${cellText(label)}\``);
  if (table.rows.length === 0) fail(`Dataset ${format}: ${uri} has a header but no data rows`);

  const classification = params.task === 'classification';
  const labels = classification ? readLabels(params, table) : undefined;
  // Classes: as fitted, as listed, or from every row of the file (not only this split) so that train and test agree.
  const classes = classification ? (given?.classes ?? params.classes ?? sortLabels(labels!)) : [];
  if (labels) {
    const known = new Set(classes);
    const k = labels.findIndex((l) => !known.has(l));
    if (k >= 0) fail(`${where(uri, table.rows[k]!, label)}: label "${cellText(labels[k])}" is not one of the ${classes.length} classes (${excerptList(classes)})`);
  }
  const strata = params.stratify ? labels : undefined;
  const pick = (split: 'train' | 'test' | undefined): Row[] => splitRows(strata, table.rows.length, split, params.testFraction).map((k) => table.rows[k]!);
  const rows = pick(params.split);
  if (rows.length === 0) fail(`Dataset ${format}: split \`${params.split}\` of ${uri} has no rows (${table.rows.length} in the file)`);

  // Never fitted on a test split: a test split without a given transform gets the one of this file's training split.
  const trainSplit = params.split === undefined ? undefined : 'train';
  const preprocessing =
    given ??
    fitPreprocessing(
      { ...params, split: trainSplit ?? 'all rows', classes, features },
      params.split === 'train' ? rows : pick(trainSplit),
    );
  const xw = preprocessing.inputWidth;
  const yw = classification ? classes.length : 1;
  const size = rows.length;
  checkTabularFits(format, params, size, xw, yw);
  const x = new Float32Array(size * xw);
  const y = new Float32Array(size * yw);
  const encode = rowEncoder(preprocessing, uri);
  const classIndex = new Map(classes.map((c, k) => [c, k]));
  rows.forEach((row, i) => {
    encode(row, x, i * xw);
    if (classification) {
      y[i * yw + classIndex.get(labels![row.index - 1]!)!] = 1;
    } else {
      const raw = row.values.get(label);
      const v = toNumber(raw);
      if (v === undefined) fail(`${where(uri, row, label)}: the label is ${isMissing(raw) ? 'missing (empty, null or NaN)' : `not a number: "${cellText(raw)}"`}`);
      y[i] = v;
    }
  });
  return { x, y, xShape: [xw], yShape: [yw], size, preprocessing, task: params.task };
}

/** Loads a `csv` or `jsonl` dataset spec (see the file comment). */
export async function loadTabular(format: TabularFormat, spec: DatasetSpec, deps: TabularDeps = {}, options: TabularLoadOptions = {}): Promise<Dataset> {
  const params = parseTabularParams(format, spec);
  const given = options.preprocessing === undefined ? undefined : parsePreprocessing(options.preprocessing, `the preprocessing given for ${params.uri}`);
  const text = await readFile(format, params.uri, deps);
  const table = format === 'csv' ? await csvTable(text, params.uri) : await jsonlTable(text, params.uri, (params.features ?? given) !== undefined);
  return toDataset(format, params, table, given);
}

/** The built-in `csv` dataset. */
export function csvDataset(spec: DatasetSpec, options?: TabularLoadOptions): Promise<Dataset> {
  return loadTabular('csv', spec, {}, options);
}

/** The built-in `jsonl` dataset. */
export function jsonlDataset(spec: DatasetSpec, options?: TabularLoadOptions): Promise<Dataset> {
  return loadTabular('jsonl', spec, {}, options);
}
