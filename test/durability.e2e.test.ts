/**
 * Durability end to end: a worker process SIGKILLed (with its trainer) inside the early-stopping
 * patience window, and the dev server itself stopped and restarted mid-run. Each run must end
 * exactly as an uninterrupted run with the same config does: the same stop epoch, the same metrics
 * bit for bit and the same exported weights (training is deterministic on the CPU backends).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseTrainConfig } from '../src/config/train-config';
import { initialEarlyStopping, stepEarlyStopping } from '../src/workflows/callbacks';
import { progressQuery, type TrainModelResult } from '../src/workflows';
import { resultThroughOutages, workerEnv, workerProcesses } from './helpers/restart';
import { startStack, tempCheckpointRoot, uniqueId, waitFor, type Stack } from './helpers/temporal';
import { comparable, modelWeights, sha256, tinyInput } from './e2e-support';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PATIENCE = 4;
const STEPS = 100;
const INPUT = tinyInput({
  stepsPerEpoch: STEPS,
  maxEpochs: 40,
  hyperparameters: { learningRate: 0.002 }, // val_loss bottoms out at epoch 7, then rises: stops at 11
  earlyStopping: { patience: PATIENCE, restoreBestWeights: true },
  timeouts: { heartbeatSeconds: 3 },
});

describe('durability', () => {
  let stack: Stack;
  let reference: TrainModelResult;
  const taskQueue = uniqueId('tq-durable');
  const workers = workerProcesses(() => workerEnv(stack.address, taskQueue, tempCheckpointRoot()));

  before(async () => {
    stack = await startStack({ own: true });
    workers.start();
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: uniqueId('reference'), args: [INPUT] });
    reference = (await handle.result()) as TrainModelResult;
    assert.equal(reference.status, 'early-stopped');
    // The reference itself stops where Keras would.
    const cfg = parseTrainConfig(INPUT).earlyStopping!;
    let state = initialEarlyStopping();
    let stop: number | null = null;
    for (const h of reference.history) {
      const s = stepEarlyStopping(cfg, state, h.epoch, h.metrics);
      state = s.state;
      if (s.stop) stop ??= h.epoch;
    }
    assert.equal(reference.epochs, stop);
    assert.ok(reference.epochs > PATIENCE + 1, `the reference should stop after a few epochs, at ${reference.epochs}`);
  });
  after(async () => {
    await workers.stopAll();
    await stack?.close();
  });

  function assertSameAsReference(result: TrainModelResult): void {
    assert.equal(result.status, 'early-stopped');
    assert.equal(result.epochs, reference.epochs);
    assert.equal(result.step, reference.step);
    assert.deepEqual(comparable(result.history), comparable(reference.history), 'the same metrics, bit for bit');
    assert.deepEqual(result.best, reference.best);
    assert.equal(result.modelStep, reference.modelStep);
    assert.equal(sha256(modelWeights(result)), sha256(modelWeights(reference)), 'the same exported weights');
  }

  test('a worker SIGKILLed inside the patience window: the run resumes on a new worker and stops at the same epoch', async (t) => {
    const windowStart = reference.epochs - PATIENCE + 1; // first epoch without improvement
    // Epochs take well under a second here: to kill the worker in the middle of a training
    // activity (not between two), its trainer holds before a step half-way through the epoch
    // after windowStart, and the worker is killed while it holds.
    await workers.started[workers.started.length - 1]!.stop();
    const holdStep = windowStart * STEPS + STEPS / 2;
    const held = workers.start({ DT_FAULT_PAUSE_BEFORE_STEP: String(holdStep) });
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: uniqueId('killed'), args: [INPUT] });
    const seen = await waitFor(async () => {
      const p = await handle.query(progressQuery);
      return p.epoch >= windowStart ? p : undefined;
    }, 120_000, `epoch ${windowStart}`);
    await waitFor(async () => held.output().includes(`paused before step ${holdStep}`) || undefined, 60_000, `the trainer to hold before step ${holdStep}`);
    assert.equal(seen.epoch, windowStart);
    assert.ok(seen.epoch < reference.epochs, `killed inside the window (epoch ${seen.epoch} of ${reference.epochs})`);
    await held.kill();
    t.diagnostic(`SIGKILLed the worker at step ${holdStep} (epoch ${windowStart + 1}); the reference stopped at ${reference.epochs}`);
    await sleep(1000);
    workers.start();
    const result = await resultThroughOutages<TrainModelResult>(handle, 150_000);
    assertSameAsReference(result);
    // The work really was interrupted: an activity was retried on the new worker.
    const events = (await handle.fetchHistory()).events ?? [];
    const retried = events.filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1).length;
    t.diagnostic(`activities retried after the kill: ${retried}`);
    assert.ok(retried >= 1, 'an activity attempt was lost with the killed worker and retried');
  });

  test('the dev server stopped and restarted mid-run: the run completes, the same as the reference', async (t) => {
    const server = stack.server!;
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: uniqueId('server-restart'), args: [INPUT] });
    const seen = await waitFor(async () => {
      const p = await handle.query(progressQuery);
      return p.epoch >= 2 ? p : undefined;
    }, 120_000, 'epoch 2');
    assert.ok(seen.epoch < reference.epochs, 'the server goes down mid-run');
    const stoppedAt = Date.now();
    await server.stop();
    await sleep(3000);
    await server.restart();
    t.diagnostic(`the server was down for ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s`);
    const result = await resultThroughOutages<TrainModelResult>(handle, 150_000);
    assertSameAsReference(result);
  });
});
