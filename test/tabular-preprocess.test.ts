/**
 * The tabular input transform on small generated files: statistics from the training split only
 * (and applied unchanged to the test split), minmax and none, constant columns, one-hot string
 * columns with unseen values as an error or a bucket, missing values, the stratified split, the
 * stored transform round trip, and the validation of every new param. Pure: files and arrays only.
 *
 *   node --import tsx --test --test-reporter=spec test/tabular-preprocess.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import type { DatasetSpec } from '../src/config/train-config';
import { loadTabular, splitRows } from '../src/training/tabular';
import { preprocessingBytes, readPreprocessing, type NumericColumn, type Preprocessing } from '../src/training/tabular-preprocess';
import { tempDir } from './helpers/temporal';

const dir = tempDir('dt-tabular-prep-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return pathToFileURL(file).href;
}

const csv = (uri: string, params: Record<string, unknown>, split?: 'train' | 'test'): DatasetSpec => ({
  name: 'csv',
  ...(split && { split }),
  params: { uri, label: 'label', ...params },
});

async function rejects(promise: Promise<unknown>, pattern: RegExp): Promise<Error> {
  const err = await promise.then(
    () => assert.fail(`expected an error matching ${pattern}`),
    (e: unknown) => e as Error,
  );
  assert.match(err.message, pattern);
  assert.equal(err.name, 'NonRetryableTrainingError');
  return err;
}

/** 20 rows: `big` in the thousands, `small` in hundredths, `flat` constant, `color` a string; every 5th row is test. */
const ROWS = Array.from({ length: 20 }, (_, k) => ({
  big: 1000 + 37 * k,
  small: 0.01 * ((k * 7) % 11),
  flat: 5,
  color: ['red', 'green', 'blue'][k % 3]!,
  label: k % 2 === 0 ? 'even' : 'odd',
}));
const toCsv = (rows: ReadonlyArray<Record<string, unknown>>): string =>
  `${Object.keys(rows[0]!).join(',')}\n${rows.map((r) => Object.values(r).join(',')).join('\n')}\n`;
const uri = write('mixed.csv', toCsv(ROWS));
const trainRows = ROWS.filter((_, k) => (k + 1) % 5 !== 0);
const testRows = ROWS.filter((_, k) => (k + 1) % 5 === 0);
const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
const std = (v: number[]): number => Math.sqrt(mean(v.map((x) => (x - mean(v)) ** 2)));
/** Inputs: big, small, flat, then color one-hot over [blue, green, red]. */
const WIDTH = 6;

function column(x: Float32Array, j: number): number[] {
  return Array.from({ length: x.length / WIDTH }, (_, i) => x[i * WIDTH + j]!);
}

describe('the transform is fitted on the training split only', () => {
  test('standard (the default): train columns have mean 0 and std 1; the test split uses the TRAIN statistics', async () => {
    const train = await loadTabular('csv', csv(uri, {}, 'train'));
    const testSet = await loadTabular('csv', csv(uri, {}, 'test'));
    assert.deepEqual(train.xShape, [WIDTH]);
    assert.ok(Math.abs(mean(column(train.x, 0))) < 1e-6 && Math.abs(std(column(train.x, 0)) - 1) < 1e-6);
    assert.ok(Math.abs(mean(column(train.x, 1))) < 1e-6 && Math.abs(std(column(train.x, 1)) - 1) < 1e-6);
    const big = trainRows.map((r) => r.big);
    const expected = testRows.map((r) => Math.fround((r.big - mean(big)) / std(big)));
    assert.deepEqual(column(testSet.x, 0), expected, 'test values standardized with the training mean and std');
    assert.notEqual(Math.abs(mean(column(testSet.x, 0))), 0, 'and not with their own');
    assert.deepEqual(testSet.preprocessing, train.preprocessing, 'the test split is given the training split’s transform');
    const stats = (train.preprocessing as Preprocessing).columns[0] as NumericColumn;
    assert.equal(stats.mean, mean(big));
    assert.equal((train.preprocessing as Preprocessing).fittedOn.rows, 16);
  });

  test('a constant column becomes 0, never NaN (scale 1)', async () => {
    for (const normalize of ['standard', 'minmax']) {
      const d = await loadTabular('csv', csv(uri, { normalize }, 'train'));
      assert.deepEqual(new Set(column(d.x, 2)), new Set([0]), normalize);
      assert.equal(((d.preprocessing as Preprocessing).columns[2] as NumericColumn).scale, 1);
      assert.ok(d.x.every(Number.isFinite));
    }
  });

  test('minmax maps the training split to [0, 1]; none keeps the values', async () => {
    const d = await loadTabular('csv', csv(uri, { normalize: 'minmax' }, 'train'));
    assert.equal(Math.min(...column(d.x, 0)), 0);
    assert.equal(Math.max(...column(d.x, 0)), 1);
    const none = await loadTabular('csv', csv(uri, { normalize: 'none' }, 'train'));
    assert.deepEqual(column(none.x, 0), trainRows.map((r) => r.big));
  });

  test('a string column is one-hot over the training split’s sorted values', async () => {
    const d = await loadTabular('csv', csv(uri, {}, 'train'));
    const p = d.preprocessing as Preprocessing;
    assert.deepEqual(p.columns[3], { name: 'color', kind: 'categorical', vocabulary: ['blue', 'green', 'red'], unknownBucket: false });
    trainRows.forEach((r, i) => {
      assert.deepEqual(Array.from(d.x.subarray(i * WIDTH + 3, i * WIDTH + 6)), ['blue', 'green', 'red'].map((c) => (c === r.color ? 1 : 0)));
    });
  });
});

