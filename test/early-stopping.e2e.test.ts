/**
 * Early stopping and ReduceLROnPlateau end to end, on a real dev server and a real worker: the
 * run must stop at exactly the epoch Keras would stop at, which we compute by feeding the run's own
 * recorded per-epoch metrics through stepEarlyStopping / stepPlateau (the pure functions that
 * test/callbacks.test.ts verifies against real Keras), and restoreBestWeights must export the
 * best epoch's checkpoint byte for byte.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseTrainConfig } from '../src/config/train-config';
import { initialEarlyStopping, initialPlateau, restoreEpoch, stepEarlyStopping, stepPlateau } from '../src/workflows/callbacks';
import { progressQuery, type TrainModelResult } from '../src/workflows';
import { startStack, startWorker, uniqueId, type InProcessWorker, type Stack } from './helpers/temporal';
import { checkpointWeights, modelWeights, tinyInput } from './e2e-support';

/** What Keras would do with these metrics: the stop epoch (null: never stops) and the epoch to restore. */
function kerasEarlyStopping(input: Record<string, unknown>, history: TrainModelResult['history']) {
  const cfg = parseTrainConfig(input).earlyStopping!;
  let state = initialEarlyStopping();
  for (const h of history) {
    const step = stepEarlyStopping(cfg, state, h.epoch, h.metrics);
    state = step.state;
    if (step.stop) return { stopEpoch: h.epoch, restore: restoreEpoch(cfg, state) };
  }
  return { stopEpoch: null, restore: restoreEpoch(cfg, state) };
}

/** The learning rates Keras's ReduceLROnPlateau would have used, epoch by epoch, and the one after the last. */
function kerasLearningRates(input: Record<string, unknown>, history: TrainModelResult['history']) {
  const config = parseTrainConfig(input);
  const cfg = config.reduceLrOnPlateau!;
  let state = initialPlateau(cfg, config.hyperparameters.learningRate);
  let lr = config.hyperparameters.learningRate;
  const used: number[] = [];
  let reductions = 0;
  for (const h of history) {
    used.push(lr);
    const p = stepPlateau(cfg, state, h.metrics, lr);
    state = p.state;
    lr = p.newLr;
    if (p.reduced) reductions++;
  }
  return { used, next: lr, reductions };
}

interface Case {
  readonly name: string;
  readonly input: Record<string, unknown>;
}

const MAX_EPOCHS = 20;
const TINY_LR = { learningRate: 1e-7 };
const FAST_LR = { learningRate: 0.1 }; // val_loss bottoms out near epoch 10, then rises and wobbles
const cases: Case[] = [
  // lr 1e-7: val_loss falls by ~3e-6 per epoch, below minDelta 1e-5, so nothing after epoch 1 is an improvement.
  { name: 'plateau (lr 1e-7), minDelta 1e-5, patience 2', input: tinyInput({ hyperparameters: TINY_LR, earlyStopping: { patience: 2, minDelta: 1e-5 } }) },
  { name: 'plateau (lr 1e-7), minDelta 1e-5, patience 0', input: tinyInput({ hyperparameters: TINY_LR, earlyStopping: { patience: 0, minDelta: 1e-5 } }) },
  {
    name: 'plateau (lr 1e-7), minDelta 1e-5, startFromEpoch 4, patience 1',
    input: tinyInput({ hyperparameters: TINY_LR, earlyStopping: { patience: 1, minDelta: 1e-5, startFromEpoch: 4 } }),
  },
  { name: 'lr 0.1, minDelta 0.05, patience 3', input: tinyInput({ hyperparameters: FAST_LR, earlyStopping: { patience: 3, minDelta: 0.05 } }) },
  {
    name: 'lr 0.1, unreachable baseline 0.01, minDelta 0.02, patience 2',
    input: tinyInput({ hyperparameters: FAST_LR, earlyStopping: { patience: 2, minDelta: 0.02, baseline: 0.01 } }),
  },
  {
    name: 'lr 0.1, reachable baseline 0.5, patience 4, startFromEpoch 2',
    input: tinyInput({ hyperparameters: FAST_LR, earlyStopping: { patience: 4, baseline: 0.5, startFromEpoch: 2 } }),
  },
  {
    name: 'lr 0.1, restoreBestWeights, minDelta 0, patience 3',
    input: tinyInput({ hyperparameters: FAST_LR, earlyStopping: { patience: 3, restoreBestWeights: true } }),
  },
  {
    name: 'sgd 0.5, restoreBestWeights, mode max on val_accuracy, patience 2',
    input: tinyInput({
      hyperparameters: { optimizer: 'sgd', learningRate: 0.5 },
      earlyStopping: { monitor: 'val_accuracy', patience: 2, restoreBestWeights: true },
    }),
  },
];

