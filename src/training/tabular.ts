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
 *                 order (JSONL: the first object's key order). Values must be numbers.
 *   task          `classification` (default): the label becomes one-hot over `classes`, or over the
 *                 sorted distinct labels of the whole file (numerically if all are numbers) so that
 *                 train and test agree. `regression`: the label is a number, yShape [1].
 *   classes       classification only: the class order; a label not in it is an error.
 *   testFraction  with `split`: share of rows in `test` (default 0.2). Row n (1-based, in file order)
 *                 is a test row when floor(n·f) > floor((n-1)·f): with 0.2 every 5th row. No RNG.
 *
 * CSV: a header row, comma-separated, RFC 4180 quoting (quoted fields may hold commas, quotes as "",
 * and line breaks), blank lines ignored, unquoted fields trimmed. JSONL: one JSON object per line,
 * blank lines ignored. Bad data fails with the file URI and line: `<uri> line 17: column
 * \`sepal_width\` is not a number: "abc"`. Every error is non-retryable (retrying reads the same file).
 */
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { assertAllowedUri, openAllowedStore } from '../checkpoints/open-store';
import type { CheckpointStore } from '../checkpoints/store';
import type { DatasetSpec } from '../config/train-config';
import { describe, isObject } from '../config/validate';
import { describeData, excerpt, excerptList } from '../trust/excerpt';
import type { Dataset } from './dataset';
import { csvTable, fail, jsonlTable, type Row, type Table } from './tabular-parse';

export type TabularFormat = 'csv' | 'jsonl';
export type TabularTask = 'classification' | 'regression';

export const DEFAULT_TEST_FRACTION = 0.2;
const KNOWN_PARAMS = ['uri', 'label', 'features', 'task', 'classes', 'testFraction'] as const;

export interface TabularParams {
  readonly uri: string;
  readonly label: string;
  readonly features: readonly string[] | undefined;
  readonly task: TabularTask;
  readonly classes: readonly string[] | undefined;
  readonly split: 'train' | 'test' | undefined;
  readonly testFraction: number;
}

export interface TabularDeps {
  /** How a parent URI becomes a store. Default: openStore guarded by DT_ALLOWED_URIS (STORAGE_EMULATOR_HOST is honoured for gs://). */
  readonly openStore?: (uri: string) => CheckpointStore;
}

function expected(format: TabularFormat, field: string, what: string, value: unknown): never {
  return fail(`Expected \`${field}\` of dataset ${format} to be ${what}, got ${describe(value)}`);
}

/** Validates a spec's params (and split) for a `csv` or `jsonl` dataset. */
export function parseTabularParams(format: TabularFormat, spec: DatasetSpec): TabularParams {
  const p = spec.params;
  if (!isObject(p)) return expected(format, 'params', 'an object with at least `uri` and `label`', p);
  for (const key of Object.keys(p)) {
    if (!(KNOWN_PARAMS as readonly string[]).includes(key)) {
      expected(format, `params.${key}`, `one of the known fields (${KNOWN_PARAMS.join(', ')})`, p[key]);
    }
  }
  const uri = p.uri;
  if (typeof uri !== 'string' || uri.trim() === '') {
    return expected(format, 'params.uri', `a file:// or gs:// URI of a .${format} file`, uri);
  }
  const label = p.label;
  if (typeof label !== 'string' || label === '') return expected(format, 'params.label', 'a non-empty column name', label);
  let features: string[] | undefined;
  if (p.features !== undefined) {
    const f = p.features;
    if (!Array.isArray(f) || f.length === 0 || !f.every((c) => typeof c === 'string' && c !== '')) {
      return expected(format, 'params.features', 'a non-empty array of column names', f);
    }
    const dup = f.find((c, i) => f.indexOf(c) !== i);
    if (dup !== undefined) return expected(format, 'params.features', 'distinct column names', dup);
    if (f.includes(label)) return expected(format, 'params.features', `columns other than the label \`${label}\``, label);
    features = f as string[];
  }
  const task = p.task ?? 'classification';
  if (task !== 'classification' && task !== 'regression') {
    return expected(format, 'params.task', '`classification` or `regression`', p.task);
  }
  let classes: string[] | undefined;
  if (p.classes !== undefined) {
    const c = p.classes;
    if (task === 'regression') return expected(format, 'params.classes', 'absent for task `regression`', c);
    if (!Array.isArray(c) || c.length === 0 || !c.every((v) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)))) {
      return expected(format, 'params.classes', 'a non-empty array of label values (strings or numbers)', c);
    }
    classes = c.map(String);
    const dup = classes.find((v, i) => classes!.indexOf(v) !== i);
    if (dup !== undefined) return expected(format, 'params.classes', 'distinct label values', dup);
  }
  const split = spec.split;
  if (split !== undefined && split !== 'train' && split !== 'test') {
    return expected(format, 'split', '`train`, `test`, or absent (all rows)', split);
  }
  let testFraction = DEFAULT_TEST_FRACTION;
  if (p.testFraction !== undefined) {
    const f = p.testFraction;
    if (typeof f !== 'number' || !(f > 0 && f < 1)) return expected(format, 'params.testFraction', 'a number between 0 and 1 (exclusive)', f);
    if (split === undefined) return expected(format, 'split', '`train` or `test` when `params.testFraction` is given', split);
    testFraction = f;
  }
  return { uri, label, features, task, classes, split, testFraction };
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
  return data.toString('utf8').replace(/^\uFEFF/, '');
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function toNumber(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw === 'string' && DECIMAL.test(raw.trim())) return Number(raw.trim());
  return undefined;
}

