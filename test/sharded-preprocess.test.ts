/**
 * `params.normalize` on the streamed `sharded` dataset (src/data/preprocess.ts): the same rows
 * through the one-file `jsonl` dataset and through one JSONL shard in one shuffle window (the order
 * where both paths give the same batches) give the same preprocessing.json numbers, bitwise-equal
 * batches and bitwise-equal weights after training a small model in-process (tfjs, CPU); the
 * evaluation stream applies the TRAIN statistics; a resumed open reads the stored statistics and
 * never refits; bad input fails non-retryably naming the field.
 *
 *   node --import tsx --test --test-reporter=spec test/sharded-preprocess.test.ts
 *
 * The values are small multiples of 1/4 and there are 128 rows, so every sum is exact in float64
 * and both fits (the tabular two-pass variance, the index pass's sum of squares) give the same bits.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { openStore } from '../src/checkpoints/open-store';
import type { DatasetSpec } from '../src/config/train-config';
import { openShardedEval, openShardedSource } from '../src/data/streamed';
import { BatchAssembler } from '../src/training/batch';
import { builtInDatasets } from '../src/training/dataset-registry';
import { evalBatches } from '../src/training/eval-data';
import { loadDataForModel, loadEvalData } from '../src/training/run-preprocessing';

import { NonRetryableTrainingError } from '../src/training/protocol';
import { loadTabular } from '../src/training/tabular';
import { readPreprocessing, type Preprocessing } from '../src/training/tabular-preprocess';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-sharded-preprocess-'));
process.env.DT_ALLOWED_URIS = `file://${root}`;
after(() => fs.rmSync(root, { recursive: true, force: true }));

const ROWS = 128;
const B = 16;
const SEED = 5;
// `t`: near 2^23 with a variance of about 4 (a float32 holds it exactly; its squares' sum does not fit a float64's 53 bits).
const rows = Array.from({ length: ROWS }, (_, k) => ({ a: ((k * 37) % 101) - 50, b: ((k * 13) % 17) * 0.25 + 3, c: 2, t: 2 ** 23 + (k % 7), name: `r${k}`, y: k % 3 }));
const evalRows = Array.from({ length: 40 }, (_, k) => ({ a: ((k * 11) % 23) - 7, b: (k % 5) * 0.5, c: 2, t: 2 ** 23 + (k % 5), name: 'e', y: (k * 7) % 3 }));
const write = (name: string, rs: readonly object[]): string => {
  const file = path.join(root, name);
  fs.writeFileSync(file, rs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return `file://${file}`;
};
const trainUri = write('train.jsonl', rows);
const evalUri = write('eval.jsonl', evalRows);
const FEATURES = ['a', 'b', 'c', 't'];
const CLASSES = [0, 1, 2];

const jsonlSpec = (uri: string): DatasetSpec => ({ name: 'jsonl', params: { uri, label: 'y', features: FEATURES, classes: CLASSES, normalize: 'standard' } });
const shardedSpec = (uri: string, extra: Record<string, unknown> = {}): DatasetSpec => ({
  name: 'sharded',
  params: { uri, format: 'jsonl', label: 'y', features: FEATURES, classes: CLASSES, shuffleWindow: ROWS, normalize: 'standard', ...extra },
});
let runs = 0;
const runStore = () => openStore(`file://${path.join(root, `run-${++runs}`)}`);

async function batchesOf(data: ConstructorParameters<typeof BatchAssembler>[0], steps: number): Promise<Float32Array[]> {
  const batch = new BatchAssembler(data, B, SEED);
  const out: Float32Array[] = [];
  for (let s = 1; s <= steps; s++) {
    await batch.prepare(s);
    batch.fill(s);
    out.push(batch.x.slice(), batch.y.slice());
  }
  return out;
}

async function trainedWeights(data: ConstructorParameters<typeof BatchAssembler>[0], steps: number): Promise<Float32Array[]> {
  await tf.setBackend('cpu');
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [FEATURES.length], units: 8, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.dense({ units: CLASSES.length, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
  const batch = new BatchAssembler(data, B, SEED);
  for (let s = 1; s <= steps; s++) {
    await batch.prepare(s);
    batch.fill(s);
    const x = tf.tensor2d(batch.x, [B, FEATURES.length]);
    const y = tf.tensor2d(batch.y, [B, CLASSES.length]);
    await model.trainOnBatch(x, y);
    x.dispose();
    y.dispose();
  }
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  model.dispose();
  return weights;
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

test('one shard, one window: the jsonl and sharded paths fit the same preprocessing.json and train to bitwise-equal weights', async () => {
  const tabular = await loadTabular('jsonl', jsonlSpec(trainUri));
  const store = runStore();
  const source = await openShardedSource(store, shardedSpec(trainUri), B, SEED, { cacheBytes: 1e8 });
  const stored = readPreprocessing((await store.get('preprocessing.json'))!, 'run');
  const fitted = tabular.preprocessing as Preprocessing;
  assert.deepEqual(stored.columns, fitted.columns, 'the same numbers, column by column');
  assert.equal(stored.inputWidth, fitted.inputWidth);
  assert.deepEqual(stored.classes, fitted.classes);
  assert.equal(stored.normalize, 'standard');
  assert.equal(stored.fittedOn.rows, ROWS);
  // It is a transform, not the identity: standardized columns have mean 0.
  assert.notEqual(stored.columns[0]!.kind === 'numeric' && stored.columns[0]!.center, 0);
  assert.deepEqual(source.shapes().preprocessing, stored, 'what checkpoints carry and the export writes');

  const steps = 3 * (ROWS / B); // three epochs
  const [viaJsonl, viaShards] = [await batchesOf(tabular, steps), await batchesOf(source, steps)];
  assert.deepEqual(viaShards.map(bits), viaJsonl.map(bits), 'bitwise-equal batches');
  const [wJsonl, wShards] = [await trainedWeights(tabular, steps), await trainedWeights(source, steps)];
  assert.deepEqual(wShards.map(bits), wJsonl.map(bits), 'bitwise-equal weights');
  source.close();

  // Evaluation: the TRAIN statistics, the same rows as the jsonl dataset given the stored transform.
  const evalTabular = await loadTabular('jsonl', jsonlSpec(evalUri), {}, { preprocessing: stored });
  const stream = await openShardedEval(shardedSpec(evalUri), { preprocessing: stored });
  const xs: Float32Array[] = [];
  for await (const b of stream.batches(64)) xs.push(b.x.slice());
  assert.equal(bits(xs[0]!), bits(evalTabular.x), 'eval rows transformed with the training statistics');
});

test("a run's evaluation and an exported model's evaluation read the stored TRAIN statistics (loadEvalData, loadDataForModel)", async () => {
  const store = runStore();
  (await openShardedSource(store, shardedSpec(trainUri), B, SEED, { cacheBytes: 1e8 })).close();
  const stored = readPreprocessing((await store.get('preprocessing.json'))!, 'run');
  const expected = bits((await loadTabular('jsonl', jsonlSpec(evalUri), {}, { preprocessing: stored })).x);
  const rowsOf = async (data: Awaited<ReturnType<typeof loadEvalData>>): Promise<string> => {
    const xs: Float32Array[] = [];
    for await (const b of evalBatches(data, 64)) xs.push(b.x.slice());
    return bits(xs[0]!);
  };
  const datasets = builtInDatasets();
  assert.equal(await rowsOf(await loadEvalData(datasets, store, shardedSpec(evalUri), shardedSpec(evalUri), 0)), expected, 'the run folder\'s preprocessing.json');
  // The exported model's folder: preprocessing.json beside model.json, as finalizeRun writes it.
  const model = runStore();
  await model.put('preprocessing.json', (await store.get('preprocessing.json'))!);
  assert.equal(await rowsOf(await loadDataForModel(datasets, model, shardedSpec(evalUri))), expected, 'the preprocessing.json exported beside the model');
});

test('a resumed run reads the stored statistics and never refits', async () => {
  const store = runStore();
  (await openShardedSource(store, shardedSpec(trainUri), B, SEED, { cacheBytes: 1e8 })).close();
  const stored = readPreprocessing((await store.get('preprocessing.json'))!, 'run');
  // Another value in the stored file (as if the data had been fitted differently): the next open must use it.
  const edited = { ...stored, columns: stored.columns.map((c, j) => (j === 0 && c.kind === 'numeric' ? { ...c, center: 1000 } : c)) };
  await store.put('preprocessing.json', Buffer.from(JSON.stringify(edited)));
  const source = await openShardedSource(store, shardedSpec(trainUri), B, SEED, { cacheBytes: 1e8 });
  assert.deepEqual((source.shapes().preprocessing as Preprocessing).columns[0], edited.columns[0]);
  await source.prepare(1);
  const x = new Float32Array(B * FEATURES.length);
  source.fill(1, x, new Float32Array(B * CLASSES.length));
  for (let k = 0; k < B; k++) assert.ok(x[k * FEATURES.length]! < -5, `column a centred on the stored 1000, row ${k}: ${x[k * FEATURES.length]}`);
  source.close();
});

test('bad input fails non-retryably naming the field', async () => {
  const cases: { name: string; spec: DatasetSpec; names: RegExp }[] = [
    { name: 'a non-numeric column', spec: shardedSpec(trainUri, { features: ['a', 'name'] }), names: /name/ },
    { name: 'an absent column', spec: shardedSpec(trainUri, { features: ['a', 'nope'] }), names: /nope/ },
    { name: 'an unknown normalize', spec: shardedSpec(trainUri, { normalize: 'zscore' }), names: /`data\.train\.params\.normalize`.*zscore/ },
    { name: 'normalize on images', spec: shardedSpec(trainUri, { format: 'tar', features: undefined, normalize: 'standard' }), names: /params\.normalize/ },
    { name: 'an array feature', spec: shardedSpec(write('arrays.jsonl', [{ v: [1, 2], y: 0 }]), { features: ['v'] }), names: /`v`.*2 values/ },
  ];
  for (const c of cases) {
    const err = await openShardedSource(runStore(), c.spec, B, SEED, { cacheBytes: 1e8 }).then(
      () => assert.fail(`${c.name}: expected a failure`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof NonRetryableTrainingError, `${c.name}: non-retryable, got ${String(err)}`);
    assert.match(err.message, c.names, c.name);
  }
});
