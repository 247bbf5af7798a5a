/**
 * The built-in `csv` and `jsonl` datasets: parsing, label encoding, splits and errors on generated
 * files, the same CSV read from the real fake-gcs-server (gs://), and a trainModel run on the real
 * dev server that learns from a CSV.
 *
 *   node --import tsx --test --test-reporter=spec test/tabular.e2e.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { TrainModelResult } from '../src/workflows';
import { builtInDatasets, type Dataset } from '../src/training/dataset-registry';
import { hash32, mulberry32 } from '../src/training/rng';
import { isTestRow, loadTabular, sortLabels } from '../src/training/tabular';
import type { DatasetSpec } from '../src/config/train-config';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { startStack, startWorker, tempDir, uniqueId, type InProcessWorker, type Stack } from './helpers/temporal';

const FEATURES = ['f1', 'f2', 'f3', 'f4'];
/** Appearance order differs from sorted order; one name needs RFC 4180 quoting (comma and quotes). */
const LABELS = ['zeta', 'alpha', 'mid "x", y'];
const SORTED = ['alpha', 'mid "x", y', 'zeta'];
const ROWS = 300;

interface Blobs {
  readonly values: string[][];
  readonly labels: string[];
}

/** 3 seeded Gaussian blobs in 4 features; row i is class i % 3. Values as fixed decimal text. */
function blobs(seed = 5): Blobs {
  const centreRandom = mulberry32(hash32(seed, 1));
  const centres = LABELS.map(() => FEATURES.map(() => centreRandom() * 8 - 4));
  const random = mulberry32(hash32(seed, 2));
  const gaussian = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const values: string[][] = [];
  const labels: string[] = [];
  for (let i = 0; i < ROWS; i++) {
    const c = i % LABELS.length;
    values.push(FEATURES.map((_, f) => (centres[c]![f]! + 1.5 * gaussian()).toFixed(4)));
    labels.push(LABELS[c]!);
  }
  return { values, labels };
}

const csvQuote = (s: string): string => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** Label column in the middle, CRLF line ends, a few blank lines, and spaces around some values. */
function toCsv(b: Blobs): string {
  const lines = [['f1', 'f2', 'species', 'f3', 'f4'].join(',')];
  b.values.forEach((v, i) => {
    if (i % 50 === 7) lines.push('');
    const pad = i % 11 === 0 ? ' ' : '';
    lines.push([v[0], v[1], csvQuote(b.labels[i]!), `${pad}${v[2]}${pad}`, v[3]].join(','));
  });
  return `${lines.join('\r\n')}\r\n\r\n`;
}

function toJsonl(b: Blobs): string {
  const lines = b.values.map((v, i) =>
    JSON.stringify({ f1: Number(v[0]), f2: Number(v[1]), species: b.labels[i], f3: Number(v[2]), f4: Number(v[3]) }),
  );
  lines.splice(100, 0, '   ');
  return `${lines.join('\n')}\n`;
}

function write(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return pathToFileURL(file).href;
}

const spec = (name: 'csv' | 'jsonl', params: Record<string, unknown>, extra: Partial<DatasetSpec> = {}): DatasetSpec => ({ name, ...extra, params });

async function rejects(promise: Promise<unknown>, pattern: RegExp): Promise<Error> {
  const err = await promise.then(
    () => assert.fail(`expected an error matching ${pattern}`),
    (e: unknown) => e as Error,
  );
  assert.match(err.message, pattern);
  assert.equal(err.name, 'NonRetryableTrainingError', 'retrying cannot fix a bad file: the error must be non-retryable');
  return err;
}

function assertSameData(a: Dataset, b: Dataset): void {
  assert.equal(a.size, b.size);
  assert.deepEqual(a.xShape, b.xShape);
  assert.deepEqual(a.yShape, b.yShape);
  assert.deepEqual(a.x, b.x);
  assert.deepEqual(a.y, b.y);
}