describe('unseen values and missing values', () => {
  // `purple` appears only in a test row (row 5): the vocabulary comes from the training split.
  const unseen = write('unseen.csv', toCsv(ROWS.map((r, k) => (k === 4 ? { ...r, color: 'purple' } : r))));

  test('an unseen string at evaluation is an error naming row and column, or the `unknown` bucket', async () => {
    await rejects(loadTabular('csv', csv(unseen, {}, 'test')), /unseen\.csv row 5 \(line 6\), column `color`: value "purple" is not among the 3 values of the training split/);
    const d = await loadTabular('csv', csv(unseen, { unknown: 'bucket' }, 'test'));
    assert.deepEqual(d.xShape, [WIDTH + 1]);
    assert.deepEqual(Array.from(d.x.subarray(3, 7)), [0, 0, 0, 1], 'row 5 hits the bucket');
    assert.deepEqual(Array.from(d.x.subarray(7 + 3, 7 + 7)), [0, 0, 1, 0], 'row 10 is red');
  });

  test('a missing value is an error naming row and column unless impute is mean', async () => {
    const holes = write('holes.csv', 'big,color,label\n10,red,a\n,red,b\n30,NaN,a\n50,blue,b\n');
    await rejects(loadTabular('csv', csv(holes, {})), /holes\.csv row 2 \(line 3\), column `big`: the value is missing \(empty, null or NaN\); set `params\.impute` to `mean`/);
    const d = await loadTabular('csv', csv(holes, { impute: 'mean', normalize: 'none' }));
    // big: the mean of 10, 30, 50; color: the most frequent value (red).
    assert.deepEqual(Array.from(d.x), [10, 0, 1, 30, 0, 1, 30, 0, 1, 50, 1, 0]);
    const jsonl = write('holes.jsonl', '{"big":1,"label":"a"}\n{"big":null,"label":"b"}\n{"label":"a"}\n');
    await rejects(loadTabular('jsonl', { name: 'jsonl', params: { uri: jsonl, label: 'label', features: ['big'] } }), /holes\.jsonl row 2 \(line 2\), column `big`: the value is missing/);
    const filled = await loadTabular('jsonl', { name: 'jsonl', params: { uri: jsonl, label: 'label', features: ['big'], impute: 'mean' } });
    assert.deepEqual(Array.from(filled.x), [0, 0, 0], 'a constant column once imputed: 0, not NaN');
    const noLabel = write('no-label.csv', 'big,label\n1,a\n2,\n');
    await rejects(loadTabular('csv', csv(noLabel, { impute: 'mean' })), /no-label\.csv row 2 \(line 3\), column `label`: the label is missing/);
  });

  test('an error shows at most a short escaped excerpt of a cell', async () => {
    const long = `${'x'.repeat(5000)}\`secret\``;
    const file = write('long.csv', `big,label\n1,a\n2,a\n3,a\n4,a\n"${long}",a\n`);
    const err = await rejects(loadTabular('csv', csv(file, {})), /long\.csv row 5 \(line 6\), column `big`: expected a number, got "x{16}…"/);
    assert.ok(err.message.length < 300, err.message);
  });
});

