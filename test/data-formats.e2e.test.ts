/**
 * TFRecord and Parquet shards end to end: trainModel on a real dev server with a worker process,
 * the same MNIST rows (test/helpers/mnist-shards.ts) written three ways into file:// shards of 100
 * rows: JSONL.gz by Node, TFRecord.gz of tf.train.Example by TensorFlow's TFRecordWriter and
 * Parquet by pyarrow (scripts/make-format-fixtures.py, Python from scripts/setup-bench-python.sh).
 *
 *   - the three runs (training and evaluation streamed from their format) train to the same weights,
 *     bit for bit, and the same metrics: the same rows in the same order are the same examples;
 *   - bad inputs end FAILED within 10 s at the first attempt, naming the shard and the field: a
 *     shard that is not the format it claims, a TFRecord with a bad data CRC, a Parquet column of
 *     the wrong type (strings as a feature).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { pathToFileURL } from 'node:url';
import { before, describe, test } from 'node:test';
import type { TrainModelResult } from '../src/workflows';
import { comparable, modelWeights, sha256 } from './e2e-support';
import { mnistRows, writeShards } from './helpers/mnist-shards';
import { expectBadInputsFail, useShardedStack } from './helpers/sharded-stack';
import { ROOT, uniqueId } from './helpers/temporal';

const CLASSES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const FORMATS = { jsonl: 'jsonl.gz', tfrecord: 'tfrecord.gz', parquet: 'parquet' } as const;
type Format = keyof typeof FORMATS;

describe('TFRecord and Parquet shards end to end (dev server, worker process, shards by TensorFlow and pyarrow)', () => {
  const s = useShardedStack('formats-e2e');
  const { root, taskQueue } = s;
  const data = path.join(root, 'data');
  const results = new Map<Format, TrainModelResult>();

  const spec = (format: string, glob: string, extra: Record<string, unknown> = {}) => ({
    name: 'sharded',
    params: { uri: pathToFileURL(path.join(data, glob)).href, format, label: 'y', features: ['pixels'], classes: CLASSES, shuffleWindow: 96, ...extra },
  });
  const input = (runId: string, train: Record<string, unknown>, evalSpec: Record<string, unknown>) => ({
    runId,
    model: { name: 'mlp', params: { hiddenUnits: [32] } },
    data: { train, eval: evalSpec },
    hyperparameters: { optimizer: 'adam', learningRate: 0.005, batchSize: 32 },
    stepsPerEpoch: 8,
    maxEpochs: 2,
    seed: 5,
    checkpoint: { everySteps: 4, everySeconds: 0 },
    timeouts: { heartbeatSeconds: 3 },
  });

  before(async () => {
    const setup = spawnSync('bash', [path.join(ROOT, 'scripts/setup-bench-python.sh')], { encoding: 'utf8' });
    assert.equal(setup.status, 0, `scripts/setup-bench-python.sh: ${setup.stderr}`);
    const python = setup.stdout.trim();
    const rows = mnistRows(400);
    for (const [split, part] of [['train', rows.slice(0, 300)], ['eval', rows.slice(300)]] as const) {
      const dir = path.join(data, split);
      writeShards(dir, part, 100, { format: 'jsonl', gzip: true });
      const json = path.join(root, `${split}.json`);
      fs.writeFileSync(json, JSON.stringify(part));
      const made = spawnSync(python, [path.join(ROOT, 'scripts/make-format-fixtures.py'), 'mnist', json, dir, '100'], { encoding: 'utf8' });
      assert.equal(made.status, 0, `make-format-fixtures.py mnist: ${made.stderr.slice(-2000)}`);
    }
    // Bad shards: JSONL named as TFRecord; a TensorFlow-written record with one data byte flipped.
    fs.mkdirSync(path.join(data, 'bad'));
    fs.copyFileSync(path.join(data, 'train/part-00000.jsonl.gz'), path.join(data, 'bad/not-a.tfrecord.gz'));
    const record = zlib.gunzipSync(fs.readFileSync(path.join(data, 'train/part-00000.tfrecord.gz')));
    record[5000]! ^= 0x10;
    fs.writeFileSync(path.join(data, 'bad/crc.tfrecord'), record);
    s.worker();
  });

  for (const format of Object.keys(FORMATS) as Format[]) {
    test(`a run on ${format} shards completes and learns`, { timeout: 5 * 60_000 }, async () => {
      const runId = uniqueId(format);
      const ext = FORMATS[format];
      const args = [input(runId, spec(format, `train/part-*.${ext}`), spec(format, `eval/part-*.${ext}`))];
      const result = (await s.stack.client.workflow.execute('trainModel', { taskQueue, workflowId: runId, args, workflowExecutionTimeout: '5 minutes' })) as TrainModelResult;
      assert.equal(result.step, 16);
      const accuracy = result.history.at(-1)!.metrics.val_accuracy!;
      assert.ok(accuracy > 0.3, `val_accuracy ${accuracy} on 100 held-out digits`);
      results.set(format, result);
    });
  }

  test('the same rows as TFRecord, Parquet and JSONL train to bitwise-equal weights and equal metrics', () => {
    const jsonl = results.get('jsonl');
    assert.ok(jsonl, 'the jsonl run completed');
    for (const format of ['tfrecord', 'parquet'] as const) {
      const r = results.get(format);
      assert.ok(r, `the ${format} run completed`);
      assert.equal(sha256(modelWeights(r)), sha256(modelWeights(jsonl)), `${format} weights`);
      assert.deepEqual(comparable(r.history), comparable(jsonl.history), `${format} metrics`);
    }
  });

  test('bad inputs end FAILED within 10 s at the first attempt, naming the shard and the field', { timeout: 3 * 60_000 }, async () => {
    const fixtures = (glob: string) => pathToFileURL(path.join(ROOT, 'test/fixtures/formats', glob)).href;
    const good = spec('jsonl', 'eval/part-*.jsonl.gz');
    const cases: Array<{ name: string; train: ReturnType<typeof spec>; names: RegExp }> = [
      { name: 'a shard that is not the format it claims', train: spec('tfrecord', 'bad/not-a.tfrecord.gz'), names: /not-a\.tfrecord\.gz \(`data\.train\.params\.format` tfrecord\).*record 0 \(byte offset 0\)/ },
      { name: 'a TFRecord with a bad CRC', train: spec('tfrecord', 'bad/crc.tfrecord'), names: /crc\.tfrecord .*bad data CRC at record 1 \(byte offset \d+\)/ },
      {
        name: 'a Parquet column of the wrong type',
        train: { ...spec('parquet', 'x', { features: ['s'], label: 'label', classes: [0, 1, 2] }), params: { ...spec('parquet', 'x').params, uri: fixtures('small.parquet'), features: ['s'], label: 'label', classes: [0, 1, 2] } },
        names: /column `s` \(`data\.train\.params\.features`\) of shard \S*small\.parquet.*got BYTE_ARRAY \(STRING\)/,
      },
    ];
    await expectBadInputsFail(s, cases.map((c) => ({ ...c, input: (runId: string) => input(runId, c.train, good) })));
  });
});
