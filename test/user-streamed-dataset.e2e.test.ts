/**
 * Issue #21 point 2: a user's own streamed dataset (registerStreamed in a trainer module, here the
 * worked example examples/streamed-dataset/digits-file.ts: MNIST digits as fixed-width records in
 * a binary file, read by index range) trains in the real trainer process with the guarantees of
 * the built-in streamed data:
 *   - it streams (blocks read through the cache, logged), and evaluation streams it too;
 *   - a trainer SIGKILLed mid-epoch (the moment drawn from a printed seed) and resumed by a new
 *     process ends bitwise equal to the uninterrupted run: the order is a pure function of
 *     (seed, step), the position is computed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseTrainConfig } from '../src/config/train-config';
import type { EvaluateResult, TrainUntilStepResult as StepResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import { writeDigitsFile } from '../examples/streamed-dataset/digits-file';
import { mulberry32, testSeed } from './helpers/seed';
import { checkpointHashes, killPausedTrainer } from './helpers/sharded-stack';

const N = 45; // 1000 records, batch 32: one epoch is 31.25 steps, so the run crosses into the second
const EVERY = 5;
const MODULE = path.resolve(__dirname, '../examples/streamed-dataset/digits-file.ts');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-user-streamed-'));
const rootUri = `file://${root}`;
const file = path.join(root, 'digits.f32');
const spec = { name: 'digits-file', params: { file } };
const config = parseTrainConfig({
  model: { name: 'mlp', params: { hiddenUnits: [32], dropout: 0.2 } },
  data: { train: spec, eval: { ...spec, limit: 700 } },
  hyperparameters: { optimizer: 'adam', learningRate: 0.005, batchSize: 32 },
  stepsPerEpoch: 10,
  maxEpochs: 5,
  seed: 21,
  checkpoint: { everySteps: EVERY, everySeconds: 0 },
});

const weights = (run: string, step: number): Record<string, string> => checkpointHashes(path.join(root, run), step);
function client(env: Record<string, string> = {}, log: (m: string) => void = () => undefined): TrainerClient {
  const c = new TrainerClient({ log, env, trainerModule: MODULE });
  c.allowUris([rootUri]);
  return c;
}
const train = (c: TrainerClient, run: string) => c.request<StepResult>({ type: 'train', request: { runUri: `${rootUri}/${run}`, config, targetStep: N, learningRate: 0.005 } });

describe('a user streamed dataset (registerStreamed) in the trainer process', () => {
  const logged: string[] = [];
  let a: TrainerClient;
  let baseline: StepResult;
  before(async () => {
    writeDigitsFile(file, 1000);
    a = client({}, (m) => logged.push(m));
    baseline = await train(a, 'straight');
  });
  after(async () => {
    await a?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('it trains streamed, and evaluates streamed', async () => {
    assert.equal(baseline.step, N);
    assert.ok(Number.isFinite(baseline.loss) && baseline.loss < 2.3, `loss ${baseline.loss}`);
    assert.ok(logged.some((m) => /data: \d+ shard reads/.test(m)), `the step loop read blocks: ${logged.filter((m) => m.startsWith('data')).join(' | ')}`);
    const e = await a.request<EvaluateResult>({ type: 'evaluate', request: { runUri: `${rootUri}/straight`, config, step: N } });
    assert.equal(e.examples, 700);
    assert.ok(Number.isFinite(e.metrics.val_loss!) && e.metrics.val_accuracy! > 0.2, JSON.stringify(e.metrics));
  });

  test('a trainer SIGKILLed mid-epoch resumes bitwise equal to the uninterrupted run', async () => {
    const random = mulberry32(testSeed('user-streamed kill'));
    const killAt = 7 + Math.floor(random() * (N - 8));
    let paused!: () => void;
    const pausedNow = new Promise<void>((resolve) => (paused = resolve));
    const doomed = client({ DT_FAULT_PAUSE_BEFORE_STEP: String(killAt) }, (m) => {
      if (m.includes(`paused before step ${killAt}`)) paused();
    });
    // The checkpoint before the pause is written in the background: the kill waits until it is committed, so the resume starts there.
    const last = await killPausedTrainer(doomed, pausedNow, train(doomed, 'killed'), path.join(root, 'killed'), killAt, EVERY);
    const fresh = client();
    try {
      const r = await train(fresh, 'killed');
      assert.equal(r.resumedFromStep, last, `killed before step ${killAt}`);
      assert.deepEqual(weights('killed', N), weights('straight', N));
      assert.equal(r.loss, baseline.loss);
    } finally {
      await fresh.close();
    }
  });
});
