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
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { encodeDigit, mnistDigits, tarOf, writeImageFolder, writeImageTarShards } from '../scripts/make-image-shards';
import { checkpointKey, MANIFEST } from '../src/checkpoints/layout';
import type { TrainModelResult } from '../src/workflows';
import { comparable, modelWeights, sha256 } from './e2e-support';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { mulberry32, testSeed } from './helpers/seed';
import { startStack, startWorkerProcess, tempDir, uniqueId, type Stack, type WorkerProcess } from './helpers/temporal';

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

function messages(err: unknown): string {
  const out: string[] = [];
  for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) out.push(e.message ?? String(e));
  return out.join(' <- ');
}

describe('image shards end to end (dev server, worker process, GCS emulator, file://)', () => {
  let emu: GcsEmulator;
  let stack: Stack;
  const workers: WorkerProcess[] = [];
  const root = tempDir('dt-images-e2e-');
  const runsUri = pathToFileURL(path.join(root, 'runs')).href;
  const dataDir = path.join(root, 'data');
  const gs = `gs://${BUCKET}/${PREFIX}`;
  const file = pathToFileURL(dataDir).href;
  const taskQueue = uniqueId('tq-images');
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
  const worker = (extra: Record<string, string> = {}): WorkerProcess => {
    const w = startWorkerProcess({ TEMPORAL_ADDRESS: stack.address, DT_TASK_QUEUE: taskQueue, DT_CHECKPOINT_URI: runsUri, STORAGE_EMULATOR_HOST: emu.endpoint, ...extra });
    workers.push(w);
    return w;
  };

  before(async () => {
    emu = await startGcsEmulator({ buckets: [BUCKET] });
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
        await emu.storage.bucket(BUCKET).file(`${PREFIX}/${dir}/${name}`).save(fs.readFileSync(path.join(dataDir, dir, name)), { resumable: false });
      }
    }
    stack = await startStack();
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await stack?.close();
    await emu?.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('a run on gs:// PNG tar shards completes and learns; the same shards on file:// give the same weights', { timeout: 6 * 60_000 }, async () => {
    const w = worker();
    const runId = uniqueId('gs');
    baseline = (await stack.client.workflow.execute('trainModel', { taskQueue, workflowId: runId, args: [input(runId, gs)], workflowExecutionTimeout: '5 minutes' })) as TrainModelResult;
    assert.equal(baseline.step, STEPS_PER_EPOCH * EPOCHS);
    const accuracy = baseline.history.at(-1)!.metrics.val_accuracy!;
    assert.ok(accuracy > 0.5, `val_accuracy ${accuracy} on 100 held-out digits`);
    const index = JSON.parse(fs.readFileSync(path.join(fileURLToPath(baseline.runUri), 'data-index.json'), 'utf8'));
    assert.equal(index.records, 600);
    assert.deepEqual(index.layout, { widths: [784], yWidth: 10 });

    const localId = uniqueId('file');
    const local = (await stack.client.workflow.execute('trainModel', { taskQueue, workflowId: localId, args: [input(localId, file)], workflowExecutionTimeout: '5 minutes' })) as TrainModelResult;
    await w.stop();
    assert.equal(sha256(modelWeights(local)), sha256(modelWeights(baseline)), 'file:// and gs:// shards of the same bytes');
    assert.deepEqual(comparable(local.history), comparable(baseline.history));
  });

  test('the worker SIGKILLed mid-epoch: a new worker finishes bitwise equal to the uninterrupted run', { timeout: 6 * 60_000 }, async () => {
    assert.ok(baseline, 'needs the uninterrupted run of the first test');
    const random = mulberry32(testSeed('image-shards e2e kill'));
    const killAt = 7 + Math.floor(random() * (STEPS_PER_EPOCH * EPOCHS - 9));
    const last = Math.floor((killAt - 1) / EVERY) * EVERY;
    const runId = uniqueId('killed');
    const doomed = worker({ DT_FAULT_PAUSE_BEFORE_STEP: String(killAt) });
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId, gs)], workflowExecutionTimeout: '5 minutes' });
    const manifest = path.join(root, 'runs', runId, checkpointKey(last), MANIFEST);
    for (let waited = 0; !fs.existsSync(manifest) || !doomed.output().includes(`paused before step ${killAt}`); waited += 100) {
      assert.ok(waited < 180_000, `never paused before step ${killAt} with checkpoint ${last} committed: ${doomed.output().slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
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
    const result = (await stack.client.workflow.execute('trainModel', {
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
    const problems: string[] = [];
    for (const c of cases) {
      const runId = uniqueId('bad');
      const started = Date.now();
      const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId, gs, c.train)], workflowExecutionTimeout: '2 minutes' });
      const err = await handle.result().then(() => undefined, (e: unknown) => e);
      const seconds = (Date.now() - started) / 1000;
      const events = (await handle.fetchHistory()).events ?? [];
      const attempts = Math.max(1, ...events.map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 1));
      const message = err instanceof WorkflowFailedError ? messages(err.cause) : String(err);
      console.log(`| ${c.name} | ${err instanceof WorkflowFailedError ? 'FAILED' : 'not failed'} | ${seconds.toFixed(1)} s | ${attempts} | ${message.slice(0, 240)} |`);
      if (!(err instanceof WorkflowFailedError)) problems.push(`${c.name}: ${String(err)}`);
      if (seconds > 10) problems.push(`${c.name}: ${seconds.toFixed(1)} s`);
      if (attempts > 1) problems.push(`${c.name}: ${attempts} attempts`);
      if (!c.names.test(message)) problems.push(`${c.name}: the message does not match ${c.names}: ${message.slice(0, 400)}`);
    }
    assert.deepEqual(problems, []);
  });
});
