/**
 * Controlling a trainModel run on the real dev server with scripted activities: the progress
 * query and search attributes while an epoch is in flight, pause / resume / stop at the moments
 * the README promises, and continue-as-new carrying the early-stopping and plateau state.
 * Activities wait at gates the test opens, so every moment is chosen, not raced.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { checkpointUri } from '../../src/checkpoints/layout';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes';
import { pauseSignal, progressQuery, resumeSignal, stopSignal, trainModel } from '../../src/workflows';
import { waitFor } from '../helpers/temporal';
import { eventCounts, failureOf, Harness, series, trainInput } from './harness';
import { gate, MOCK_ROOT, type Script, type TrainInput } from './mock-activities';

let h: Harness;
before(async () => {
  h = await Harness.start();
});
after(async () => {
  await h?.close();
});

/** Training to `step` waits at a gate: `reached` opens when it gets there, `release` lets it finish. */
function gatedAt(step: number, metrics: (epoch: number) => number = series([0.8, 0.6, 0.4, 0.2])) {
  const reached = gate();
  const release = gate();
  const script: Script = {
    evalMetrics: ({ epoch }) => ({ val_loss: metrics(epoch) }),
    beforeTrain: (input: TrainInput) => {
      if (input.targetStep !== step) return;
      reached.open();
      return release.wait;
    },
  };
  return { reached, release, script };
}

const trainCalls = (calls: readonly { name: string }[]) => calls.filter((c) => c.name === 'trainEpoch').length;

describe('trainModel: progress and search attributes', () => {
  test('the progress query and the search attributes describe the epoch in flight, then the outcome', async () => {
    const { reached, release, script } = gatedAt(10);
    await h.run(script, async ({ client, taskQueue, id }) => {
      const workflowId = id('progress');
      const handle = await client.workflow.start(trainModel, { taskQueue, workflowId, args: [trainInput({ maxEpochs: 3 })] });
      await reached.wait;
      const p = await handle.query(progressQuery);
      assert.equal(p.status, 'training');
      assert.equal(p.epoch, 1);
      assert.equal(p.step, 5);
      assert.equal(p.maxEpochs, 3);
      assert.equal(p.stepsPerEpoch, 5);
      assert.equal(p.totalSteps, 15);
      assert.equal(p.backend, 'mock');
      assert.equal(p.pauseRequested, false);
      assert.equal(p.latest?.metrics.val_loss, 0.8);
      assert.deepEqual(p.best, { epoch: 1, step: 5, metric: 'val_loss', value: 0.8 });
      assert.equal(p.latestCheckpointUri, checkpointUri(`${MOCK_ROOT}/${workflowId}`, 5));
      assert.equal(p.secondsPerEpoch, 0.25);
      const during = (await handle.describe()).typedSearchAttributes;
      assert.equal(during.get(SEARCH_ATTRIBUTES.status), 'training');
      assert.equal(during.get(SEARCH_ATTRIBUTES.epoch), 1);
      assert.equal(during.get(SEARCH_ATTRIBUTES.bestMetric), 0.8);
      release.open();
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      const done = (await handle.describe()).typedSearchAttributes;
      assert.equal(done.get(SEARCH_ATTRIBUTES.status), 'completed');
      assert.equal(done.get(SEARCH_ATTRIBUTES.epoch), 3);
      assert.equal(done.get(SEARCH_ATTRIBUTES.bestMetric), 0.4);
    });
  });
});

