/**
 * Sharded, streamed data end to end: trainModel on a real dev server with a worker process, MNIST
 * rows as JSONL.gz shards in the GCS emulator (training and evaluation both `sharded`).
 *
 *   - the run completes and learns; its folder pins the data index;
 *   - the worker (and its trainer) SIGKILLed mid-epoch at a moment drawn from a printed seed, a
 *     new worker finishes the run: exported weights and every epoch's metrics equal the
 *     uninterrupted run's, bit for bit;
 *   - bad inputs for this feature end FAILED within 10 s at the first attempt, naming the field:
 *     an empty glob, a shard that is not gzip, a label outside `classes`, a glob outside the
 *     allow-list, missing `classes`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import { checkpointKey, MANIFEST } from '../src/checkpoints/layout';
import type { TrainModelResult } from '../src/workflows';
import { comparable, modelWeights, sha256 } from './e2e-support';
import { jsonlOf, mnistRows } from './helpers/mnist-shards';
import { mulberry32, testSeed } from './helpers/seed';
import { checkpointBefore, expectBadInputsFail, useShardedStack, waitForPause } from './helpers/sharded-stack';
import { uniqueId } from './helpers/temporal';
import zlib from 'node:zlib';

const BUCKET = 'dt-e2e';
const PREFIX = uniqueId('sharded');
const CLASSES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const STEPS_PER_EPOCH = 10;
const EPOCHS = 4;
const EVERY = 5;

const spec = (pattern: string, extra: Record<string, unknown> = {}) => ({
  name: 'sharded',
  params: { uri: `gs://${BUCKET}/${PREFIX}/${pattern}`, format: 'jsonl', label: 'y', features: ['pixels'], classes: CLASSES, shuffleWindow: 96, ...extra },
});
const input = (runId: string, train: Record<string, unknown> = spec('train/part-*.jsonl.gz')) => ({
  runId,
  model: { name: 'mlp', params: { hiddenUnits: [32], dropout: 0.2 } },
  data: { train, eval: spec('eval/part-*.jsonl.gz') },
  hyperparameters: { optimizer: 'adam', learningRate: 0.005, batchSize: 32 },
  stepsPerEpoch: STEPS_PER_EPOCH,
  maxEpochs: EPOCHS,
  seed: 3,
  checkpoint: { everySteps: EVERY, everySeconds: 0, keepLast: 100 },
  timeouts: { heartbeatSeconds: 3 },
});

describe('sharded data end to end (dev server, worker process, GCS emulator)', () => {
  const s = useShardedStack('sharded-e2e', { buckets: [BUCKET] });
  const { root, taskQueue, worker } = s;
  let baseline: TrainModelResult;
  const put = (name: string, data: Buffer | string) => s.emu.storage.bucket(BUCKET).file(`${PREFIX}/${name}`).save(data, { resumable: false });

  before(async () => {
    const rows = mnistRows(700);
    for (let k = 0; k < 6; k++) await put(`train/part-${k}.jsonl.gz`, zlib.gzipSync(jsonlOf(rows.slice(k * 100, (k + 1) * 100))));
    for (let k = 0; k < 2; k++) await put(`eval/part-${k}.jsonl.gz`, zlib.gzipSync(jsonlOf(rows.slice(600 + k * 50, 650 + k * 50))));
    await put('bad/part-0.jsonl.gz', jsonlOf(rows.slice(0, 10)));
  });

  test('a run on gs:// shards completes, learns, and pins its data', { timeout: 5 * 60_000 }, async () => {
    const w = worker();
    const runId = uniqueId('straight');
    baseline = (await s.stack.client.workflow.execute('trainModel', { taskQueue, workflowId: runId, args: [input(runId)], workflowExecutionTimeout: '5 minutes' })) as TrainModelResult;
    await w.stop();
    assert.equal(baseline.step, STEPS_PER_EPOCH * EPOCHS);
    const accuracy = baseline.history.at(-1)!.metrics.val_accuracy!;
    assert.ok(accuracy > 0.5, `val_accuracy ${accuracy} on 100 held-out digits`);
    const index = JSON.parse(fs.readFileSync(path.join(fileURLToPath(baseline.runUri), 'data-index.json'), 'utf8'));
    assert.equal(index.records, 600);
    assert.equal(index.shards.length, 6);
    // The run's fingerprint pins the same shards, each with its size and GCS generation.
    const run = JSON.parse(fs.readFileSync(path.join(fileURLToPath(baseline.runUri), 'run.json'), 'utf8'));
    const pinned = run.identity.dataset.shards as Array<{ uri: string; size: number; generation?: string }>;
    assert.deepEqual(pinned.map((s) => s.uri), index.shards.map((s: { uri: string }) => s.uri));
    assert.ok(pinned.every((s) => s.size > 0 && s.generation), JSON.stringify(pinned[0]));
  });

  test('the worker SIGKILLed mid-epoch: a new worker finishes bitwise equal to the uninterrupted run', { timeout: 5 * 60_000 }, async () => {
    const random = mulberry32(testSeed('sharded-data e2e kill'));
    const killAt = 7 + Math.floor(random() * (STEPS_PER_EPOCH * EPOCHS - 9));
    const last = checkpointBefore(killAt, EVERY);
    const runId = uniqueId('killed');
    const doomed = worker({ DT_FAULT_PAUSE_BEFORE_STEP: String(killAt) });
    const handle = await s.stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId)], workflowExecutionTimeout: '5 minutes' });
    await waitForPause(doomed, killAt, path.join(root, 'runs', runId, checkpointKey(last), MANIFEST), 120_000);
    await doomed.kill();
    worker();
    const result = (await handle.result()) as TrainModelResult;
    assert.equal(sha256(modelWeights(result)), sha256(modelWeights(baseline)), `killed before step ${killAt} (checkpoint ${last})`);
    assert.deepEqual(comparable(result.history), comparable(baseline.history));
  });

  test('bad inputs end FAILED within 10 s at the first attempt, naming the field', { timeout: 3 * 60_000 }, async () => {
    const cases: Array<{ name: string; train: Record<string, unknown>; names: RegExp }> = [
      { name: 'an empty glob', train: spec('train/nothing-*.jsonl.gz'), names: /`data\.train\.params\.uri`.*got none/ },
      { name: 'a shard that is not gzip', train: spec('bad/part-*.jsonl.gz'), names: /part-0\.jsonl\.gz.*gzip/ },
      { name: 'a label outside `classes`', train: spec('train/part-*.jsonl.gz', { classes: [0, 1, 2] }), names: /`data\.train\.params\.label`.*`data\.train\.params\.classes`/ },
      { name: 'a glob outside the allow-list', train: { ...spec('x'), params: { ...spec('x').params, uri: 'gs://not-allowed-bucket/part-*.jsonl.gz' } }, names: /data\.train\.params\.uri/ },
      { name: 'no `classes`', train: spec('train/part-*.jsonl.gz', { classes: undefined }), names: /data\.train\.params\.classes/ },
    ];
    await expectBadInputsFail(s, cases.map((c) => ({ ...c, input: (runId: string) => input(runId, c.train) })));
  });
});