describe('stratified split', () => {
  test('each class keeps its proportion in train and test, deterministically', async () => {
    // 30 rows of class a first, then 10 of class b: plain every-5th takes 6 a + 2 b, stratified too, but
    // with 12 + 8 the plain rule takes 2 a + 2 b where stratified takes 2 a + 1 b (its 5th row of b).
    const labels = [...Array<string>(12).fill('a'), ...Array<string>(8).fill('b')];
    const plain = splitRows(undefined, labels.length, 'test', 0.2).map((k) => labels[k]);
    const strat = splitRows(labels, labels.length, 'test', 0.2).map((k) => labels[k]);
    assert.deepEqual(plain, ['a', 'a', 'b', 'b']);
    assert.deepEqual(strat, ['a', 'a', 'b']);
    const skewed = write('skewed.csv', `v,label\n${labels.map((l, k) => `${k},${l}`).join('\n')}\n`);
    const testSet = await loadTabular('csv', csv(skewed, { stratify: true, normalize: 'none' }, 'test'));
    const train = await loadTabular('csv', csv(skewed, { stratify: true, normalize: 'none' }, 'train'));
    assert.deepEqual(Array.from(testSet.x), [4, 9, 16]);
    assert.equal(train.size + testSet.size, 20);
    assert.deepEqual(splitRows(labels, 20, 'test', 0.2), splitRows(labels, 20, 'test', 0.2));
  });
});

describe('the stored transform', () => {
  test('loading with the stored transform gives the same bits; a damaged file names the field', async () => {
    const fitted = await loadTabular('csv', csv(uri, {}, 'train'));
    const bytes = preprocessingBytes(fitted.preprocessing as Preprocessing);
    const stored = readPreprocessing(bytes, 'preprocessing.json');
    const again = await loadTabular('csv', csv(uri, {}, 'train'), {}, { preprocessing: stored });
    assert.deepEqual(again.x, fitted.x);
    assert.deepEqual(preprocessingBytes(again.preprocessing as Preprocessing), bytes);
    const broken = JSON.parse(bytes.toString()) as { columns: Array<Record<string, unknown>> };
    broken.columns[0]!.scale = 0;
    assert.throws(() => readPreprocessing(Buffer.from(JSON.stringify(broken)), 'x.json'), /Expected `columns\[0\]` of x\.json to be numeric statistics with a positive `scale`/);
    // A different file evaluated with the stored transform: columns and classes are the training split's.
    const other = write('other.csv', 'big,small,flat,color,label\n1000,0.1,5,red,odd\n');
    const d = await loadTabular('csv', csv(other, {}), {}, { preprocessing: stored });
    assert.equal(d.x[0], Math.fround((1000 - ((stored.columns[0] as NumericColumn).mean)) / (stored.columns[0] as NumericColumn).scale));
  });
});

describe('params', () => {
  test('every new param names the field, what it expects and what it got', async () => {
    const cases: Array<[Record<string, unknown>, 'train' | 'test' | undefined, RegExp]> = [
      [{ normalize: 'zscore' }, 'train', /Expected `params\.normalize` of dataset csv to be `standard`, `minmax` or `none`, got `"zscore"` \(string\)/],
      [{ impute: 'median' }, 'train', /Expected `params\.impute` of dataset csv to be `none` or `mean`, got `"median"` \(string\)/],
      [{ unknown: true }, 'train', /Expected `params\.unknown` of dataset csv to be `error` or `bucket`, got `true` \(boolean\)/],
      [{ stratify: 'yes' }, 'train', /Expected `params\.stratify` of dataset csv to be `true` or `false`, got `"yes"` \(string\)/],
      [{ stratify: true }, undefined, /Expected `split` of dataset csv to be `train` or `test` when `params\.stratify` is true, got nothing/],
      [{ stratify: true, task: 'regression', label: 'big' }, 'train', /Expected `params\.stratify` of dataset csv to be `false` or absent for task `regression`/],
      [{ categorical: 'color' }, 'train', /Expected `params\.categorical` of dataset csv to be a non-empty array of column names, got `"color"` \(string\)/],
      [{ categorical: ['nope'] }, 'train', /Expected `params\.categorical` of dataset csv to be columns of .*mixed\.csv .* got `"nope"`/],
      [{ features: ['big'], categorical: ['small'] }, 'train', /Expected `params\.categorical` of dataset csv to be columns listed in `params\.features`, got `"small"`/],
    ];
    for (const [params, split, pattern] of cases) await rejects(loadTabular('csv', csv(uri, params, split)), pattern);
  });

  test('categorical one-hots a numeric column', async () => {
    const d = await loadTabular('csv', csv(uri, { features: ['flat', 'small'], categorical: ['flat'] }, 'train'));
    assert.deepEqual(d.xShape, [2]);
    assert.deepEqual((d.preprocessing as Preprocessing).columns[0], { name: 'flat', kind: 'categorical', vocabulary: ['5'], unknownBucket: false });
  });
});
