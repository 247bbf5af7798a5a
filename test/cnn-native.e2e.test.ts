/**
 * Issue #7: the built-in CNN trains on the native backend (tfjs-node) on the MNIST digits, through
 * the real trainer process: the epoch loss falls and test accuracy ends far above chance (10 %).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { parseTrainConfig } from '../src/config/train-config';
import type { DescribeResult, EvaluateResult, TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import { tempDir } from './helpers/temporal';

const STEPS_PER_EPOCH = 50;
const EPOCHS = 3;

const config = parseTrainConfig({
  model: { name: 'cnn' },
  data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 500 } },
  hyperparameters: { optimizer: 'adam', learningRate: 0.003, batchSize: 64 },
  stepsPerEpoch: STEPS_PER_EPOCH,
  maxEpochs: EPOCHS,
  seed: 9,
  checkpoint: { everySteps: 0, everySeconds: 0 },
});

describe('CNN on the native backend', () => {
  const trainer = new TrainerClient({ backend: 'tensorflow', log: () => undefined });
  const root = tempDir('dt-cnn-');
  const runUri = pathToFileURL(path.join(root, 'cnn')).href;
  after(async () => {
    await trainer.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test(`cnn, ${EPOCHS} epochs of ${STEPS_PER_EPOCH} steps (batch 64): loss falls, accuracy well above chance`, async (t) => {
    const d = await trainer.request<DescribeResult>({ type: 'describe' });
    assert.equal(d.backend.name, 'tensorflow');
    assert.equal(d.backend.package, '@tensorflow/tfjs-node');
    const losses: number[] = [];
    let last: EvaluateResult | undefined;
    for (let epoch = 1; epoch <= EPOCHS; epoch++) {
      const r = await trainer.request<TrainUntilStepResult>({
        type: 'train',
        request: { runUri, config, targetStep: epoch * STEPS_PER_EPOCH, learningRate: 0.003 },
      });
      assert.equal(r.backend, 'tensorflow');
      assert.equal(r.step, epoch * STEPS_PER_EPOCH);
      losses.push(r.loss);
      last = await trainer.request<EvaluateResult>({ type: 'evaluate', request: { runUri, config, step: r.step } });
      t.diagnostic(
        `epoch ${epoch}: loss ${r.loss.toFixed(4)}, val_loss ${last.metrics.val_loss!.toFixed(4)}, val_accuracy ${last.metrics.val_accuracy!.toFixed(3)}, ${((r.seconds / STEPS_PER_EPOCH) * 1000).toFixed(1)} ms/step`,
      );
    }
    assert.ok(losses.every((l) => Number.isFinite(l)), `losses: ${losses.join(', ')}`);
    assert.ok(losses[EPOCHS - 1]! < losses[0]! * 0.7, `epoch loss should fall by 30 %+: ${losses.join(', ')}`);
    assert.ok(losses[0]! < 2.4, `the first epoch already learns something (chance is ln 10 = 2.30): ${losses[0]}`);
    assert.ok(last!.metrics.val_accuracy! > 0.75, `val_accuracy ${last!.metrics.val_accuracy} (chance 0.10)`);
  });
});
