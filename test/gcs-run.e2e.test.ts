/**
 * trainModel end to end with checkpoints in GCS: a real dev server, real worker processes
 * (src/worker.ts, configured by environment like a user's), and the real fake-gcs-server with
 * its filesystem backend, reached through STORAGE_EMULATOR_HOST.
 *
 *   node --import tsx --test --test-reporter=spec test/gcs-run.e2e.test.ts
 *
 * A. A clean gs:// run completes and leaves the model, metrics.jsonl, learning-curve.svg and
 *    manifested checkpoints in the bucket.
 * B. The emulator goes away for ~20 s mid-run (after the first epoch's checkpoint) and comes back
 *    on the same port: the run completes, every epoch has its metrics record, and the final
 *    weights are bitwise equal to the same config trained on file://.
 * C. A bucket that does not exist fails the workflow quickly with a non-retryable error naming
 *    the gs:// URI.
 *
 * Sizing (2 cores, tfjs-node): one epoch of 200 steps of a 784-256-128-10 MLP at batch 64, with a
 * checkpoint every 10 steps, takes ~4.5-5.5 s end to end on gs:// (measured). 5 epochs: the
 * outage starts 50 steps into epoch 2, with 750 steps (~15 s of training, 75 checkpoint writes)
 * still to go, so the run cannot finish inside it; 11 epochs (before) only made the runs longer
 * (the file took 202 s beside two others in npm test).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  LATEST_KEY,
  LEARNING_CURVE_SVG,
  MANIFEST,
  METRICS_JSONL,
  METRICS_PREFIX,
  MODEL_JSON,
  OPTIMIZER_BIN,
  STATE_JSON,
  checkpointObjectKey,
  epochRecordKey,
  modelJsonKey,
  weightsKey,
  WEIGHTS_BIN,
} from '../src/checkpoints/layout';
import { progressQuery, type TrainModelResult } from '../src/workflows';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import {
  mnistInput,
  startStack,
  startWorkerProcess,
  tempCheckpointRoot,
  uniqueId,
  waitFor,
  type Stack,
  type WorkerProcess,
} from './helpers/temporal';

const BUCKET = 'dt-e2e';
const STEPS_PER_EPOCH = 200;
const MAX_EPOCHS = 5;
const OUTAGE_MS = 20_000;

function runInput(uri: string, runId: string): Record<string, unknown> {
  return mnistInput({
    runId,
    model: { name: 'mlp', params: { hiddenUnits: [256, 128] } },
    hyperparameters: { optimizer: 'adam', learningRate: 0.002, batchSize: 64 },
    stepsPerEpoch: STEPS_PER_EPOCH,
    maxEpochs: MAX_EPOCHS,
    seed: 11,
    checkpoint: { uri, everySteps: 10 },
  });
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('trainModel with gs:// checkpoints (fake-gcs-server)', { timeout: 600_000 }, () => {
  let stack: Stack;
  let emu: GcsEmulator;
  const workers: WorkerProcess[] = [];
  let gsQueue: string;
  let fileQueue: string;
  let cleanRunWeightsSha: string | undefined;

  /** A worker process whose trainer (a child, inheriting the env) sees the emulator. */
  function worker(taskQueue: string): WorkerProcess {
    const w = startWorkerProcess({
      TEMPORAL_ADDRESS: stack.address,
      DT_TASK_QUEUE: taskQueue,
      DT_CHECKPOINT_URI: tempCheckpointRoot(),
      STORAGE_EMULATOR_HOST: emu.endpoint,
    });
    workers.push(w);
    return w;
  }

  const gcsObject = async (name: string): Promise<Buffer> => (await emu.storage.bucket(BUCKET).file(name).download())[0];
  const gcsList = async (prefix: string): Promise<string[]> =>
    (await emu.storage.bucket(BUCKET).getFiles({ prefix }))[0].map((f) => f.name).sort();

  /** What a finished run left in the bucket under `runs/<runId>/`. */
  async function assertRunArtifacts(result: TrainModelResult, runId: string): Promise<string> {
    const base = `runs/${runId}`;
    assert.equal(result.runUri, `gs://${BUCKET}/${base}`);
    assert.equal(result.modelUri, `gs://${BUCKET}/${base}/${modelJsonKey()}`);
    const names = await gcsList(`${base}/`);
    for (const required of [modelJsonKey(), weightsKey(), METRICS_JSONL, LEARNING_CURVE_SVG, LATEST_KEY]) {
      assert.ok(names.includes(`${base}/${required}`), `${required} should be in the bucket; have: ${names.join(', ')}`);
    }
    const modelJson = JSON.parse((await gcsObject(`${base}/${modelJsonKey()}`)).toString('utf8'));
    assert.equal(modelJson.format, 'layers-model');
    const epochs = (await gcsObject(`${base}/${METRICS_JSONL}`)).toString('utf8').trim().split('\n').map((l) => JSON.parse(l).epoch);
    assert.deepEqual(epochs, Array.from({ length: MAX_EPOCHS }, (_, i) => i + 1));
    assert.match((await gcsObject(`${base}/${LEARNING_CURVE_SVG}`)).toString('utf8'), /<svg[\s\S]*val_loss/);

    // Checkpoints: retention keeps the last few; each kept one is complete and its manifest verifies.
    const manifests = names.filter((n) => /\/checkpoints\/\d{12}\/manifest\.json$/.test(n));
    assert.ok(manifests.length >= 1 && manifests.length <= 4, `kept checkpoints: ${manifests.join(', ')}`);
    const finalStep = MAX_EPOCHS * STEPS_PER_EPOCH;
    assert.ok(manifests.includes(`${base}/${checkpointObjectKey(finalStep, MANIFEST)}`), 'the final step is checkpointed');
    for (const m of manifests) {
      const manifest = JSON.parse((await gcsObject(m)).toString('utf8'));
      assert.equal(manifest.format, 'durable-train/checkpoint@1');
      assert.deepEqual(Object.keys(manifest.objects).sort(), [MODEL_JSON, OPTIMIZER_BIN, STATE_JSON, WEIGHTS_BIN].sort());
      const dir = m.slice(0, -MANIFEST.length);
      for (const [name, expected] of Object.entries(manifest.objects as Record<string, { sha256: string; bytes: number }>)) {
        const data = await gcsObject(dir + name);
        assert.equal(data.length, expected.bytes, `${dir}${name} size`);
        assert.equal(sha(data), expected.sha256, `${dir}${name} checksum`);
      }
    }
    const latest = JSON.parse((await gcsObject(`${base}/${LATEST_KEY}`)).toString('utf8'));
    assert.equal(latest.step, finalStep);

    // The exported model is the final checkpoint's.
    const weights = await gcsObject(`${base}/${weightsKey()}`);
    assert.deepEqual(weights, await gcsObject(`${base}/${checkpointObjectKey(finalStep, WEIGHTS_BIN)}`));
    return sha(weights);
  }

  before(async () => {
    stack = await startStack();
    emu = await startGcsEmulator({ buckets: [BUCKET], backend: 'filesystem' });
    gsQueue = uniqueId('gcs-e2e');
    fileQueue = uniqueId('file-e2e');
    worker(gsQueue);
    worker(fileQueue);
  });

  after(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await emu?.dispose();
    await stack?.close();
  });

  test('A: a run completes with its model, metrics, learning curve and checkpoints in the bucket', async (t) => {
    const runId = uniqueId('gcs-clean');
    const started = Date.now();
    const handle = await stack.client.workflow.start('trainModel', {
      taskQueue: gsQueue,
      workflowId: runId,
      args: [runInput(`gs://${BUCKET}/runs`, runId)],
    });
    const result = (await handle.result()) as TrainModelResult;
    t.diagnostic(`clean gs:// run: ${((Date.now() - started) / 1000).toFixed(1)} s on ${result.backend}`);
    assert.equal(result.status, 'completed');
    assert.equal(result.epochs, MAX_EPOCHS);
    assert.equal(result.step, MAX_EPOCHS * STEPS_PER_EPOCH);
    assert.ok(result.history[MAX_EPOCHS - 1]!.metrics.val_accuracy! > 0.8, 'it learned');
    cleanRunWeightsSha = await assertRunArtifacts(result, runId);
  });

  test('B: a 20 s emulator outage mid-run is survived; final weights equal a file:// run bit for bit', async (t) => {
    const runId = uniqueId('gcs-outage');
    const gsHandle: WorkflowHandle = await stack.client.workflow.start('trainModel', {
      taskQueue: gsQueue,
      workflowId: runId,
      args: [runInput(`gs://${BUCKET}/runs`, runId)],
    });
    // The same config on file://, on its own worker, concurrently (it uses the CPU the stalled run leaves idle).
    const fileRoot = tempCheckpointRoot();
    const fileHandle = await stack.client.workflow.start('trainModel', {
      taskQueue: fileQueue,
      workflowId: uniqueId('file-ref'),
      args: [runInput(fileRoot, runId)],
    });

    // Stop it once the first epoch's checkpoint exists and the trainer is well into epoch 2, saving
    // every 10 steps: the outage then cuts the trainer's own checkpoint writes, not only the worker's.
    const latestStep = async (): Promise<number> =>
      JSON.parse((await gcsObject(`runs/${runId}/${LATEST_KEY}`)).toString('utf8')).step as number;
    await waitFor(async () => (await latestStep()) >= STEPS_PER_EPOCH + 50, 120_000, 'a checkpoint 50 steps into epoch 2');
    assert.ok((await emu.storage.bucket(BUCKET).file(`runs/${runId}/${checkpointObjectKey(STEPS_PER_EPOCH, MANIFEST)}`).exists())[0]);
    const stepAtStop = await latestStep();
    assert.equal((await gsHandle.describe()).status.name, 'RUNNING', 'the outage must fall inside the run');

    await emu.stop();
    const stoppedAt = Date.now();
    await sleep(OUTAGE_MS);
    const during = await gsHandle.query(progressQuery);
    assert.equal((await gsHandle.describe()).status.name, 'RUNNING', 'the run is still going (not failed) after the outage');
    await emu.restart();
    const stepAtRestart = await latestStep();
    t.diagnostic(
      `emulator down ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s; newest checkpoint step ${stepAtStop} at stop, ${stepAtRestart} right after restart; workflow at epoch ${during.epoch}`,
    );
    assert.ok(during.epoch < MAX_EPOCHS, 'the run could not have finished without the store');

    const [gsResult, fileResult] = (await Promise.all([gsHandle.result(), fileHandle.result()])) as [TrainModelResult, TrainModelResult];
    assert.equal(gsResult.status, 'completed');
    assert.equal(gsResult.epochs, MAX_EPOCHS);
    assert.equal(fileResult.status, 'completed');

    // Every epoch has its record, in the bucket and in the result.
    const records = await gcsList(`runs/${runId}/${METRICS_PREFIX}`);
    assert.deepEqual(
      records,
      Array.from({ length: MAX_EPOCHS }, (_, i) => `runs/${runId}/${epochRecordKey(i + 1)}`),
    );
    assert.deepEqual(gsResult.history.map((h) => h.epoch), Array.from({ length: MAX_EPOCHS }, (_, i) => i + 1));
    const gsSha = await assertRunArtifacts(gsResult, runId);
    const attempts = ((await gsHandle.fetchHistory()).events ?? [])
      .map((e) => e.activityTaskStartedEventAttributes?.attempt)
      .filter((a): a is number => typeof a === 'number');
    t.diagnostic(`activity attempts: ${attempts.length} started, highest attempt ${Math.max(...attempts)} (1 = the store's own retries sufficed)`);

    // Same seed, same config: the same weights, byte for byte, whatever the store and the outage.
    const fileWeights = fs.readFileSync(fileURLToPath(fileResult.modelUri.replace(/model\.json$/, 'weights.bin')));
    assert.equal(gsSha, sha(fileWeights), 'gs:// (with outage) and file:// final weights differ');
    assert.deepEqual(gsResult.history.map((h) => h.metrics), fileResult.history.map((h) => h.metrics));
    if (cleanRunWeightsSha !== undefined) assert.equal(cleanRunWeightsSha, gsSha, 'the clean gs:// run has the same weights too');
  });

  test('C: a bucket that does not exist fails the workflow at once, non-retryable, naming the gs:// URI', async () => {
    const runId = uniqueId('no-bucket');
    const started = Date.now();
    const handle = await stack.client.workflow.start('trainModel', {
      taskQueue: gsQueue,
      workflowId: runId,
      args: [mnistInput({ runId, checkpoint: { uri: 'gs://no-such-bucket/x' } })],
    });
    const err = await handle.result().then(
      () => assert.fail('the workflow should have failed'),
      (e: unknown) => e,
    );
    const seconds = (Date.now() - started) / 1000;
    assert.ok(err instanceof WorkflowFailedError, String(err));
    // The activity failure carries the ApplicationFailure the activity threw.
    const cause = (err.cause as { cause?: unknown } | undefined)?.cause ?? err.cause;
    assert.ok(cause instanceof ApplicationFailure, `cause: ${String(cause)}`);
    assert.equal(cause.nonRetryable, true);
    assert.match(cause.message, /gs:\/\/no-such-bucket\/x\//);
    assert.match(cause.message, /does not exist/);
    assert.ok(seconds < 30, `failed after ${seconds.toFixed(1)} s: it should not be retried`);
    // One attempt: the activity was not retried.
    const history = await handle.fetchHistory();
    const started_ = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes);
    assert.equal(started_.length, 1, 'exactly one activity attempt');
    assert.equal(started_[0]!.activityTaskStartedEventAttributes!.attempt, 1);
  });
});
