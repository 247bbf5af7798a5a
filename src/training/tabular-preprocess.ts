/**
 * The input transform of a tabular dataset, fitted once on the training split and applied
 * unchanged to every split: numeric columns become `(value - center) / scale` (standard: mean and
 * population standard deviation; minmax: min and range; none: 0 and 1; a constant column gets
 * scale 1, never a division by zero), string columns become one-hot over the training split's
 * sorted distinct values (plus one `unknown` slot with `"unknown": "bucket"`), and missing cells
 * (empty, null, NaN, absent) take the training split's mean (numbers) or most frequent value
 * (strings, ties to the first in vocabulary order) with `"impute": "mean"`, else are an error.
 *
 * The fitted transform is plain JSON (`Preprocessing`): the trainer stores it in the run folder
 * and in every checkpoint, and finalizeRun exports it beside the model, so a resumed run, an
 * evaluation and a served model all apply exactly these numbers. Arithmetic is float64 in row
 * order, so refitting the same rows gives the same bits.
 */
import { isObject } from '../config/validate';
import { cellText, fail, type Row } from './tabular-parse';

export type Normalize = 'standard' | 'minmax' | 'none';
export type Impute = 'none' | 'mean';
export type UnknownValues = 'error' | 'bucket';

export interface NumericColumn {
  readonly name: string;
  readonly kind: 'numeric';
  /** A served model computes `(value - center) / scale`. */
  readonly center: number;
  readonly scale: number;
  readonly mean: number;
  readonly std: number;
  readonly min: number;
  readonly max: number;
  /** What a missing cell becomes (before the transform), with `impute: mean`. */
  readonly fill?: number;
}

export interface CategoricalColumn {
  readonly name: string;
  readonly kind: 'categorical';
  /** One input per value, in this order; then one `unknown` input when `unknownBucket`. */
  readonly vocabulary: readonly string[];
  readonly unknownBucket: boolean;
  readonly fill?: string;
}

export type PreprocessingColumn = NumericColumn | CategoricalColumn;

export const PREPROCESSING_FORMAT = 'durable-train/tabular-preprocessing';

export interface Preprocessing {
  readonly format: typeof PREPROCESSING_FORMAT;
  readonly version: 1;
  /** What it was fitted on: the file, the split, and how many rows. */
  readonly fittedOn: { readonly uri: string; readonly split: string; readonly rows: number };
  readonly label: string;
  readonly task: 'classification' | 'regression';
  /** Classification: the one-hot order of the label. */
  readonly classes: readonly string[];
  readonly normalize: Normalize;
  readonly impute: Impute;
  readonly unknown: UnknownValues;
  readonly columns: readonly PreprocessingColumn[];
  /** Inputs per example after the transform (the model's input width). */
  readonly inputWidth: number;
}

export interface FitOptions {
  readonly uri: string;
  readonly split: string;
  readonly label: string;
  readonly task: 'classification' | 'regression';
  readonly classes: readonly string[];
  readonly features: readonly string[];
  /** Columns to one-hot even though they hold numbers. */
  readonly categorical: readonly string[];
  readonly normalize: Normalize;
  readonly impute: Impute;
  readonly unknown: UnknownValues;
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

export function toNumber(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw === 'string' && DECIMAL.test(raw.trim())) return Number(raw.trim());
  return undefined;
}

/** An empty cell, JSON null, NaN (as a number or as text), or a field the record lacks. */
export function isMissing(raw: unknown): boolean {
  if (raw === undefined || raw === null) return true;
  if (typeof raw === 'number') return Number.isNaN(raw);
  return typeof raw === 'string' && (raw.trim() === '' || raw.trim().toLowerCase() === 'nan');
}

/** `<uri> row 12 (line 13), column \`x\``: where a cell is, for messages. */
export function where(uri: string, row: Row, column: string): string {
  return `${uri} row ${row.index} (line ${row.line}), column \`${cellText(column)}\``;
}

function categoryOf(uri: string, row: Row, column: string, raw: unknown): string {
  if (typeof raw === 'string') return raw.trim();
  if ((typeof raw === 'number' && Number.isFinite(raw)) || typeof raw === 'boolean') return String(raw);
  return fail(`${where(uri, row, column)}: expected a string, number or boolean, got ${typeof raw === 'object' ? 'an object or array' : typeof raw}`);
}

