/**
 * Issue #8, the graph route (models of kind `savedmodel`), at the engine level: the real trainer
 * process through TrainerClient, no Temporal. Uses the committed fixtures under
 * test/fixtures/savedmodel/ (regenerate.sh there): CI has no Python TensorFlow.
 *
 * - config: `{ kind: 'savedmodel', uri }` is accepted, bad ones are rejected by field;
 * - exact resume: straight to N == to N/2, a brand new trainer process, on to N (bitwise), with a
 *   learning-rate change (what a plateau decision does) half way in both;
 * - evaluateModels reads a SavedModel's exported weights (what retrainModel compares), and
 *   warmStartFrom copies them into a fresh run with a fresh optimizer;
 * - bad SavedModels fail at the start with clear non-retryable errors: a missing endpoint, input
 *   shapes that do not fit the dataset, a non-scalar loss, no metadata, no SavedModel at all, a
 *   warm start from weights that are not this SavedModel's.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parseTrainConfig, type TrainConfig } from '../src/config/train-config';
import { ConfigError } from '../src/config/validate';
import { checkpointKey, checkpointUri } from '../src/checkpoints/layout';
import type { EvaluateModelsResult, EvaluateResult, TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient, TrainerError } from '../src/training/trainer-client';
import { tempDir } from './helpers/temporal';

const FIXTURES = path.resolve(__dirname, 'fixtures/savedmodel');
const fixtureUri = (name: string): string => pathToFileURL(path.join(FIXTURES, name)).href;
const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function checkpointHashes(runDir: string, step: number): Record<string, unknown> {
  const dir = path.join(runDir, checkpointKey(step));
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
  delete state.config.runId;
  return { 'weights.bin': sha(path.join(dir, 'weights.bin')), 'optimizer.bin': sha(path.join(dir, 'optimizer.bin')), 'state.json': state };
}

const mnistConfig = (overrides: Record<string, unknown> = {}): TrainConfig =>
  parseTrainConfig({
    model: { kind: 'savedmodel', uri: fixtureUri('mnist-cnn') },
    data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 300 } },
    hyperparameters: { learningRate: 0.002, batchSize: 32 },
    stepsPerEpoch: 40,
    maxEpochs: 2,
    seed: 11,
    checkpoint: { everySteps: 0, everySeconds: 0 },
    ...overrides,
  });

describe('savedmodel config', () => {
  test('accepts { kind: savedmodel, uri } (file:// and gs://), trailing slashes trimmed', () => {
    assert.deepEqual(mnistConfig().model, { kind: 'savedmodel', uri: fixtureUri('mnist-cnn') });
    const gs = parseTrainConfig({ ...baseInput(), model: { kind: 'savedmodel', uri: 'gs://my-bucket/models/mnist/' } });
    assert.deepEqual(gs.model, { kind: 'savedmodel', uri: 'gs://my-bucket/models/mnist' });
  });
  test('rejects a relative uri, an unknown kind and stray keys, by field', () => {
    const issues = (model: unknown): string[] => {
      try {
        parseTrainConfig({ ...baseInput(), model });
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.issues.map((i) => i.field);
      }
    };
    assert.deepEqual(issues({ kind: 'savedmodel', uri: 'models/mnist' }), ['model.uri']);
    assert.deepEqual(issues({ kind: 'onnx', uri: 'file:///m' }), ['model.kind']);
    assert.ok(issues({ kind: 'savedmodel', uri: 'file:///m', name: 'mlp' }).length > 0);
  });
});

function baseInput(): Record<string, unknown> {
  return {
    data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test' } },
    stepsPerEpoch: 10,
    maxEpochs: 1,
  };
}

describe('savedmodel exact resume (trainer processes)', () => {
  const root = tempDir('dt-savedmodel-');
  const runUri = (name: string) => pathToFileURL(path.join(root, name)).href;
  const config = mnistConfig();
  const LR_A = 0.002;
  const LR_B = 0.0005; // what a plateau decision does half way
  const N = 60;
  const HALF = 30; // mid-epoch: stepsPerEpoch is 40
  const train = (c: TrainerClient, name: string, targetStep: number, learningRate: number) =>
    c.request<TrainUntilStepResult>({ type: 'train', request: { runUri: runUri(name), config, targetStep, learningRate } });
  let straight: TrainUntilStepResult;
  let resumed: TrainUntilStepResult;
  let evaluated: EvaluateResult;
  let exported: EvaluateModelsResult;
  let warm: { result: TrainUntilStepResult; evaluated: EvaluateResult };
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  before(async () => {
    const a = new TrainerClient({ log: () => undefined });
    try {
      await train(a, 'straight', HALF, LR_A);
      straight = await train(a, 'straight', N, LR_B);
      evaluated = await a.request<EvaluateResult>({ type: 'evaluate', request: { runUri: runUri('straight'), config, step: N } });
      // A checkpoint folder holds model.json + weights.bin, as an export does: evaluated as an exported model.
      exported = await a.request<EvaluateModelsResult>({
        type: 'evaluateModels',
        request: { modelUris: [checkpointUri(runUri('straight'), N)], data: config.data.eval, loss: config.loss },
      });
      // Warm start from the run (its newest checkpoint), one step at a learning rate too small to move a weight.
      const warmConfig = mnistConfig({ warmStartFrom: runUri('straight') });
      const result = await a.request<TrainUntilStepResult>({ type: 'train', request: { runUri: runUri('warm'), config: warmConfig, targetStep: 1, learningRate: 1e-12 } });
      warm = { result, evaluated: await a.request<EvaluateResult>({ type: 'evaluate', request: { runUri: runUri('warm'), config: warmConfig, step: 1 } }) };
    } finally {
      await a.close();
    }
    const b = new TrainerClient({ log: () => undefined });
    try {
      await train(b, 'resumed', HALF, LR_A);
    } finally {
      await b.close();
    }
    const c = new TrainerClient({ log: () => undefined });
    try {
      resumed = await train(c, 'resumed', N, LR_B);
    } finally {
      await c.close();
    }
  });

  test(`to ${N} in one process == to ${HALF}, new process, on to ${N} (bitwise, lr changed at ${HALF})`, () => {
    assert.equal(straight.backend, 'tensorflow');
    assert.equal(resumed.resumedFromStep, HALF);
    assert.equal(resumed.stepsRun, N - HALF);
    const a = checkpointHashes(path.join(root, 'straight'), N);
    assert.deepEqual(checkpointHashes(path.join(root, 'resumed'), N), a);
    assert.equal(resumed.loss, straight.loss, 'the epoch mean loss is exact across the resume');
  });

  test('the checkpoint holds the whole state, in the shared format', () => {
    const dir = path.join(root, 'resumed', checkpointKey(N));
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
    assert.equal(state.format, 'durable-train/state@1');
    assert.equal(state.step, N);
    assert.equal(state.learningRate, LR_B);
    assert.equal(state.optimizer.iterations, N, "Adam's int64 iterations survive (two int32 words)");
    assert.equal(state.model.kind, 'savedmodel');
    const meta = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'mnist-cnn', 'durable-train.json'), 'utf8'));
    assert.equal(fs.statSync(path.join(dir, 'weights.bin')).size, meta.state.model.words * 4);
    assert.equal(fs.statSync(path.join(dir, 'optimizer.bin')).size, meta.state.optimizer.words * 4);
    // The learning-rate variable in optimizer.bin is the new rate (as float32).
    const lrVar = meta.state.optimizer.variables.find((v: { name: string }) => v.name === meta.optimizer.learningRateVariable);
    const opt = fs.readFileSync(path.join(dir, 'optimizer.bin'));
    assert.equal(opt.readFloatLE(lrVar.offset * 4), Math.fround(LR_B));
    for (const f of ['model.json', 'manifest.json']) assert.ok(fs.existsSync(path.join(dir, f)), f);
  });

  test('evaluate: val_loss and val_accuracy over the eval set', () => {
    assert.equal(evaluated.examples, 300);
    assert.deepEqual(Object.keys(evaluated.metrics).sort(), ['val_accuracy', 'val_loss']);
    assert.ok(evaluated.metrics.val_accuracy! > 0.5 && evaluated.metrics.val_accuracy! <= 1, JSON.stringify(evaluated.metrics));
    assert.ok(Number.isFinite(evaluated.metrics.val_loss));
  });

  test("evaluateModels on a SavedModel's weights (an export or a checkpoint folder) gives what evaluate gave", () => {
    assert.equal(exported.examples, evaluated.examples);
    assert.deepEqual(exported.metrics, [evaluated.metrics]);
  });

  test('warmStartFrom a run of the same SavedModel: its weights, a fresh optimizer', () => {
    assert.equal(warm.result.resumedFromStep, 0);
    const close = (a: number, b: number) => Math.abs(a - b) < 1e-4;
    assert.ok(close(warm.evaluated.metrics.val_loss!, evaluated.metrics.val_loss!), `${JSON.stringify(warm.evaluated.metrics)} vs ${JSON.stringify(evaluated.metrics)}`);
    assert.equal(warm.evaluated.metrics.val_accuracy, evaluated.metrics.val_accuracy);
    const state = JSON.parse(fs.readFileSync(path.join(root, 'warm', checkpointKey(1), 'state.json'), 'utf8'));
    assert.equal(state.optimizer.iterations, 1, 'the optimizer starts fresh (the source had run 60 steps)');
  });
});

describe('bad SavedModels fail at the start with clear, non-retryable errors', () => {
  const root = tempDir('dt-savedmodel-bad-');
  let client: TrainerClient;
  before(() => {
    client = new TrainerClient({ log: () => undefined });
  });
  after(async () => {
    await client.close();
    fs.rmSync(root, { recursive: true, force: true });
  });
  let runs = 0;
  const tiny = { name: 'synthetic', params: { features: 4, classes: 3, size: 64 } };
  async function failure(config: TrainConfig): Promise<TrainerError> {
    const runUri = pathToFileURL(path.join(root, `run-${runs++}`)).href;
    try {
      await client.request<TrainUntilStepResult>({ type: 'train', request: { runUri, config, targetStep: 2, learningRate: 0.01 } });
    } catch (err) {
      assert.ok(err instanceof TrainerError, String(err));
      assert.equal(err.nonRetryable, true, err.message);
      // Nothing was trained or written.
      assert.ok(!fs.existsSync(path.join(fileURLToPathSafe(runUri), 'checkpoints')), 'no checkpoint was written');
      return err;
    }
    assert.fail('expected the run to fail');
  }

  test('missing endpoint: names it', async () => {
    const err = await failure(mnistConfig({ model: { kind: 'savedmodel', uri: fixtureUri('broken-no-eval-step') }, data: { train: tiny, eval: tiny } }));
    assert.match(err.message, /has no `eval_step` endpoint/);
    assert.match(err.message, /export_trainable_savedmodel\.py/);
  });

  test('input shape that does not fit the dataset: both shapes in the message', async () => {
    const err = await failure(mnistConfig({ data: { train: tiny, eval: tiny } }));
    assert.match(err.message, /Input x of `train_step` .* has shape \[None, 784\], but data\.train has examples of shape \[4\]/);
  });

  test('target shape that does not fit the dataset', async () => {
    const wrongY = { name: 'synthetic', params: { features: 784, classes: 3, size: 64 } };
    const err = await failure(mnistConfig({ data: { train: wrongY, eval: wrongY } }));
    assert.match(err.message, /Input y of `train_step` .* has shape \[None, 10\], but data\.train has targets of shape \[3\]/);
  });

  test('non-scalar loss', async () => {
    const err = await failure(mnistConfig({ model: { kind: 'savedmodel', uri: fixtureUri('broken-per-example-loss') }, data: { train: tiny, eval: tiny } }));
    assert.match(err.message, /Output loss of `train_step` .* must be a float32 scalar .* shape \[None\]/);
  });

  test('no durable-train.json (a plain SavedModel), and no SavedModel at all', async () => {
    const plain = path.join(root, 'plain');
    fs.cpSync(path.join(FIXTURES, 'broken-no-eval-step'), plain, { recursive: true });
    fs.rmSync(path.join(plain, 'durable-train.json'));
    const a = await failure(mnistConfig({ model: { kind: 'savedmodel', uri: pathToFileURL(plain).href }, data: { train: tiny, eval: tiny } }));
    assert.match(a.message, /has no durable-train\.json: it is not a trainable SavedModel/);
    const b = await failure(mnistConfig({ model: { kind: 'savedmodel', uri: pathToFileURL(path.join(root, 'nothing')).href } }));
    assert.match(b.message, /No SavedModel at .*: there is no saved_model\.pb/);
  });

  test('warmStartFrom a tfjs-layers model, or weights of another SavedModel: refused, both named', async () => {
    const layers = path.join(root, 'layers-export');
    fs.mkdirSync(layers, { recursive: true });
    fs.writeFileSync(path.join(layers, 'model.json'), JSON.stringify({ format: 'layers-model', modelTopology: {}, weightsManifest: [] }));
    fs.writeFileSync(path.join(layers, 'weights.bin'), Buffer.alloc(16));
    const a = await failure(mnistConfig({ warmStartFrom: pathToFileURL(layers).href }));
    assert.match(a.message, /warmStartFrom .*layers-export: expected the weights of a trainable SavedModel .* got format "layers-model"/);
    const other = path.join(root, 'other-export');
    fs.mkdirSync(other, { recursive: true });
    const variables = [{ name: 'dense/kernel', shape: [4, 3], dtype: 'float32', offset: 0, words: 12 }];
    fs.writeFileSync(path.join(other, 'model.json'), JSON.stringify({ format: 'durable-train/savedmodel-weights@1', savedModel: 'file:///elsewhere', variables }));
    fs.writeFileSync(path.join(other, 'weights.bin'), Buffer.alloc(48));
    const b = await failure(mnistConfig({ warmStartFrom: pathToFileURL(other).href }));
    assert.match(b.message, /the variables at .*other-export \(dense\/kernel:float32\[4,3\]\) do not fit the SavedModel at .*mnist-cnn \(conv2d\/kernel:float32\[3,3,1,8\]/);
  });
});

function fileURLToPathSafe(uri: string): string {
  return new URL(uri).pathname;
}
