/**
 * Issue #21 point 5 in the real trainer process (TrainerClient, tfjs-node): a checkpoint evaluated
 * on the same MNIST rows given as one `jsonl` file (loaded whole) and as JSONL.gz shards of the
 * `sharded` dataset (streamed) gives the same evaluation record, metrics equal to the last bit and
 * the same example count; so does trainEpoch's overlapped evaluation.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { parseTrainConfig } from '../src/config/train-config';
import type { EvaluateResult, TrainEpochTrainerResult, TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import { flatJsonlOf, mnistRows, PIXEL_COLUMNS } from './helpers/mnist-shards';

const CLASSES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const ROWS = 1100;
const PER_SHARD = 150;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-stream-eval-e2e-'));
const rootUri = `file://${root}`;
const wholeFile = path.join(root, 'whole', 'all.jsonl');

const evalSpecs = {
  jsonl: { name: 'jsonl', params: { uri: `file://${wholeFile}`, label: 'y', classes: CLASSES, normalize: 'none' } },
  sharded: { name: 'sharded', params: { uri: `${rootUri}/shards/part-*.jsonl.gz`, format: 'jsonl', label: 'y', features: PIXEL_COLUMNS, classes: CLASSES } },
};
const config = (evalSpec: Record<string, unknown>) =>
  parseTrainConfig({
    model: { name: 'mlp', params: { hiddenUnits: [32] } },
    data: { train: { name: 'mnist', split: 'train', limit: 2000 }, eval: evalSpec },
    hyperparameters: { optimizer: 'adam', learningRate: 0.005, batchSize: 32 },
    stepsPerEpoch: 10,
    maxEpochs: 2,
    seed: 5,
    checkpoint: { everySteps: 10, everySeconds: 0 },
  });

describe('streamed evaluation in the trainer', () => {
  const trainer = new TrainerClient({ log: () => undefined });
  before(() => {
    const rows = mnistRows(ROWS);
    fs.mkdirSync(path.dirname(wholeFile), { recursive: true });
    fs.writeFileSync(wholeFile, flatJsonlOf(rows));
    fs.mkdirSync(path.join(root, 'shards'));
    for (let k = 0; k * PER_SHARD < ROWS; k++) {
      fs.writeFileSync(path.join(root, 'shards', `part-${String(k).padStart(5, '0')}.jsonl.gz`), zlib.gzipSync(flatJsonlOf(rows.slice(k * PER_SHARD, (k + 1) * PER_SHARD))));
    }
    trainer.allowUris([rootUri]);
  });
  after(async () => {
    await trainer.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('the same rows from jsonl and from sharded JSONL shards give identical evaluation records', async () => {
    const runUri = `${rootUri}/run`;
    await trainer.request<TrainUntilStepResult>({ type: 'train', request: { runUri, config: config(evalSpecs.jsonl), targetStep: 10, learningRate: 0.005 } });
    const evaluate = (spec: Record<string, unknown>) => trainer.request<EvaluateResult>({ type: 'evaluate', request: { runUri, config: config(spec), step: 10 } });
    const whole = await evaluate(evalSpecs.jsonl);
    const streamed = await evaluate(evalSpecs.sharded);
    console.log(`jsonl: ${JSON.stringify(whole.metrics)} over ${whole.examples}; sharded: ${JSON.stringify(streamed.metrics)} over ${streamed.examples}`);
    assert.equal(whole.examples, ROWS);
    assert.deepStrictEqual({ ...streamed, seconds: 0 }, { ...whole, seconds: 0 });

    // trainEpoch evaluates while the checkpoint is written: the same record again, each way.
    const epoch = (name: string, spec: Record<string, unknown>) =>
      trainer.request<TrainEpochTrainerResult>({ type: 'trainEpoch', request: { runUri: `${rootUri}/${name}`, config: config(spec), targetStep: 10, learningRate: 0.005 } });
    const a = await epoch('epoch-jsonl', evalSpecs.jsonl);
    const b = await epoch('epoch-sharded', evalSpecs.sharded);
    assert.ok(a.evaluated && b.evaluated);
    assert.deepStrictEqual({ ...b.evaluated, seconds: 0 }, { ...a.evaluated, seconds: 0 });
    assert.deepStrictEqual({ ...a.evaluated, seconds: 0 }, { ...whole, seconds: 0 });
  });
});
