/**
 * No tensor leaks in the step loop: 2,000 steps with a checkpoint every 20, through the real
 * trainer process, in several requests; tf.memory() (read with the non-destructive `numTensors`
 * request) is exactly the same after 500, 1,000, 1,500 and 2,000 steps.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { parseTrainConfig } from '../src/config/train-config';
import type { EvaluateResult, TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import { tempDir } from './helpers/temporal';

interface Memory {
  numTensors: number;
  numBytes: number;
  numDataBuffers: number;
}

const config = parseTrainConfig({
  model: { name: 'mlp', params: { hiddenUnits: [16], dropout: 0.2 } },
  data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 200 } },
  hyperparameters: { optimizer: 'adam', learningRate: 0.002, batchSize: 16 },
  stepsPerEpoch: 100,
  maxEpochs: 20,
  seed: 3,
  checkpoint: { everySteps: 20, everySeconds: 0 },
});

describe('memory', () => {
  const trainer = new TrainerClient({ log: () => undefined });
  const root = tempDir('dt-memory-');
  const runUri = (name: string) => pathToFileURL(path.join(root, name)).href;
  const numTensors = () => trainer.request<Memory>({ type: 'numTensors' });
  const train = (name: string, targetStep: number) =>
    trainer.request<TrainUntilStepResult>({ type: 'train', request: { runUri: runUri(name), config, targetStep, learningRate: 0.002 } });
  const evaluate = (name: string, step: number) =>
    trainer.request<EvaluateResult>({ type: 'evaluate', request: { runUri: runUri(name), config, step } });

  after(async () => {
    await trainer.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('2,000 steps, a checkpoint every 20: tensor count is flat across requests (model kept in memory)', async (t) => {
    const seen: Memory[] = [];
    let seconds = 0;
    for (const target of [500, 1000, 1500, 2000]) {
      const r = await train('kept', target);
      assert.equal(r.step, target);
      assert.equal(r.resumedFromStep, target - 500);
      seconds += r.seconds;
      // An eval of the step in memory, and one of an older checkpoint (a model loaded and dropped).
      await evaluate('kept', target);
      await evaluate('kept', target - 20);
      seen.push(await numTensors());
    }
    t.diagnostic(`numTensors after 500/1000/1500/2000 steps: ${seen.map((m) => m.numTensors).join(' / ')}`);
    t.diagnostic(`numBytes: ${seen.map((m) => m.numBytes).join(' / ')}`);
    t.diagnostic(`${((seconds / 2000) * 1000).toFixed(2)} ms per step including a checkpoint every 20 steps`);
    // Exactly what the session holds: 2 dense layers (kernel + bias) = 4 weights, Adam's 2 moments
    // per weight = 8 plus accBeta1/accBeta2 = 2, and the epoch's running loss sum = 1.
    assert.equal(seen[0]!.numTensors, 4 + 8 + 2 + 1);
    for (const m of seen) {
      assert.equal(m.numTensors, seen[0]!.numTensors, `tensors: ${seen.map((x) => x.numTensors).join(', ')}`);
      assert.equal(m.numBytes, seen[0]!.numBytes, `bytes: ${seen.map((x) => x.numBytes).join(', ')}`);
    }
  });

  test('restoring from a checkpoint on every request (two runs in turn) leaks nothing either', async (t) => {
    const seen: Memory[] = [];
    for (const target of [100, 200, 300, 400]) {
      // Each request finds the other run in memory, drops it and restores its own checkpoint.
      for (const name of ['a', 'b']) {
        const r = await train(name, target);
        assert.equal(r.resumedFromStep, target - 100);
      }
      seen.push(await numTensors());
    }
    t.diagnostic(`numTensors after each round: ${seen.map((m) => m.numTensors).join(' / ')}`);
    for (const m of seen) assert.equal(m.numTensors, seen[0]!.numTensors, `tensors: ${seen.map((x) => x.numTensors).join(', ')}`);
  });
});
