/**
 * The params of the `csv` and `jsonl` datasets (documented at the top of tabular.ts), checked
 * field by field: every error names the field, what was expected and what was received, and is
 * non-retryable (the same params fail the same way).
 */
import type { DatasetSpec } from '../config/train-config';
import { describe, isObject } from '../config/validate';
import { fail } from './tabular-parse';
import type { Impute, Normalize, UnknownValues } from './tabular-preprocess';

export type TabularFormat = 'csv' | 'jsonl';
export type TabularTask = 'classification' | 'regression';

export const DEFAULT_TEST_FRACTION = 0.2;
const KNOWN_PARAMS = ['uri', 'label', 'features', 'task', 'classes', 'testFraction', 'stratify', 'normalize', 'impute', 'unknown', 'categorical'] as const;

export interface TabularParams {
  readonly uri: string;
  readonly label: string;
  readonly features: readonly string[] | undefined;
  readonly task: TabularTask;
  readonly classes: readonly string[] | undefined;
  readonly split: 'train' | 'test' | undefined;
  readonly testFraction: number;
  readonly stratify: boolean;
  readonly normalize: Normalize;
  readonly impute: Impute;
  readonly unknown: UnknownValues;
  readonly categorical: readonly string[];
}

export function expected(format: TabularFormat, field: string, what: string, value: unknown): never {
  return fail(`Expected \`${field}\` of dataset ${format} to be ${what}, got ${describe(value)}`);
}

function columnList(format: TabularFormat, field: string, value: unknown, label: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((c) => typeof c === 'string' && c !== '')) {
    return expected(format, field, 'a non-empty array of column names', value);
  }
  const dup = value.find((c, i) => value.indexOf(c) !== i);
  if (dup !== undefined) return expected(format, field, 'distinct column names', dup);
  if (value.includes(label)) return expected(format, field, `columns other than the label \`${label}\``, label);
  return value as string[];
}

function oneOf<T extends string>(format: TabularFormat, field: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    return expected(format, field, allowed.map((a) => `\`${a}\``).join(', ').replace(/, ([^,]*)$/, ' or $1'), value);
  }
  return value as T;
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
  const features = p.features === undefined ? undefined : columnList(format, 'params.features', p.features, label);
  const categorical = p.categorical === undefined ? [] : columnList(format, 'params.categorical', p.categorical, label);
  const outside = features && categorical.find((c) => !features.includes(c));
  if (outside !== undefined) expected(format, 'params.categorical', `columns listed in \`params.features\``, outside);
  const task = oneOf(format, 'params.task', p.task, ['classification', 'regression'] as const, 'classification');
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
  let stratify = false;
  if (p.stratify !== undefined) {
    if (typeof p.stratify !== 'boolean') return expected(format, 'params.stratify', '`true` or `false`', p.stratify);
    if (p.stratify && task !== 'classification') return expected(format, 'params.stratify', '`false` or absent for task `regression` (it keeps class proportions)', p.stratify);
    if (p.stratify && split === undefined) return expected(format, 'split', '`train` or `test` when `params.stratify` is true', split);
    stratify = p.stratify;
  }
  const normalize = oneOf(format, 'params.normalize', p.normalize, ['standard', 'minmax', 'none'] as const, 'standard');
  const impute = oneOf(format, 'params.impute', p.impute, ['none', 'mean'] as const, 'none');
  const unknown = oneOf(format, 'params.unknown', p.unknown, ['error', 'bucket'] as const, 'error');
  return { uri, label, features, task, classes, split, testFraction, stratify, normalize, impute, unknown, categorical };
}
