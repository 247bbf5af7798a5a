/**
 * trainModel's decisions on the real dev server with scripted activities: the epoch loop and its
 * absolute target steps, early stopping and restoreBestWeights, ReduceLROnPlateau, resume, fault
 * retries, and invalid input failing before any activity runs. Expected values are worked out by
 * hand from the scripted series (Keras semantics), not computed with the workflow's own code.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { trainModel } from '../../src/workflows';
import { eventCounts, failureOf, Harness, series, trainInput } from './harness';
import { MOCK_ROOT } from './mock-activities';

let h: Harness;
before(async () => {
  h = await Harness.start();
});
after(async () => {
  await h?.close();
});

const valLoss = (values: readonly number[]) => {
  const at = series(values);
  return ({ epoch }: { epoch: number }) => ({ val_loss: at(epoch), val_accuracy: 1 - at(epoch) / 2 });
};

describe('trainModel: the epoch loop', () => {
  test('trains to absolute steps epoch by epoch, evaluates each, and exports the last checkpoint', () =>
    h.run({ evalMetrics: valLoss([0.9, 0.7, 0.5, 0.3]) }, async ({ client, taskQueue, mock, id }) => {
      const workflowId = id('plain');
      const result = await client.workflow.execute(trainModel, { taskQueue, workflowId, args: [trainInput()] });
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.targetStep), [5, 10, 15, 20]);
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => [i.epoch, i.targetStep]), [[1, 5], [2, 10], [3, 15], [4, 20]]);
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.runUri), Array(4).fill(`${MOCK_ROOT}/${workflowId}`));
      assert.equal(result.status, 'completed');
      assert.equal(result.epochs, 4);
      assert.equal(result.step, 20);
      assert.equal(result.modelStep, 20);
      assert.equal(result.runId, workflowId);
      assert.equal(result.backend, 'mock');
      assert.deepEqual(result.finalMetrics, { loss: 0.25, val_loss: 0.3, val_accuracy: 0.85 });
      assert.deepEqual(result.best, { epoch: 4, step: 20, metric: 'val_loss', value: 0.3 });
      assert.deepEqual(result.history.map((h) => h.metrics.val_loss), [0.9, 0.7, 0.5, 0.3]);
      assert.deepEqual(mock.inputs('finalizeRun').map((i) => i.modelStep), [20]);
    }));

  test('an explicit runId names the run folder; the best epoch is protected from retention', () =>
    h.run({ evalMetrics: valLoss([0.5, 0.8, 0.9]) }, async ({ client, taskQueue, mock, id }) => {
      const result = await client.workflow.execute(trainModel, { taskQueue, workflowId: id('named'), args: [trainInput({ runId: 'my-run', maxEpochs: 3 })] });
      assert.equal(result.runUri, `${MOCK_ROOT}/my-run`);
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.protectSteps), [[], [5], [5]]);
      assert.deepEqual(mock.inputs('finalizeRun')[0]?.protectSteps, [5]);
    }));
});

describe('trainModel: early stopping', () => {
  // val_loss improves until epoch 2, then not for `patience` (2) epochs: Keras stops after epoch 4.
  const curve = valLoss([1.0, 0.5, 0.6, 0.7, 0.4, 0.3]);
  const earlyStopping = (restoreBestWeights: boolean) => ({ monitor: 'val_loss', patience: 2, restoreBestWeights });

  test('stops after `patience` epochs without improvement; restoreBestWeights exports the best epoch', () =>
    h.run({ evalMetrics: curve }, async ({ client, taskQueue, mock, id }) => {
      const result = await client.workflow.execute(trainModel, {
        taskQueue,
        workflowId: id('es-restore'),
        args: [trainInput({ maxEpochs: 6, earlyStopping: earlyStopping(true) })],
      });
      assert.equal(result.status, 'early-stopped');
      assert.equal(result.epochs, 4);
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.targetStep), [5, 10, 15, 20]);
      assert.equal(result.modelStep, 10);
      assert.equal(result.finalMetrics?.val_loss, 0.5);
      assert.deepEqual(mock.inputs('finalizeRun').map((i) => i.modelStep), [10]);
    }));

  test('without restoreBestWeights the last checkpoint is exported', () =>
    h.run({ evalMetrics: curve }, async ({ client, taskQueue, id }) => {
      const result = await client.workflow.execute(trainModel, {
        taskQueue,
        workflowId: id('es-last'),
        args: [trainInput({ maxEpochs: 6, earlyStopping: earlyStopping(false) })],
      });
      assert.equal(result.status, 'early-stopped');
      assert.equal(result.modelStep, 20);
      assert.equal(result.finalMetrics?.val_loss, 0.7);
    }));

  test('restoreBestWeights applies when the run completes without stopping (as Keras 3)', () =>
    h.run({ evalMetrics: curve }, async ({ client, taskQueue, id }) => {
      const result = await client.workflow.execute(trainModel, {
        taskQueue,
        workflowId: id('es-complete'),
        args: [trainInput({ maxEpochs: 3, earlyStopping: { monitor: 'val_loss', patience: 5, restoreBestWeights: true } })],
      });
      assert.equal(result.status, 'completed');
      assert.equal(result.modelStep, 10);
    }));

  test('monitor and mode are honoured: val_accuracy (max) with minDelta', () =>
    h.run({ evalMetrics: ({ epoch }) => ({ val_loss: 1 / epoch, val_accuracy: [0.5, 0.6, 0.605, 0.61, 0.9][epoch - 1]! }) }, async ({ client, taskQueue, id }) => {
      // +0.005 and +0.01 are not more than minDelta 0.02: two epochs without improvement after epoch 2.
      const result = await client.workflow.execute(trainModel, {
        taskQueue,
        workflowId: id('es-max'),
        args: [trainInput({ maxEpochs: 5, earlyStopping: { monitor: 'val_accuracy', mode: 'max', minDelta: 0.02, patience: 2, restoreBestWeights: true } })],
      });
      assert.equal(result.status, 'early-stopped');
      assert.equal(result.epochs, 4);
      assert.equal(result.modelStep, 10);
      assert.deepEqual(result.best, { epoch: 4, step: 20, metric: 'val_accuracy', value: 0.61 });
    }));
});

describe('trainModel: ReduceLROnPlateau', () => {
  // Keras reads the rate back from the optimizer as float32; the first epoch uses the input as given.
  const float32 = ([first, ...rest]: number[]) => [first, ...rest.map((x) => Math.fround(x))];

  test('a flat val_loss halves the rate after each `patience` epoch, down to minLr', () =>
    h.run({ evalMetrics: () => ({ val_loss: 1 }) }, async ({ client, taskQueue, mock, id }) => {
      const result = await client.workflow.execute(trainModel, {
        taskQueue,
        workflowId: id('plateau'),
        args: [trainInput({ maxEpochs: 6, reduceLrOnPlateau: { monitor: 'val_loss', factor: 0.5, patience: 1, minLr: 0.02 } })],
      });
      // Epoch 1 sets the best; every later epoch is a plateau of 1 epoch: 0.1 → 0.05 → 0.025 → 0.02 (minLr).
      const expected = float32([0.1, 0.1, 0.05, 0.025, 0.02, 0.02]);
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.learningRate), expected);
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.learningRate), expected);
      assert.deepEqual(result.history.map((e) => e.learningRate), expected);
      assert.equal(result.learningRate, Math.fround(0.02));
    }));

  test('cooldown waits before counting a new plateau', () =>
    h.run({ evalMetrics: () => ({ val_loss: 1 }) }, async ({ client, taskQueue, mock, id }) => {
      await client.workflow.execute(trainModel, {
        taskQueue,
        workflowId: id('cooldown'),
        args: [trainInput({ maxEpochs: 6, reduceLrOnPlateau: { monitor: 'val_loss', factor: 0.5, patience: 1, cooldown: 2 } })],
      });
      // Reduced after epoch 2 (cooldown 2). Keras counts the cooldown down at the start of each epoch end:
      // after epoch 3 it is 1 (no counting), after epoch 4 it is 0, so epoch 4 counts and reduces again.
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.learningRate), float32([0.1, 0.1, 0.05, 0.05, 0.025, 0.025]));
    }));
});

describe('trainModel: resume', () => {
  test('continues after the recorded epochs of the run folder, with their best and early-stopping state', () =>
    h.run({ evalMetrics: valLoss([0.9, 0.4, 0.5, 0.6, 0.1]) }, async ({ client, taskQueue, mock, id }) => {
      const runUri = `${MOCK_ROOT}/resumed`;
      mock.seedRun(runUri, [
        { epoch: 1, step: 5, learningRate: 0.1, metrics: { loss: 1, val_loss: 0.9, val_accuracy: 0.55 } },
        { epoch: 2, step: 10, learningRate: 0.1, metrics: { loss: 0.5, val_loss: 0.4, val_accuracy: 0.8 } },
      ]);
      const result = await client.workflow.execute(trainModel, {
        taskQueue,
        workflowId: id('resume'),
        args: [trainInput({ runId: 'resumed', resume: true, maxEpochs: 5, earlyStopping: { patience: 2, restoreBestWeights: true } })],
      });
      // Epochs 3 and 4 do not beat epoch 2's 0.4: patience 2 stops after epoch 4, exporting epoch 2.
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.targetStep), [15, 20]);
      assert.equal(result.status, 'early-stopped');
      assert.equal(result.epochs, 4);
      assert.equal(result.modelStep, 10);
      assert.deepEqual(result.history.map((h) => h.epoch), [1, 2, 3, 4]);
    }));
});

describe('trainModel: faults and invalid input', () => {
  let mockDescribes = 0;
  test('a failed training attempt is retried and the run goes on', () =>
    h.run(
      {
        evalMetrics: valLoss([0.5]),
        fail: (c) => (c.name === 'trainEpoch' && (c.input as { targetStep: number }).targetStep === 10 && c.attempt === 1 ? new Error('trainer crashed') : undefined),
      },
      async ({ client, taskQueue, mock, id }) => {
        const result = await client.workflow.execute(trainModel, { taskQueue, workflowId: id('retry'), args: [trainInput({ maxEpochs: 2 })] });
        assert.equal(result.status, 'completed');
        assert.deepEqual(mock.calls.filter((c) => c.name === 'trainEpoch').map((c) => c.attempt), [1, 1, 2]);
      },
    ));

  test('a worker shutting down (describeWorker refused) fails the workflow task, not the run', () => {
    // What the real describeWorker throws on a draining worker that never started a trainer.
    const shuttingDown = () => ApplicationFailure.retryable('The worker is shutting down (worker stopping): it takes no new describe request', 'WorkerShuttingDown');
    return h.run(
      { evalMetrics: valLoss([0.5]), fail: (c) => (c.name === 'describeWorker' && c.input === undefined && mockDescribes++ === 0 ? shuttingDown() : undefined) },
      async ({ client, taskQueue, mock, id }) => {
        const handle = await client.workflow.start(trainModel, { taskQueue, workflowId: id('draining'), args: [trainInput({ maxEpochs: 1 })] });
        const result = await handle.result();
        assert.equal(result.status, 'completed');
        const counts = await eventCounts(handle);
        // Refused once and not retried locally (nothing to wait for on a draining worker), then asked again in a new task.
        assert.deepEqual(mock.calls.filter((c) => c.name === 'describeWorker').map((c) => c.attempt), [1, 1]);
        assert.equal(counts.get('EVENT_TYPE_WORKFLOW_TASK_FAILED'), 1, 'one failed workflow task');
      },
    );
  });

  test('a non-retryable failure fails the run at once, without exporting', () =>
    h.run(
      { evalMetrics: valLoss([0.5]), fail: (c) => (c.name === 'trainEpoch' ? ApplicationFailure.nonRetryable('loss is NaN', 'NonFiniteLoss') : undefined) },
      async ({ client, taskQueue, mock, id }) => {
        const handle = await client.workflow.start(trainModel, { taskQueue, workflowId: id('nonretryable'), args: [trainInput()] });
        const failure = await failureOf(handle);
        assert.equal(failure.type, 'NonFiniteLoss');
        assert.equal(mock.inputs('trainEpoch').length, 1);
        assert.equal(mock.inputs('finalizeRun').length, 0);
      },
    ));

  const invalid: Array<{ name: string; input: Record<string, unknown>; field: string; describes: boolean }> = [
    { name: 'maxEpochs 0', input: trainInput({ maxEpochs: 0 }), field: 'maxEpochs', describes: false },
    { name: 'an unknown optimizer', input: trainInput({ hyperparameters: { optimizer: 'adamw', learningRate: 0.1 } }), field: 'hyperparameters.optimizer', describes: false },
    { name: 'a model the worker does not have', input: trainInput({ model: { name: 'transformer' } }), field: 'model.name', describes: true },
    { name: 'a dataset the worker does not have', input: trainInput({ data: { train: { name: 'cifar' }, eval: { name: 'synthetic' } } }), field: 'data.train.name', describes: true },
  ];
  for (const bad of invalid) {
    test(`${bad.name}: InvalidConfig naming \`${bad.field}\`, before any activity is scheduled`, () =>
      h.run({ evalMetrics: valLoss([0.5]) }, async ({ client, taskQueue, mock, id }) => {
        const handle = await client.workflow.start(trainModel, { taskQueue, workflowId: id('invalid'), args: [bad.input] });
        const failure = await failureOf(handle);
        assert.equal(failure.type, 'InvalidConfig');
        assert.match(failure.message, new RegExp(bad.field.replace(/\./g, '\\.')));
        assert.equal(failure.nonRetryable, true);
        // Registry names are checked by the describeWorker local activity (a marker, not a task).
        assert.deepEqual(mock.calls.map((c) => c.name), bad.describes ? ['describeWorker'] : []);
        assert.equal((await eventCounts(handle)).get('EVENT_TYPE_ACTIVITY_TASK_SCHEDULED'), undefined);
      }));
  }

  test('a workflow id that cannot be a run id fails as InvalidConfig', () =>
    h.run({ evalMetrics: valLoss([0.5]) }, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(trainModel, { taskQueue, workflowId: `${id('bad')}/with/slashes`, args: [trainInput()] });
      const failure = await failureOf(handle);
      assert.equal(failure.type, 'InvalidConfig');
      assert.match(failure.message, /runId/);
      assert.equal(mock.inputs('trainEpoch').length, 0);
    }));
});
