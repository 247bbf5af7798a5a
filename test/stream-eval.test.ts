/**
 * Issue #21 point 5: a `sharded` evaluation set streams (ShardedEvalStream: shards in listing
 * order, one read ahead) with the metrics of the in-memory path to the last bit. In process: tfjs's
 * JS backend, real MNIST rows from the `mnist` package (columns p0..p783 and y) written as one JSONL
 * file and as JSONL.gz shards.
 *
 *   - the same rows from one `jsonl` file (loaded whole) and from 8 shards of 150 rows (streamed,
 *     batches of 512 crossing shard edges) give bitwise equal val_loss / val_accuracy, through
 *     loadEvalData's dispatch (the trainer's path) and with `limit`;
 *   - a pass holds at most two decoded shards (the one read and the next);
 *   - the comparison can fail: the same rows cut into other batches give other last bits.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { openShardedEval } from '../src/data/streamed';
import { openStore } from '../src/checkpoints/open-store';
import { builtInDatasets } from '../src/training/dataset-registry';
import { evaluateModel } from '../src/training/eager/evaluate';
import { isEvalStream, evalExamples } from '../src/training/eval-data';
import { loadEvalData } from '../src/training/run-preprocessing';
import type { DatasetSpec } from '../src/config/train-config';
import { flatJsonlOf, mnistRows, PIXEL_COLUMNS } from './helpers/mnist-shards';

const CLASSES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const ROWS = 1100;
const PER_SHARD = 150;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-stream-eval-'));
const rows = mnistRows(ROWS);
const wholeFile = path.join(root, 'whole', 'all.jsonl');
const jsonlSpec = (limit?: number): DatasetSpec => ({
  name: 'jsonl',
  params: { uri: `file://${wholeFile}`, label: 'y', classes: CLASSES, normalize: 'none' },
  ...(limit !== undefined && { limit }),
});
const shardedSpec = (limit?: number): DatasetSpec => ({
  name: 'sharded',
  params: { uri: `file://${root}/shards/part-*.jsonl.gz`, format: 'jsonl', label: 'y', features: PIXEL_COLUMNS, classes: CLASSES },
  ...(limit !== undefined && { limit }),
});

function model(): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [784], units: 32, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }));
  m.add(tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }));
  return m;
}

describe('streamed evaluation of sharded data', () => {
  let m: tf.LayersModel;
  before(async () => {
    await tf.setBackend('cpu');
    fs.mkdirSync(path.dirname(wholeFile), { recursive: true });
    fs.writeFileSync(wholeFile, flatJsonlOf(rows));
    fs.mkdirSync(path.join(root, 'shards'));
    for (let k = 0; k * PER_SHARD < ROWS; k++) {
      const part = flatJsonlOf(rows.slice(k * PER_SHARD, (k + 1) * PER_SHARD));
      fs.writeFileSync(path.join(root, 'shards', `part-${String(k).padStart(5, '0')}.jsonl.gz`), zlib.gzipSync(part));
    }
    process.env.DT_ALLOWED_URIS = `file://${root}`;
    m = model();
  });
  after(() => {
    m.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('jsonl loaded whole and sharded JSONL streamed: bitwise equal metrics, two shards held at most', async () => {
    const datasets = builtInDatasets();
    const store = openStore(`file://${root}/run`);
    const whole = await loadEvalData(datasets, store, jsonlSpec(), jsonlSpec(), 0);
    const streamed = await loadEvalData(datasets, store, shardedSpec(), shardedSpec(), 0);
    assert.ok(!isEvalStream(whole));
    assert.ok(isEvalStream(streamed), 'a sharded eval set is streamed, not loaded whole');
    const a = await evaluateModel(m, whole, 'categoricalCrossentropy');
    const b = await evaluateModel(m, streamed, 'categoricalCrossentropy');
    console.log(`whole: ${JSON.stringify(a)}; streamed: ${JSON.stringify(b)}`);
    assert.deepStrictEqual(b, a);
    assert.equal(evalExamples(streamed), ROWS);
    assert.equal(evalExamples(whole), ROWS);
    const stream = streamed as Awaited<ReturnType<typeof openShardedEval>>;
    assert.equal(stream.stats.reads, Math.ceil(ROWS / PER_SHARD));
    assert.equal(stream.stats.maxHeld, 2);
    // A second pass (the next epoch's evaluation) gives the same again.
    assert.deepStrictEqual(await evaluateModel(m, streamed, 'categoricalCrossentropy'), a);
  });

  test('limit: the first records, as the registry keeps them whole', async () => {
    const limit = 700; // inside the fifth shard, after one full batch
    const whole = await builtInDatasets().load(jsonlSpec(limit));
    const streamed = await openShardedEval(shardedSpec(limit));
    assert.deepStrictEqual(await evaluateModel(m, streamed, 'categoricalCrossentropy'), await evaluateModel(m, whole, 'categoricalCrossentropy'));
    assert.equal(streamed.counted, limit);
    assert.equal(streamed.stats.reads, Math.ceil(limit / PER_SHARD), 'no shard read past the limit');
  });

  test('the comparison sees the last bit: the same rows in other batches differ', async () => {
    const whole = await builtInDatasets().load(jsonlSpec());
    const by512 = await evaluateModel(m, whole, 'categoricalCrossentropy', 512);
    const byShard = await evaluateModel(m, whole, 'categoricalCrossentropy', PER_SHARD);
    assert.notDeepStrictEqual(byShard, by512);
    assert.ok(Math.abs(byShard.val_loss! - by512.val_loss!) < 1e-5, 'the same metric up to rounding');
  });

  test('an eval glob that matches nothing fails non-retryably naming data.eval.params.uri', async () => {
    const spec = { ...shardedSpec(), params: { ...shardedSpec().params, uri: `file://${root}/shards/none-*.jsonl.gz` } };
    await assert.rejects(loadEvalData(builtInDatasets(), openStore(`file://${root}/run`), spec, spec, 0), (err: Error) => {
      assert.equal(err.name, 'NonRetryableTrainingError');
      assert.match(err.message, /data\.eval\.params\.uri/);
      return true;
    });
  });
});
