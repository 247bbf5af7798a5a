/**
 * Issue #8, end to end: trainModel on a real dev server trains the shipped trainable SavedModel
 * (test/fixtures/savedmodel/mnist-cnn, through the graph route) on MNIST to >= 95 % accuracy on the
 * full test split; a second run of the same input is SIGKILLed mid-epoch (worker and trainer, the
 * whole process group), a fresh worker process finishes it, and it ends bitwise equal to the
 * uninterrupted run: last checkpoint (weights, optimizer, state), exported model, every metric.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { checkpointKey } from '../src/checkpoints/layout';
import type { TrainModelResult } from '../src/workflows';
import { startStack, startWorkerProcess, tempDir, uniqueId, waitFor, type Stack, type WorkerProcess } from './helpers/temporal';

const MODEL_URI = pathToFileURL(path.resolve(__dirname, 'fixtures/savedmodel/mnist-cnn')).href;
const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const checkpointDir = (runDir: string, step: number): string => path.join(runDir, checkpointKey(step));
const hasManifest = (runDir: string, step: number): boolean => fs.existsSync(path.join(checkpointDir(runDir, step), 'manifest.json'));

function checkpointHashes(runDir: string, step: number): Record<string, unknown> {
  const dir = checkpointDir(runDir, step);
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
  delete state.config.runId;
  return { 'weights.bin': sha(path.join(dir, 'weights.bin')), 'optimizer.bin': sha(path.join(dir, 'optimizer.bin')), 'state.json': state };
}

describe('trainable SavedModel, end to end (dev server, worker processes, SIGKILL)', () => {
  let stack: Stack;
  const root = tempDir('dt-savedmodel-e2e-');
  const rootUri = pathToFileURL(root).href;
  const workers: WorkerProcess[] = [];
  let baseline: { result: TrainModelResult; last: Record<string, unknown>; model: string; seconds: number };

  // 8,500 training digits, batch 64: an epoch of 133 steps is one pass over the data.
  const STEPS_PER_EPOCH = 133;
  const EPOCHS = 5;
  const LAST = STEPS_PER_EPOCH * EPOCHS;
  const PAUSE_AT = 2 * STEPS_PER_EPOCH + 60; // step 326, mid-epoch 3: between checkpoints 300 and 350
  const input = (runId: string) => ({
    runId,
    model: { kind: 'savedmodel', uri: MODEL_URI },
    data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test' } },
    hyperparameters: { learningRate: 0.002, batchSize: 64 },
    stepsPerEpoch: STEPS_PER_EPOCH,
    maxEpochs: EPOCHS,
    seed: 3,
    checkpoint: { everySteps: 50, everySeconds: 0, keepLast: 30 },
    timeouts: { heartbeatSeconds: 3 },
  });
  const worker = (taskQueue: string, extra: Record<string, string> = {}): WorkerProcess => {
    const w = startWorkerProcess({ TEMPORAL_ADDRESS: stack.address, DT_TASK_QUEUE: taskQueue, DT_CHECKPOINT_URI: rootUri, DT_BACKEND: 'tensorflow', ...extra });
    workers.push(w);
    return w;
  };
  const modelHash = (result: TrainModelResult): string => sha(path.join(path.dirname(fileURLToPath(result.modelUri)), 'weights.bin'));

  before(async () => {
    stack = await startStack();
    const runId = uniqueId('sm-straight');
    const taskQueue = uniqueId('tq');
    const w = worker(taskQueue);
    const started = Date.now();
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId)] });
    const result = (await handle.result()) as TrainModelResult;
    const seconds = (Date.now() - started) / 1000;
    await w.stop();
    baseline = { result, last: checkpointHashes(path.join(root, runId), LAST), model: modelHash(result), seconds };
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await stack?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('trains the shipped SavedModel to >= 95 % accuracy on the full MNIST test split', (t) => {
    const { result, seconds } = baseline;
    t.diagnostic(`uninterrupted run: ${seconds.toFixed(1)} s, val_accuracy by epoch ${result.history.map((h) => h.metrics.val_accuracy!.toFixed(4)).join(' ')}`);
    assert.equal(result.status, 'completed');
    assert.equal(result.step, LAST);
    assert.match(result.backend, /^tensorflow/);
    const last = result.history[result.history.length - 1]!;
    assert.ok(last.metrics.val_accuracy! >= 0.95, `val_accuracy ${last.metrics.val_accuracy} after ${EPOCHS} epochs`);
    assert.ok(seconds < 120, `took ${seconds} s`);
    // The exported model is the state bytes and their description (model.json).
    const modelJson = JSON.parse(fs.readFileSync(fileURLToPath(result.modelUri), 'utf8'));
    assert.equal(modelJson.format, 'durable-train/savedmodel-weights@1');
    assert.equal(modelJson.savedModel, MODEL_URI);
  });

  test('a bad SavedModel fails the run at the start, non-retryable, naming the missing endpoint', async () => {
    const runId = uniqueId('sm-bad');
    const taskQueue = uniqueId('tq');
    const w = worker(taskQueue);
    const tiny = { name: 'synthetic', params: { features: 4, classes: 3, size: 64 } };
    const bad = {
      ...input(runId),
      model: { kind: 'savedmodel', uri: pathToFileURL(path.resolve(__dirname, 'fixtures/savedmodel/broken-no-eval-step')).href },
      data: { train: tiny, eval: tiny },
    };
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [bad] });
    await assert.rejects(handle.result(), (err: Error & { cause?: Error & { cause?: Error } }) => {
      const messages = [err.message, err.cause?.message, err.cause?.cause?.message].join(' | ');
      assert.match(messages, /has no `eval_step` endpoint/);
      return true;
    });
    await w.stop();
    const history = await handle.fetchHistory();
    const attempts = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
    assert.deepEqual(attempts, [1], 'one attempt: not retried');
    assert.ok(!fs.existsSync(path.join(root, runId, 'checkpoints')), 'nothing was trained');
  });

  test('killed mid-epoch (SIGKILL of the worker process group), resumed: bitwise equal to the uninterrupted run', async () => {
    const runId = uniqueId('sm-killed');
    const runDir = path.join(root, runId);
    const taskQueue = uniqueId('tq');
    const first = worker(taskQueue, { DT_FAULT_PAUSE_BEFORE_STEP: String(PAUSE_AT) });
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId)] });
    await waitFor(
      async () => first.output().includes(`fault injection: paused before step ${PAUSE_AT}`) && hasManifest(runDir, 300),
      90_000,
      `the trainer to pause before step ${PAUSE_AT}`,
    );
    const pending = (await handle.describe()).raw.pendingActivities ?? [];
    assert.equal(pending.length, 1);
    assert.equal(pending[0]!.activityType?.name, 'trainEpoch');
    await first.kill();
    assert.ok(hasManifest(runDir, 300));
    assert.ok(!fs.existsSync(checkpointDir(runDir, 350)), 'no checkpoint 350 before the kill');

    const second = worker(taskQueue);
    const result = (await handle.result()) as TrainModelResult;
    await second.stop();
    const history = await handle.fetchHistory();
    const attempts = (history.events ?? [])
      .filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
    assert.ok(attempts.some((a) => a > 1), `the killed activity was retried (attempts ${attempts.join(',')})`);
    assert.equal(result.step, LAST);
    assert.deepEqual(checkpointHashes(runDir, LAST), baseline.last, 'last checkpoint (weights, optimizer, state)');
    assert.equal(modelHash(result), baseline.model, 'final model weights.bin');
    assert.deepEqual(
      result.history.map((h) => h.metrics),
      baseline.result.history.map((h) => h.metrics),
      'every epoch metric',
    );
  });
});