describe('early stopping and ReduceLROnPlateau, end to end', () => {
  let stack: Stack;
  let worker: InProcessWorker;
  let restoredFromEarlier = 0;

  before(async () => {
    stack = await startStack();
    worker = await startWorker(stack.address);
  });
  after(async () => {
    await worker?.stop();
    await stack?.close();
  });

  for (const c of cases) {
    test(`stops where Keras stops: ${c.name}`, async (t) => {
      const input = { ...c.input, maxEpochs: MAX_EPOCHS };
      const handle = await stack.client.workflow.start('trainModel', { taskQueue: worker.taskQueue, workflowId: uniqueId('es'), args: [input] });
      const result = (await handle.result()) as TrainModelResult;
      assert.deepEqual(result.history.map((h) => h.epoch), Array.from({ length: result.epochs }, (_, i) => i + 1));
      const keras = kerasEarlyStopping(input, result.history);
      assert.notEqual(keras.stopEpoch, null, `case should stop before ${MAX_EPOCHS}: ${JSON.stringify(result.history.map((h) => h.metrics))}`);
      t.diagnostic(`stopped at epoch ${result.epochs} (Keras: ${keras.stopEpoch}), model from epoch ${result.modelStep / 2}`);
      assert.equal(result.epochs, keras.stopEpoch, 'stopped at the epoch Keras stops at');
      assert.equal(result.status, 'early-stopped');
      assert.equal(result.step, keras.stopEpoch! * 2);
      const progress = await handle.query(progressQuery);
      assert.equal(progress.status, 'early-stopped');

      const cfg = parseTrainConfig(input).earlyStopping!;
      if (cfg.restoreBestWeights) {
        assert.notEqual(keras.restore, null);
        const bestStep = keras.restore! * 2;
        assert.equal(result.modelStep, bestStep, 'exports the best epoch');
        assert.deepEqual(result.finalMetrics, result.history[keras.restore! - 1]!.metrics);
        assert.ok(modelWeights(result).equals(checkpointWeights(result.runUri, bestStep)), 'model weights = best checkpoint weights');
        if (bestStep !== result.step) {
          restoredFromEarlier++;
          assert.ok(!modelWeights(result).equals(checkpointWeights(result.runUri, result.step)), 'not the last checkpoint');
        }
      } else {
        assert.equal(result.modelStep, result.step);
        assert.ok(modelWeights(result).equals(checkpointWeights(result.runUri, result.step)), 'model weights = last checkpoint weights');
      }
    });
  }

  test('restoreBestWeights cases really restored an earlier epoch', () => {
    assert.ok(restoredFromEarlier >= 1, `at least one restoreBestWeights case should restore an epoch before the last (got ${restoredFromEarlier})`);
  });

  test('ReduceLROnPlateau: the learning rate of every epoch is the one Keras would use', async () => {
    const input = tinyInput({
      maxEpochs: 16,
      hyperparameters: FAST_LR,
      reduceLrOnPlateau: { patience: 1, factor: 0.5, minDelta: 0.01, cooldown: 1, minLr: 0.002 },
    });
    const handle = await stack.client.workflow.start('trainModel', { taskQueue: worker.taskQueue, workflowId: uniqueId('plateau'), args: [input] });
    const result = (await handle.result()) as TrainModelResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.epochs, 16);
    const keras = kerasLearningRates(input, result.history);
    assert.deepEqual(result.history.map((h) => h.learningRate), keras.used);
    assert.equal(result.learningRate, keras.next);
    assert.ok(keras.reductions >= 2, `the plateau should reduce the LR at least twice: ${keras.used.join(', ')}`);
    assert.equal((await handle.query(progressQuery)).learningRate, keras.next);
  });

  test('early stopping and ReduceLROnPlateau together (lr 1e-7 plateau)', async () => {
    const input = tinyInput({
      maxEpochs: MAX_EPOCHS,
      hyperparameters: TINY_LR,
      earlyStopping: { patience: 5, minDelta: 1e-3, restoreBestWeights: true },
      reduceLrOnPlateau: { patience: 1, factor: 0.1, minDelta: 1e-3 },
    });
    const handle = await stack.client.workflow.start('trainModel', { taskQueue: worker.taskQueue, workflowId: uniqueId('esp'), args: [input] });
    const result = (await handle.result()) as TrainModelResult;
    const es = kerasEarlyStopping(input, result.history);
    const lr = kerasLearningRates(input, result.history);
    assert.equal(result.status, 'early-stopped');
    assert.equal(result.epochs, es.stopEpoch);
    assert.deepEqual(result.history.map((h) => h.learningRate), lr.used);
    assert.equal(result.learningRate, lr.next);
    assert.ok(lr.reductions >= 1);
    assert.equal(result.modelStep, es.restore! * 2);
    assert.ok(modelWeights(result).equals(checkpointWeights(result.runUri, result.modelStep)));
  });
});
