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
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { checkpointKey, MANIFEST } from '../src/checkpoints/layout';
import type { TrainModelResult } from '../src/workflows';
import { comparable, modelWeights, sha256 } from './e2e-support';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { jsonlOf, mnistRows } from './helpers/mnist-shards';
import { mulberry32, testSeed } from './helpers/seed';
import { startStack, startWorkerProcess, tempDir, uniqueId, type Stack, type WorkerProcess } from './helpers/temporal';
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

function messages(err: unknown): string {
  const out: string[] = [];
  for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) out.push(e.message ?? String(e));
  return out.join(' <- ');
}

describe('sharded data end to end (dev server, worker process, GCS emulator)', () => {
  let emu: GcsEmulator;
  let stack: Stack;
  const workers: WorkerProcess[] = [];
  const root = tempDir('dt-sharded-e2e-');
  const rootUri = pathToFileURL(root).href;
  const taskQueue = uniqueId('tq-sharded');
  let baseline: TrainModelResult;
  const worker = (extra: Record<string, string> = {}): WorkerProcess => {
    const w = startWorkerProcess({ TEMPORAL_ADDRESS: stack.address, DT_TASK_QUEUE: taskQueue, DT_CHECKPOINT_URI: rootUri, STORAGE_EMULATOR_HOST: emu.endpoint, ...extra });
    workers.push(w);
    return w;
  };
  const put = (name: string, data: Buffer | string) => emu.storage.bucket(BUCKET).file(`${PREFIX}/${name}`).save(data, { resumable: false });

  before(async () => {
    emu = await startGcsEmulator({ buckets: [BUCKET] });
    const rows = mnistRows(700);
    for (let k = 0; k < 6; k++) await put(`train/part-${k}.jsonl.gz`, zlib.gzipSync(jsonlOf(rows.slice(k * 100, (k + 1) * 100))));
    for (let k = 0; k < 2; k++) await put(`eval/part-${k}.jsonl.gz`, zlib.gzipSync(jsonlOf(rows.slice(600 + k * 50, 650 + k * 50))));
    await put('bad/part-0.jsonl.gz', jsonlOf(rows.slice(0, 10)));
    stack = await startStack();
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await stack?.close();
    await emu?.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('a run on gs:// shards completes, learns, and pins its data', { timeout: 5 * 60_000 }, async () => {
    const w = worker();
    const runId = uniqueId('straight');
    baseline = (await stack.client.workflow.execute('trainModel', { taskQueue, workflowId: runId, args: [input(runId)], workflowExecutionTimeout: '5 minutes' })) as TrainModelResult;
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
    const last = Math.floor((killAt - 1) / EVERY) * EVERY;
    const runId = uniqueId('killed');
    const doomed = worker({ DT_FAULT_PAUSE_BEFORE_STEP: String(killAt) });
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId)], workflowExecutionTimeout: '5 minutes' });
    const manifest = path.join(root, runId, checkpointKey(last), MANIFEST);
    for (let waited = 0; !fs.existsSync(manifest) || !doomed.output().includes(`paused before step ${killAt}`); waited += 100) {
      assert.ok(waited < 120_000, `never paused before step ${killAt} with checkpoint ${last} committed: ${doomed.output().slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
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
    const problems: string[] = [];
    for (const c of cases) {
      const runId = uniqueId('bad');
      const started = Date.now();
      const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId, c.train)], workflowExecutionTimeout: '2 minutes' });
      const err = await handle.result().then(() => undefined, (e: unknown) => e);
      const seconds = (Date.now() - started) / 1000;
      const events = (await handle.fetchHistory()).events ?? [];
      const attempts = Math.max(1, ...events.map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 1));
      const message = err instanceof WorkflowFailedError ? messages(err.cause) : String(err);
      console.log(`| ${c.name} | ${err instanceof WorkflowFailedError ? 'FAILED' : 'not failed'} | ${seconds.toFixed(1)} s | ${attempts} | ${message.slice(0, 200)} |`);
      if (!(err instanceof WorkflowFailedError)) problems.push(`${c.name}: ${String(err)}`);
      if (seconds > 10) problems.push(`${c.name}: ${seconds.toFixed(1)} s`);
      if (attempts > 1) problems.push(`${c.name}: ${attempts} attempts`);
      if (!c.names.test(message)) problems.push(`${c.name}: the message does not match ${c.names}: ${message.slice(0, 300)}`);
    }
    assert.deepEqual(problems, []);
  });
});