function missingError(uri: string, row: Row, column: string): never {
  return fail(`${where(uri, row, column)}: the value is missing (empty, null or NaN); set \`params.impute\` to \`mean\` to fill it from the training split`);
}

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function fitNumeric(o: FitOptions, name: string, rows: readonly Row[], cells: readonly unknown[]): NumericColumn {
  const values: number[] = [];
  cells.forEach((raw, k) => {
    if (isMissing(raw)) return;
    const v = toNumber(raw);
    if (v === undefined) {
      fail(`${where(o.uri, rows[k]!, name)}: expected a number, got "${cellText(raw)}" (the column's other values are numbers; list it in \`params.categorical\` to one-hot it)`);
    }
    values.push(v);
  });
  if (values.length === 0) fail(`${o.uri}: column \`${cellText(name)}\` has no values in the training split`);
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / values.length;
  // Population variance over every row once missing cells hold the mean (what an imputer then a scaler computes).
  let squares = 0;
  for (const v of values) squares += (v - mean) * (v - mean);
  const std = Math.sqrt(squares / cells.length);
  const fill = values.length < cells.length ? mean : undefined;
  const [center, scale] = o.normalize === 'standard' ? [mean, std] : o.normalize === 'minmax' ? [min, max - min] : [0, 1];
  return { name, kind: 'numeric', center, scale: scale > 0 && Number.isFinite(scale) ? scale : 1, mean, std, min, max, ...(fill !== undefined && { fill }) };
}

/**
 * Distinct values of one string column: each is one input of the one-hot encoding, so a column with
 * a value per row (an id) made the input as wide as the file is long (100k rows: 100k × 100k floats).
 */
export const MAX_CATEGORIES = 10_000;

function fitCategorical(o: FitOptions, name: string, rows: readonly Row[], cells: readonly unknown[]): CategoricalColumn {
  const counts = new Map<string, number>();
  let missing = false;
  cells.forEach((raw, k) => {
    if (isMissing(raw)) {
      missing = true;
      return;
    }
    const key = categoryOf(o.uri, rows[k]!, name, raw);
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if (counts.size > MAX_CATEGORIES) {
      fail(
        `Expected column \`${cellText(name)}\` of ${o.uri} to have at most ${MAX_CATEGORIES} distinct values (one input each when one-hot encoded), ` +
          `got more than ${MAX_CATEGORIES} in the first ${k + 1} of ${rows.length} training rows: an id or free-text column? Leave it out of \`params.features\``,
      );
    }
  });
  if (counts.size === 0) fail(`${o.uri}: column \`${cellText(name)}\` has no values in the training split`);
  const vocabulary = [...counts.keys()].sort(byCodeUnit);
  let fill: string | undefined;
  if (missing) {
    for (const v of vocabulary) if (fill === undefined || counts.get(v)! > counts.get(fill)!) fill = v;
  }
  return { name, kind: 'categorical', vocabulary, unknownBucket: o.unknown === 'bucket', ...(fill !== undefined && { fill }) };
}

/** Fits the transform on the training split's rows. */
export function fitPreprocessing(o: FitOptions, rows: readonly Row[]): Preprocessing {
  const columns = o.features.map((name): PreprocessingColumn => {
    const cells = rows.map((r) => r.values.get(name));
    if (o.impute === 'none') {
      const k = cells.findIndex(isMissing);
      if (k >= 0) missingError(o.uri, rows[k]!, name);
    }
    // Mostly numbers: a numeric column whose other values are errors (a typo must not turn it into a vocabulary).
    const mostlyNumbers = !o.categorical.includes(name) && cells.filter((raw) => toNumber(raw) !== undefined).length * 2 > cells.filter((raw) => !isMissing(raw)).length;
    return mostlyNumbers ? fitNumeric(o, name, rows, cells) : fitCategorical(o, name, rows, cells);
  });
  const inputWidth = columns.reduce((w, c) => w + (c.kind === 'numeric' ? 1 : c.vocabulary.length + (c.unknownBucket ? 1 : 0)), 0);
  return {
    format: PREPROCESSING_FORMAT,
    version: 1,
    fittedOn: { uri: o.uri, split: o.split, rows: rows.length },
    label: o.label,
    task: o.task,
    classes: o.classes,
    normalize: o.normalize,
    impute: o.impute,
    unknown: o.unknown,
    columns,
    inputWidth,
  };
}

