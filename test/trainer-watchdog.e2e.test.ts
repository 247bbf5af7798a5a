/**
 * The worker's watchdog on its trainer process: a trainer whose event loop is blocked for good
 * (as by a native op that never returns) is killed after the stall limit, its request fails with
 * a message that says so, and the next request gets a fresh trainer.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import { parseTrainConfig } from '../src/config/train-config';
import type { DescribeResult, TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import { tempDir } from './helpers/temporal';

const config = parseTrainConfig({
  model: { name: 'mlp', params: { hiddenUnits: [8] } },
  data: { train: { name: 'synthetic' }, eval: { name: 'synthetic', split: 'test' } },
  stepsPerEpoch: 20,
  maxEpochs: 1,
  checkpoint: { everySteps: 4, everySeconds: 0 },
});

describe('trainer watchdog', () => {
  test('a trainer that hangs mid-training is killed after the stall limit; the next request gets a new one', async () => {
    const logs: string[] = [];
    const trainer = new TrainerClient({ stallTimeoutSeconds: 3, env: { DT_FAULT_HANG_BEFORE_STEP: '7' }, log: (m) => logs.push(m) });
    try {
      const first = await trainer.request<DescribeResult>({ type: 'describe' });
      const runUri = pathToFileURL(path.join(tempDir('dt-watchdog-'), 'run')).href;
      const started = Date.now();
      await assert.rejects(
        trainer.request<TrainUntilStepResult>({ type: 'train', request: { runUri, config, targetStep: 20, learningRate: 0.001 } }),
        /The trainer process \(pid \d+\) gave no sign of life for \d+ s \(stall limit 3 s\); it was killed/,
      );
      const seconds = (Date.now() - started) / 1000;
      assert.ok(seconds >= 3 && seconds < 15, `killed after ${seconds} s`);
      assert.ok(logs.some((l) => l.includes('fault injection: hanging before step 7')), 'the trainer really hung');
      const second = await trainer.request<DescribeResult>({ type: 'describe' });
      assert.notEqual(second.pid, first.pid, 'a fresh trainer process');
    } finally {
      await trainer.close();
    }
  });

  test('a trainer that is busy but alive is left alone', async () => {
    const trainer = new TrainerClient({ stallTimeoutSeconds: 2, log: () => undefined });
    try {
      const runUri = pathToFileURL(path.join(tempDir('dt-watchdog-'), 'run')).href;
      // Longer than the stall limit, but the loop yields every 20 ms, so signs of life keep coming.
      const long = parseTrainConfig({ ...JSON.parse(JSON.stringify(config)), stepsPerEpoch: 1000 });
      const result = await trainer.request<TrainUntilStepResult>({ type: 'train', request: { runUri, config: long, targetStep: 1000, learningRate: 0.001 } });
      assert.equal(result.step, 1000);
      assert.ok(result.seconds > 2, `the request outlasted the stall limit (${result.seconds} s)`);
    } finally {
      await trainer.close();
    }
  });
});