describe('csv and jsonl datasets', () => {
  const dir = tempDir('dt-tabular-');
  const data = blobs();
  const csvUri = write(dir, 'blobs.csv', toCsv(data));
  const jsonlUri = write(dir, 'blobs.jsonl', toJsonl(data));
  const classification = { label: 'species' };
  /** Values as written: the transforms are tested in tabular-preprocess.test.ts. */
  const raw = { label: 'species', normalize: 'none' };
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('CSV and JSONL of the same rows load to identical Float32Arrays', async () => {
    const csv = await loadTabular('csv', spec('csv', { uri: csvUri, ...raw }));
    const jsonl = await loadTabular('jsonl', spec('jsonl', { uri: jsonlUri, ...raw }));
    assertSameData(
      await loadTabular('csv', spec('csv', { uri: csvUri, ...classification })),
      await loadTabular('jsonl', spec('jsonl', { uri: jsonlUri, ...classification })),
    );
    assert.equal(csv.size, ROWS);
    assert.deepEqual(csv.xShape, [4]);
    assert.deepEqual(csv.yShape, [3]);
    assert.ok(csv.x instanceof Float32Array && csv.y instanceof Float32Array);
    assertSameData(csv, jsonl);
    // Features in header order without the label, values as written.
    const expected = Float32Array.from(data.values.flat().map(Number));
    assert.deepEqual(csv.x, expected);
  });

  test('labels are one-hot over the sorted distinct values (quoted labels included)', async () => {
    const d = await loadTabular('csv', spec('csv', { uri: csvUri, ...classification }));
    for (let i = 0; i < 6; i++) {
      const row = Array.from(d.y.subarray(i * 3, i * 3 + 3));
      const hot = SORTED.indexOf(data.labels[i]!);
      assert.deepEqual(row, [0, 1, 2].map((k) => (k === hot ? 1 : 0)), `row ${i} (${data.labels[i]})`);
    }
    assert.deepEqual(sortLabels(['10', '9', '2.5']), ['2.5', '9', '10'], 'numeric labels sort numerically');
    assert.deepEqual(sortLabels(['b', 'B', 'a']), ['B', 'a', 'b'], 'others by code unit, no locale');
  });

  test('explicit classes set the one-hot order; a label outside them names its line', async () => {
    const d = await loadTabular('csv', spec('csv', { uri: csvUri, ...classification, classes: LABELS }));
    assert.deepEqual(Array.from(d.y.subarray(0, 9)), [1, 0, 0, 0, 1, 0, 0, 0, 1]);
    // Data row 2 (alpha) is on line 3: header on line 1.
    await rejects(
      loadTabular('csv', spec('csv', { uri: csvUri, ...classification, classes: ['zeta', 'mid "x", y'] })),
      /blobs\.csv row 2 \(line 3\), column `species`: label "alpha" is not one of the 2 classes \(zeta, mid \\"x\\", y\)/,
    );
  });

  test('features pick and order columns', async () => {
    const d = await loadTabular('jsonl', spec('jsonl', { uri: jsonlUri, ...raw, features: ['f4', 'f1'] }));
    assert.deepEqual(d.xShape, [2]);
    assert.deepEqual(Array.from(d.x.subarray(0, 2)), [Math.fround(Number(data.values[0]![3])), Math.fround(Number(data.values[0]![0]))]);
  });

  test('regression: a numeric label, yShape [1]', async () => {
    const params = { uri: csvUri, label: 'f4', features: ['f1', 'f2', 'f3'], task: 'regression', normalize: 'none' };
    const csv = await loadTabular('csv', spec('csv', params));
    const jsonl = await loadTabular('jsonl', spec('jsonl', { ...params, uri: jsonlUri }));
    assert.deepEqual(csv.yShape, [1]);
    assert.deepEqual(csv.xShape, [3]);
    assert.deepEqual(csv.y, Float32Array.from(data.values.map((v) => Number(v[3]))));
    assertSameData(csv, jsonl);
    await rejects(loadTabular('csv', spec('csv', { ...params, label: 'species', features: ['f1'] })), /blobs\.csv row 1 \(line 2\), column `species`: the label is not a number: "zeta"/);
  });

  test('split: every 5th row is test by default, deterministically; testFraction changes the share', async () => {
    const all = await loadTabular('csv', spec('csv', { uri: csvUri, ...raw }));
    const train = await loadTabular('csv', spec('csv', { uri: csvUri, ...raw }, { split: 'train' }));
    const testSet = await loadTabular('csv', spec('csv', { uri: csvUri, ...raw }, { split: 'test' }));
    assert.equal(train.size, 240);
    assert.equal(testSet.size, 60);
    assert.deepEqual(testSet.yShape, [3], 'classes come from the whole file');
    // Test row k is data row 5k+4 (0-based).
    for (const k of [0, 1, 59]) {
      assert.deepEqual(testSet.x.subarray(k * 4, k * 4 + 4), all.x.subarray((5 * k + 4) * 4, (5 * k + 5) * 4));
    }
    assert.deepEqual(train.x.subarray(4 * 4, 5 * 4), all.x.subarray(5 * 4, 6 * 4), 'train row 4 is data row 5');
    const quarter = await loadTabular('csv', spec('csv', { uri: csvUri, ...classification, testFraction: 0.25 }, { split: 'test' }));
    assert.equal(quarter.size, 75);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((n) => isTestRow(n, 0.25)), [false, false, false, true, false, false, false, true]);
    await rejects(loadTabular('csv', spec('csv', { uri: csvUri, ...classification }, { split: 'validation' })), /`split` of dataset csv to be `train`, `test`, or absent/);
    await rejects(loadTabular('csv', spec('csv', { uri: csvUri, ...classification, testFraction: 1.5 }, { split: 'test' })), /`params\.testFraction` of dataset csv to be a number between 0 and 1/);
  });

  test('a value that is not a number names the file, row, line and column', async () => {
    const uri = write(dir, 'bad.csv', 'a,b,label\n1,2,x\n\n3,abc,y\n4,5,x\n');
    await rejects(loadTabular('csv', spec('csv', { uri, label: 'label' })), /bad\.csv row 2 \(line 4\), column `b`: expected a number, got "abc"/);
    const empty = write(dir, 'empty-cell.csv', 'a,b,label\n1,,x\n');
    await rejects(loadTabular('csv', spec('csv', { uri: empty, label: 'label' })), /empty-cell\.csv row 1 \(line 2\), column `b`: the value is missing/);
    const ragged = write(dir, 'ragged.csv', 'a,b,label\n1,2,x\n1,2\n');
    await rejects(loadTabular('csv', spec('csv', { uri: ragged, label: 'label' })), /ragged\.csv line 3: expected 3 columns as in the header, got 2/);
    const unclosed = write(dir, 'unclosed.csv', 'a,label\n1,"x\n2,y\n');
    await rejects(loadTabular('csv', spec('csv', { uri: unclosed, label: 'label' })), /unclosed\.csv line 2: a quoted field is not closed/);
    const jsonl = write(dir, 'bad.jsonl', '{"a":1,"label":"x"}\n{"a":"abc","label":"y"}\n{oops\n');
    await rejects(loadTabular('jsonl', spec('jsonl', { uri: jsonl, label: 'label' })), /bad\.jsonl line 3: not valid JSON/);
    const jsonlNumber = write(dir, 'bad2.jsonl', '{"a":1,"label":"x"}\n\n{"a":"abc","label":"y"}\n{"a":2,"label":"y"}\n');
    await rejects(loadTabular('jsonl', spec('jsonl', { uri: jsonlNumber, label: 'label' })), /bad2\.jsonl row 2 \(line 3\), column `a`: expected a number, got "abc"/);
  });

  test('a missing label or feature column names the field and the columns there are', async () => {
    const err = await rejects(
      loadTabular('csv', spec('csv', { uri: csvUri, label: 'variety' })),
      /Expected `params\.label` of dataset csv to be a column of file:.*blobs\.csv \(columns: f1, f2, species, f3, f4\), got `"variety"` \(string\)/,
    );
    assert.ok(err.message.includes(csvUri));
    await rejects(loadTabular('jsonl', spec('jsonl', { uri: jsonlUri, label: 'species', features: ['f1', 'f9'] })), /`params\.features` of dataset jsonl .* got `"f9"`/);
    await rejects(loadTabular('csv', spec('csv', { uri: csvUri })), /`params\.label` of dataset csv to be a non-empty column name, got nothing/);
    await rejects(loadTabular('csv', spec('csv', { uri: csvUri, label: 'species', lable: 'x' })), /`params\.lable` of dataset csv to be one of the known fields/);
    await rejects(loadTabular('csv', spec('csv', { uri: 'data.csv', label: 'species' })), /`params\.uri` of dataset csv to be a file:\/\/ or gs:\/\/ URI/);
  });

  test('a missing file names its URI', async () => {
    const uri = pathToFileURL(path.join(dir, 'nowhere', 'gone.csv')).href;
    await rejects(loadTabular('csv', spec('csv', { uri, label: 'species' })), new RegExp(`no file at ${uri.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  test('the built-in registry has csv and jsonl and loads a spec once', async () => {
    const registry = builtInDatasets();
    assert.ok(registry.has('csv') && registry.has('jsonl'));
    const s = spec('csv', { uri: csvUri, ...classification }, { split: 'train', limit: 100 });
    const first = await registry.load(s);
    assert.equal(first.size, 100);
    assert.equal(await registry.load(s), first);
  });
});

describe('csv from gs:// (fake-gcs-server)', () => {
  const BUCKET = 'dt-tabular';
  let emu: GcsEmulator;
  const previous = process.env.STORAGE_EMULATOR_HOST;
  const data = blobs();
  const dir = tempDir('dt-tabular-gs-');
  const csvUri = write(dir, 'blobs.csv', toCsv(data));

  before(async () => {
    emu = await startGcsEmulator({ buckets: [BUCKET] });
    process.env.STORAGE_EMULATOR_HOST = emu.endpoint;
    await emu.storage.bucket(BUCKET).file('tables/v1/blobs.csv').save(toCsv(data), { resumable: false });
    await emu.storage.bucket(BUCKET).file('top.csv').save(toCsv(data), { resumable: false });
  });
  after(async () => {
    if (previous === undefined) delete process.env.STORAGE_EMULATOR_HOST;
    else process.env.STORAGE_EMULATOR_HOST = previous;
    await emu?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('loads identically to the local file, under a prefix and at the bucket root', async () => {
    const local = await loadTabular('csv', spec('csv', { uri: csvUri, label: 'species' }, { split: 'train' }));
    const gs = await loadTabular('csv', spec('csv', { uri: `gs://${BUCKET}/tables/v1/blobs.csv`, label: 'species' }, { split: 'train' }));
    const top = await loadTabular('csv', spec('csv', { uri: `gs://${BUCKET}/top.csv`, label: 'species' }, { split: 'train' }));
    assertSameData(local, gs);
    assertSameData(local, top);
  });

  test('a missing object names its gs:// URI', async () => {
    await rejects(loadTabular('csv', spec('csv', { uri: `gs://${BUCKET}/tables/v2/blobs.csv`, label: 'species' })), /no file at gs:\/\/dt-tabular\/tables\/v2\/blobs\.csv/);
  });
});

describe('trainModel on a CSV', { timeout: 120_000 }, () => {
  let stack: Stack;
  let worker: InProcessWorker;
  const dir = tempDir('dt-tabular-e2e-');
  const csvUri = write(dir, 'blobs.csv', toCsv(blobs()));

  before(async () => {
    stack = await startStack();
    worker = await startWorker(stack.address);
  });
  after(async () => {
    await worker?.stop();
    await stack?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('learns the blobs from the train split, far above chance on the test split', async (t) => {
    const params = { uri: csvUri, label: 'species' };
    const handle = await stack.client.workflow.start('trainModel', {
      taskQueue: worker.taskQueue,
      workflowId: uniqueId('csv'),
      args: [
        {
          model: { name: 'mlp', params: { hiddenUnits: [16] } },
          data: { train: { name: 'csv', split: 'train', params }, eval: { name: 'csv', split: 'test', params } },
          hyperparameters: { optimizer: 'adam', learningRate: 0.01, batchSize: 32 },
          stepsPerEpoch: 30,
          maxEpochs: 3,
          seed: 3,
          timeouts: { heartbeatSeconds: 5 },
        },
      ],
    });
    const result = (await handle.result()) as TrainModelResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.epochs, 3);
    const accuracy = result.history.at(-1)!.metrics.val_accuracy!;
    t.diagnostic(`val_accuracy by epoch: ${result.history.map((h) => h.metrics.val_accuracy!.toFixed(3)).join(' → ')}`);
    assert.ok(accuracy > 0.8, `accuracy ${accuracy} should be far above chance (1/3)`);
  });

  test('a bad file fails the run at once with a non-retryable error naming the row and column', async () => {
    const uri = write(dir, 'bad.csv', 'a,b,label\n1,2,x\n3,,y\n4,5,x\n');
    const params = { uri, label: 'label' };
    const handle = await stack.client.workflow.start('trainModel', {
      taskQueue: worker.taskQueue,
      workflowId: uniqueId('csv-bad'),
      args: [
        {
          model: { name: 'mlp', params: { hiddenUnits: [4] } },
          data: { train: { name: 'csv', params }, eval: { name: 'csv', params } },
          stepsPerEpoch: 2,
          maxEpochs: 1,
          timeouts: { heartbeatSeconds: 5 },
        },
      ],
    });
    const err = await handle.result().then(
      () => assert.fail('the workflow should have failed'),
      (e: unknown) => e as Error,
    );
    const messages: string[] = [];
    for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) messages.push(e.message);
    assert.ok(messages.some((m) => /bad\.csv row 2 \(line 3\), column `b`: the value is missing/.test(m)), messages.join(' <- '));
  });
});
