/**
 * Image shards end to end: trainModel on a real dev server with a worker process (and its trainer),
 * the mnist digits as PNG WebDataset tar shards written by scripts/make-image-shards.ts, decoded by
 * sharp in the trainer, from the GCS emulator and from file://.
 *
 *   - a run on gs:// tar shards completes and learns; the same shards on file:// train to the same
 *     weights, bit for bit (the same bytes, the same order);
 *   - the worker (and its trainer) SIGKILLed mid-epoch at a moment drawn from a printed seed: a new
 *     worker finishes bitwise equal to the uninterrupted run;
 *   - an image folder in the bucket trains, each image one shard pinned to its generation;
 *   - bad image data ends FAILED within 10 s at the first attempt, naming the shard and the field: an
 *     image that does not decode, a class outside `classes`, a tar member without its class.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { before, describe, test } from 'node:test';
import { encodeDigit, mnistDigits, tarOf, writeImageFolder, writeImageTarShards } from '../scripts/make-image-shards';
import { checkpointKey, MANIFEST } from '../src/checkpoints/layout';
import type { TrainModelResult } from '../src/workflows';
import { comparable, modelWeights, sha256 } from './e2e-support';
import { mulberry32, testSeed } from './helpers/seed';
import { checkpointBefore, expectBadInputsFail, useShardedStack, waitForPause } from './helpers/sharded-stack';
import { uniqueId, type WorkerProcess } from './helpers/temporal';

const BUCKET = 'dt-e2e';
const PREFIX = uniqueId('images');
const CLASSES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const STEPS_PER_EPOCH = 10;
const EPOCHS = 4;
const EVERY = 5;
const IMAGE = { height: 28, width: 28, channels: 1 };

const spec = (base: string, pattern: string, extra: Record<string, unknown> = {}) => ({
  name: 'sharded',
  params: { uri: `${base}/${pattern}`, format: 'tar', classes: CLASSES, image: IMAGE, shuffleWindow: 96, ...extra },
});

describe('image shards end to end (dev server, worker process, GCS emulator, file://)', () => {
  const s = useShardedStack('images-e2e', { buckets: [BUCKET] });
  const { root, taskQueue, worker } = s;
  const dataDir = path.join(root, 'data');
  const gs = `gs://${BUCKET}/${PREFIX}`;
  const file = pathToFileURL(dataDir).href;
  let baseline: TrainModelResult;
  /** The worker the kill test leaves running (its trainer warm), which the bad-input test times. */
  let live: WorkerProcess | undefined;
  const input = (runId: string, base: string, train: Record<string, unknown> = spec(base, 'train/shard-*.tar')) => ({
    runId,
    model: { name: 'mlp', params: { hiddenUnits: [32], dropout: 0.2 } },
    data: { train, eval: spec(base, 'eval/shard-*.tar') },
    hyperparameters: { optimizer: 'adam', learningRate: 0.005, batchSize: 32 },
    stepsPerEpoch: STEPS_PER_EPOCH,
    maxEpochs: EPOCHS,
    seed: 5,
    checkpoint: { everySteps: EVERY, everySeconds: 0, keepLast: 100 },
    timeouts: { heartbeatSeconds: 3 },
  });

  before(async () => {
    // 600 training digits in 6 PNG tar shards, 100 held-out digits in one; the same files on file:// and in the bucket.
    await writeImageTarShards(path.join(dataDir, 'train'), { count: 600, perShard: 100 });
    await writeImageTarShards(path.join(dataDir, 'eval'), { count: 100, from: 600, perShard: 100 });
    const png = await encodeDigit(mnistDigits(1)[0]!);
    fs.mkdirSync(path.join(dataDir, 'bad'));
    fs.writeFileSync(path.join(dataDir, 'bad/undecodable-0.tar'), await tarOf([['a.png', png], ['a.cls', Buffer.from('0')], ['b.png', Buffer.from('\x89PNG\r\n\x1a\n but not really')], ['b.cls', Buffer.from('1')]]));
    fs.writeFileSync(path.join(dataDir, 'bad/no-class-0.tar'), await tarOf([['a.png', png], ['a.cls', Buffer.from('0')], ['b.png', png], ['b.txt', Buffer.from('1')]]));
    await writeImageFolder(path.join(dataDir, 'folder'), { count: 200 });
    fs.writeFileSync(path.join(dataDir, 'folder/README.txt'), 'not an image: skipped');
    for (const dir of ['train', 'eval', 'bad', 'folder']) {
      for (const name of fs.readdirSync(path.join(dataDir, dir), { recursive: true, encoding: 'utf8' })) {
        if (fs.statSync(path.join(dataDir, dir, name)).isDirectory()) continue;
        await s.emu.storage.bucket(BUCKET).file(`${PREFIX}/${dir}/${name}`).save(fs.readFileSync(path.join(dataDir, dir, name)), { resumable: false });
      }
    }
  });

  test('a run on gs:// PNG tar shards completes and learns; the same shards on file:// give the same weights', { timeout: 6 * 60_000 }, async () => {
    const w = worker();
    const runId = uniqueId('gs');
    baseline = (await s.stack.client.workflow.execute('trainModel', { taskQueue, workflowId: runId, args: [input(runId, gs)], workflowExecutionTimeout: '5 minutes' })) as TrainModelResult;
    assert.equal(baseline.step, STEPS_PER_EPOCH * EPOCHS);
    const accuracy = baseline.history.at(-1)!.metrics.val_accuracy!;
    assert.ok(accuracy > 0.5, `val_accuracy ${accuracy} on 100 held-out digits`);
    const index = JSON.parse(fs.readFileSync(path.join(fileURLToPath(baseline.runUri), 'data-index.json'), 'utf8'));
    assert.equal(index.records, 600);
    assert.deepEqual(index.layout, { widths: [784], yWidth: 10 });

    const localId = uniqueId('file');
    const local = (await s.stack.client.workflow.execute('trainModel', { taskQueue, workflowId: localId, args: [input(localId, file)], workflowExecutionTimeout: '5 minutes' })) as TrainModelResult;
    await w.stop();
    assert.equal(sha256(modelWeights(local)), sha256(modelWeights(baseline)), 'file:// and gs:// shards of the same bytes');
    assert.deepEqual(comparable(local.history), comparable(baseline.history));
  });

  test('the worker SIGKILLed mid-epoch: a new worker finishes bitwise equal to the uninterrupted run', { timeout: 6 * 60_000 }, async () => {
    assert.ok(baseline, 'needs the uninterrupted run of the first test');
    const random = mulberry32(testSeed('image-shards e2e kill'));
    const killAt = 7 + Math.floor(random() * (STEPS_PER_EPOCH * EPOCHS - 9));
    const last = checkpointBefore(killAt, EVERY);
    const runId = uniqueId('killed');
    const doomed = worker({ DT_FAULT_PAUSE_BEFORE_STEP: String(killAt) });
    const handle = await s.stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId, gs)], workflowExecutionTimeout: '5 minutes' });
    await waitForPause(doomed, killAt, path.join(root, 'runs', runId, checkpointKey(last), MANIFEST), 180_000);
    await doomed.kill();
    live = worker();
    const result = (await handle.result()) as TrainModelResult;
    assert.equal(sha256(modelWeights(result)), sha256(modelWeights(baseline)), `killed before step ${killAt} (checkpoint ${last})`);
    assert.deepEqual(comparable(result.history), comparable(baseline.history));
  });

  test('an image folder in the bucket: each image a shard, its class its folder', { timeout: 4 * 60_000 }, async () => {
    live ??= worker();
    const runId = uniqueId('folder');
    const folder = { name: 'sharded', params: { uri: `${gs}/folder`, format: 'imagefolder', classes: CLASSES, image: IMAGE } };
    const result = (await s.stack.client.workflow.execute('trainModel', {
      taskQueue,
      workflowId: runId,
      args: [{ ...input(runId, gs, folder), maxEpochs: 1 }],
      workflowExecutionTimeout: '3 minutes',
    })) as TrainModelResult;
    assert.equal(result.step, STEPS_PER_EPOCH);
    const index = JSON.parse(fs.readFileSync(path.join(fileURLToPath(result.runUri), 'data-index.json'), 'utf8'));
    assert.equal(index.records, 200);
    assert.equal(index.shards.length, 200);
    assert.match(index.shards[0].uri, new RegExp(`^${gs}/folder/0/000000\\.png$`));
    assert.ok(index.shards.every((s: { records: number; generation?: string }) => s.records === 1 && s.generation), 'one record per image, pinned to its generation');
  });

  test('bad image data ends FAILED within 10 s at the first attempt, naming the shard and the field', { timeout: 3 * 60_000 }, async () => {
    live ??= worker();
    const cases: Array<{ name: string; train: Record<string, unknown>; names: RegExp }> = [
      { name: 'an image that does not decode (gs://)', train: spec(gs, 'bad/undecodable-*.tar'), names: /the image of sample `b` of shard gs:\/\/.*undecodable-0\.tar.*JPEG or PNG image that decodes/ },
      { name: 'an image that does not decode (file://)', train: spec(file, 'bad/undecodable-*.tar'), names: /the image of sample `b` of shard file:\/\/.*undecodable-0\.tar.*decodes/ },
      { name: 'a class outside `classes`', train: spec(gs, 'train/shard-*.tar', { classes: [0, 1, 2] }), names: /class of sample `\d+` of shard gs:\/\/.*shard-0000\d\.tar.*`data\.train\.params\.classes`/ },
      { name: 'a tar member without its class', train: spec(gs, 'bad/no-class-*.tar'), names: /sample `b` of shard gs:\/\/.*no-class-0\.tar.*`\.cls` member \(`data\.train\.params\.label`\)/ },
      { name: 'an image spec with a bad field', train: spec(gs, 'train/shard-*.tar', { image: { ...IMAGE, channels: 4 } }), names: /data\.train\.params\.image\.channels/ },
    ];
    await expectBadInputsFail(s, cases.map((c) => ({ ...c, input: (runId: string) => input(runId, gs, c.train) })));
  });
});