describe('trainModel: pause, resume, stop', () => {
  test('pause lets the epoch in flight finish, holds before the next one, and resume goes on', async () => {
    const { reached, release, script } = gatedAt(10);
    await h.run(script, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(trainModel, { taskQueue, workflowId: id('pause'), args: [trainInput({ maxEpochs: 4 })] });
      await reached.wait;
      await handle.signal(pauseSignal);
      const asked = await handle.query(progressQuery);
      assert.equal(asked.pauseRequested, true);
      assert.equal(asked.status, 'training');
      release.open();
      const paused = await waitFor(async () => {
        const p = await handle.query(progressQuery);
        return p.status === 'paused' && p;
      }, 20_000, 'the run to pause');
      assert.equal(paused.epoch, 2);
      // Held: the next epoch is not scheduled while paused.
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(trainCalls(mock.calls), 2);
      assert.equal((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.status), 'paused');
      await handle.signal(resumeSignal);
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.targetStep), [5, 10, 15, 20]);
    });
  });

  test('stop cancels the training in flight and exports the last finished epoch', async () => {
    const { reached, script } = gatedAt(10);
    await h.run(script, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(trainModel, { taskQueue, workflowId: id('stop'), args: [trainInput({ maxEpochs: 4 })] });
      await reached.wait;
      await handle.signal(stopSignal);
      const result = await handle.result();
      assert.equal(result.status, 'stopped');
      assert.equal(result.epochs, 1);
      assert.equal(result.modelStep, 5);
      assert.deepEqual(mock.cancelled.map((i) => i.targetStep), [10]);
      // Epoch 2 was started and cancelled: only epoch 1 is recorded.
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.epoch), [1, 2]);
      assert.deepEqual([...mock.records.values()].flat().map((r) => r.epoch), [1]);
      assert.deepEqual(mock.inputs('finalizeRun').map((i) => i.modelStep), [5]);
    });
  });

  test('stop before the first checkpoint fails the run with NoCheckpoint (there is no model)', async () => {
    const { reached, script } = gatedAt(5);
    await h.run(script, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(trainModel, { taskQueue, workflowId: id('stop-first'), args: [trainInput()] });
      await reached.wait;
      await handle.signal(stopSignal);
      const failure = await failureOf(handle);
      assert.equal(failure.type, 'NoCheckpoint');
      assert.equal(mock.inputs('finalizeRun').length, 0);
    });
  });

  test('stop while paused ends the run without training again', async () => {
    const { reached, release, script } = gatedAt(5);
    await h.run(script, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(trainModel, { taskQueue, workflowId: id('stop-paused'), args: [trainInput()] });
      await reached.wait;
      await handle.signal(pauseSignal);
      release.open();
      await waitFor(async () => (await handle.query(progressQuery)).status === 'paused', 20_000, 'the run to pause');
      await handle.signal(stopSignal);
      const result = await handle.result();
      assert.equal(result.status, 'stopped');
      assert.equal(result.epochs, 1);
      assert.equal(trainCalls(mock.calls), 1);
    });
  });
});

describe('trainModel: continue-as-new', () => {
  test('state crosses each new run: early stopping and the plateau count on where they were', () =>
    // Best at epoch 2, then no improvement: plateau (patience 2) halves the rate after epoch 4,
    // early stopping (patience 3) stops after epoch 5. Runs: epochs 1–3, then 4–5.
    h.run({ evalMetrics: ({ epoch }) => ({ val_loss: series([1.0, 0.5, 0.6, 0.7, 0.8, 0.9])(epoch) }) }, async ({ client, taskQueue, mock, id }) => {
      const input = trainInput({
        maxEpochs: 8,
        continueAsNewEvery: 3,
        earlyStopping: { patience: 3, restoreBestWeights: true },
        reduceLrOnPlateau: { factor: 0.5, patience: 2 },
      });
      const handle = await client.workflow.start(trainModel, { taskQueue, workflowId: id('can'), args: [input] });
      const result = await handle.result();
      assert.equal(result.status, 'early-stopped');
      assert.equal(result.epochs, 5);
      assert.equal(result.modelStep, 10);
      assert.deepEqual(result.history.map((e) => e.epoch), [1, 2, 3, 4, 5]);
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.targetStep), [5, 10, 15, 20, 25]);
      assert.equal(mock.inputs('trainEpoch')[4]?.learningRate, Math.fround(0.05));
      const first = client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId);
      assert.equal((await eventCounts(first)).get('EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW'), 1);
      assert.equal((await handle.query(progressQuery)).continuedRuns, 1);
    }));
});