/** An encoder of rows into `inputWidth` floats each; errors name the row and column. */
export function rowEncoder(p: Preprocessing, uri: string): (row: Row, out: Float32Array, offset: number) => void {
  const indexes = p.columns.map((c) => (c.kind === 'categorical' ? new Map(c.vocabulary.map((v, k) => [v, k])) : undefined));
  return (row, out, offset) => {
    let at = offset;
    p.columns.forEach((c, j) => {
      let raw = row.values.get(c.name);
      if (isMissing(raw)) raw = c.fill ?? missingError(uri, row, c.name);
      if (c.kind === 'numeric') {
        const v = toNumber(raw);
        if (v === undefined) fail(`${where(uri, row, c.name)}: expected a number, got "${cellText(raw)}"`);
        out[at++] = (v - c.center) / c.scale;
        return;
      }
      const key = categoryOf(uri, row, c.name, raw);
      const k = indexes[j]!.get(key);
      if (k !== undefined) {
        out[at + k] = 1;
      } else if (c.unknownBucket) {
        out[at + c.vocabulary.length] = 1;
      } else {
        fail(`${where(uri, row, c.name)}: value "${cellText(key)}" is not among the ${c.vocabulary.length} values of the training split; set \`params.unknown\` to \`bucket\` to map unseen values to one extra input`);
      }
      at += c.vocabulary.length + (c.unknownBucket ? 1 : 0);
    });
  };
}

function bad(source: string, field: string, what: string): never {
  return fail(`Expected \`${field}\` of ${source} to be ${what}`);
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** A stored transform, checked field by field (a hand-edited or foreign file fails here, not mid-training). */
export function parsePreprocessing(value: unknown, source: string): Preprocessing {
  if (!isObject(value)) return bad(source, 'the file', 'a JSON object');
  if (value.format !== PREPROCESSING_FORMAT || value.version !== 1) return bad(source, 'format', `\`${PREPROCESSING_FORMAT}\` version 1`);
  if (typeof value.label !== 'string') bad(source, 'label', 'a column name');
  if (value.task !== 'classification' && value.task !== 'regression') bad(source, 'task', '`classification` or `regression`');
  if (!isStringArray(value.classes)) bad(source, 'classes', 'an array of strings');
  if (!['standard', 'minmax', 'none'].includes(value.normalize as string)) bad(source, 'normalize', '`standard`, `minmax` or `none`');
  if (!['none', 'mean'].includes(value.impute as string)) bad(source, 'impute', '`none` or `mean`');
  if (!['error', 'bucket'].includes(value.unknown as string)) bad(source, 'unknown', '`error` or `bucket`');
  if (!Array.isArray(value.columns) || value.columns.length === 0) bad(source, 'columns', 'a non-empty array');
  let width = 0;
  (value.columns as unknown[]).forEach((c, k) => {
    const field = `columns[${k}]`;
    if (!isObject(c) || typeof c.name !== 'string') return bad(source, field, 'an object with a `name`');
    if (c.kind === 'numeric') {
      if (![c.center, c.scale, c.mean, c.std, c.min, c.max].every(isNum) || !((c.scale as number) > 0)) bad(source, field, 'numeric statistics with a positive `scale`');
      if (c.fill !== undefined && !isNum(c.fill)) bad(source, `${field}.fill`, 'a number');
      width += 1;
    } else if (c.kind === 'categorical') {
      if (!isStringArray(c.vocabulary) || c.vocabulary.length === 0 || typeof c.unknownBucket !== 'boolean') bad(source, field, 'a vocabulary of strings and `unknownBucket`');
      if (c.fill !== undefined && typeof c.fill !== 'string') bad(source, `${field}.fill`, 'a string');
      width += (c.vocabulary as string[]).length + (c.unknownBucket ? 1 : 0);
    } else {
      bad(source, `${field}.kind`, '`numeric` or `categorical`');
    }
  });
  if (value.inputWidth !== width) bad(source, 'inputWidth', `${width} (the columns' inputs)`);
  return value as unknown as Preprocessing;
}

/** The bytes stored in the run folder, in checkpoints and beside the exported model (stable: same transform, same bytes). */
export function preprocessingBytes(p: Preprocessing): Buffer {
  return Buffer.from(`${JSON.stringify(p, null, 2)}\n`);
}

export function readPreprocessing(bytes: Buffer, source: string): Preprocessing {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return bad(source, 'the file', 'JSON');
  }
  return parsePreprocessing(parsed, source);
}