function labelKey(raw: unknown): string | undefined {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number' && Number.isFinite(raw)) return String(raw);
  if (typeof raw === 'boolean') return String(raw);
  return undefined;
}

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

/** Builds the dataset from a parsed table: classes from all rows, then the split, then the arrays. */
function toDataset(format: TabularFormat, params: TabularParams, table: Table): Dataset {
  const { uri, label } = params;
  // Column names come from the file: a few, each a short escaped excerpt (never the file's contents).
  const fileHint = `a column of ${uri} (columns: ${excerptList(table.columns)})`;
  if (!table.columns.includes(label)) return expected(format, 'params.label', fileHint, label);
  const features = params.features ?? table.columns.filter((c) => c !== label);
  for (const f of features) {
    if (!table.columns.includes(f)) expected(format, 'params.features', `columns of ${uri} (columns: ${excerptList(table.columns)})`, f);
  }
  if (features.length === 0) fail(`Dataset ${format}: ${uri} has no feature columns besides the label \`${label}\``);
  if (table.rows.length === 0) fail(`Dataset ${format}: ${uri} has a header but no data rows`);

  const cell = (row: Row, column: string): unknown => {
    if (!row.values.has(column)) fail(`${uri} line ${row.line}: field \`${excerpt(column)}\` is missing`);
    return row.values.get(column);
  };

  // Classes come from every row of the file (not only this split), so train and test agree.
  let classes: readonly string[] = [];
  const labels: string[] = [];
  if (params.task === 'classification') {
    for (const row of table.rows) {
      const raw = cell(row, label);
      const key = labelKey(raw);
      if (key === undefined || key.trim() === '') fail(`${uri} line ${row.line}: label \`${label}\` is empty or not a string or number: ${describeData(raw)}`);
      labels.push(key);
    }
    if (params.classes) {
      classes = params.classes;
      labels.forEach((l, k) => {
        if (!classes.includes(l)) {
          fail(`${uri} line ${table.rows[k]!.line}: label \`${label}\` value ${describeData(l)} is not one of \`params.classes\` (${classes.join(', ')})`);
        }
      });
    } else {
      classes = sortLabels(labels);
    }
  }

  const selected: number[] = [];
  table.rows.forEach((_, k) => {
    if (params.split === undefined || isTestRow(k + 1, params.testFraction) === (params.split === 'test')) selected.push(k);
  });
  if (selected.length === 0) fail(`Dataset ${format}: split \`${params.split}\` of ${uri} has no rows (${table.rows.length} in the file)`);

  const xw = features.length;
  const yw = params.task === 'classification' ? classes.length : 1;
  const size = selected.length;
  const x = new Float32Array(size * xw);
  const y = new Float32Array(size * yw);
  const classIndex = new Map(classes.map((c, k) => [c, k]));
  selected.forEach((k, i) => {
    const row = table.rows[k]!;
    features.forEach((f, j) => {
      const raw = cell(row, f);
      const v = toNumber(raw);
      if (v === undefined) {
        fail(`${uri} line ${row.line}: column \`${excerpt(f)}\` is not a number: ${describeData(raw)}`);
      }
      x[i * xw + j] = v;
    });
    if (params.task === 'classification') {
      y[i * yw + classIndex.get(labels[k]!)!] = 1;
    } else {
      const raw = cell(row, label);
      const v = toNumber(raw);
      if (v === undefined) {
        fail(`${uri} line ${row.line}: label \`${label}\` is not a number: ${describeData(raw)}`);
      }
      y[i] = v;
    }
  });
  return { x, y, xShape: [xw], yShape: [yw], size };
}

/** Loads a `csv` or `jsonl` dataset spec (see the file comment). */
export async function loadTabular(format: TabularFormat, spec: DatasetSpec, deps: TabularDeps = {}): Promise<Dataset> {
  const params = parseTabularParams(format, spec);
  const text = await readFile(format, params.uri, deps);
  const table = format === 'csv' ? csvTable(text, params.uri) : jsonlTable(text, params.uri, params.features !== undefined);
  return toDataset(format, params, table);
}

/** The built-in `csv` dataset. */
export function csvDataset(spec: DatasetSpec): Promise<Dataset> {
  return loadTabular('csv', spec);
}

/** The built-in `jsonl` dataset. */
export function jsonlDataset(spec: DatasetSpec): Promise<Dataset> {
  return loadTabular('jsonl', spec);
}
