/**
 * The training-route contract (src/training/route.ts), fast: the router's choice from model specs
 * and exported model.json files, and every operation a route cannot do failing with
 * NonRetryableTrainingError (what the trainer process reports as non-retryable) and a message
 * saying so, before anything trains. The engine runs in this process on tfjs's pure-JS `cpu`
 * backend; nothing here takes a training step.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { writeCheckpoint } from '../src/checkpoints/format';
import { openStore } from '../src/checkpoints/open-store';
import { parseTrainConfig, type ModelSpec, type TrainConfig } from '../src/config/train-config';
import { selectBackend, type BackendInfo } from '../src/training/backend';
import { builtInDatasets } from '../src/training/dataset-registry';
import { Engine } from '../src/training/engine';
import { builtInModels } from '../src/training/models';
import { NonRetryableTrainingError } from '../src/training/protocol';
import type { RouteDeps, RouteSession, TrainingRoute } from '../src/training/route';
import { builtInRoutes, Router } from '../src/training/router';

const SAVEDMODEL_URI = pathToFileURL(path.resolve(__dirname, 'fixtures/savedmodel/mnist-cnn')).href;
const tiny = { name: 'synthetic', params: { features: 4, classes: 3, size: 64 } };

const files = (description: Record<string, unknown>) => ({
  uri: 'file:///somewhere/model',
  modelJson: Buffer.from(JSON.stringify(description)),
  weights: Buffer.alloc(0),
  description,
});

/** A route that offers only what every route must: no warm start, no exported models. */
class BareRoute implements TrainingRoute {
  readonly name = 'bare';
  readonly singleSession = false;
  handlesSpec(spec: ModelSpec): boolean {
    return 'name' in spec && spec.name === 'bare';
  }
  handlesExport(description: Readonly<Record<string, unknown>>): boolean {
    return description.format === 'bare-weights@1';
  }
  async openFresh(): Promise<RouteSession> {
    return { runUri: '', step: 0, committedSha256: undefined, lossSum: tf.scalar(0), lossSteps: 0, learningRate: 0 };
  }
  async restore(): Promise<RouteSession> {
    throw new Error('not used');
  }
  setLearningRate(): void {}
  stepper(): () => tf.Scalar {
    return () => tf.scalar(0);
  }
  async snapshot(): Promise<Map<string, Buffer>> {
    return new Map();
  }
  async evaluate(): Promise<Record<string, number>> {
    return {};
  }
  closeSession(s: RouteSession): void {
    s.lossSum.dispose();
  }
  dispose(): void {}
}

describe('router', () => {
  const deps = { backend: { name: 'cpu', package: '@tensorflow/tfjs', gpu: false, notes: [] } } as unknown as RouteDeps;
  const router = new Router(builtInRoutes(deps));
  const cases: Array<[string, ModelSpec | Record<string, unknown>, string]> = [
    ['a registry model', { name: 'mlp', params: { hiddenUnits: [8] } }, 'eager'],
    ['a topology', { topology: { class_name: 'Sequential' } }, 'eager'],
    ['a trainable SavedModel', { kind: 'savedmodel', uri: SAVEDMODEL_URI }, 'savedmodel'],
  ];
  for (const [what, spec, route] of cases) {
    test(`${what} trains on the ${route} route`, () => assert.equal(router.forSpec(spec as ModelSpec).name, route));
  }
  test('a spec no route takes is refused, non-retryable', () => {
    assert.throws(() => router.forSpec({ kind: 'onnx', uri: 'file:///m' } as unknown as ModelSpec), (err: Error) => {
      assert.ok(err instanceof NonRetryableTrainingError);
      assert.match(err.message, /no training route takes it/);
      return true;
    });
  });
  const exports: Array<[string, Record<string, unknown>, string]> = [
    ['a tfjs-layers model.json', { format: 'layers-model', modelTopology: {}, weightsManifest: [] }, 'eager'],
    ['a converted Keras model.json without `format`', { modelTopology: {}, weightsManifest: [] }, 'eager'],
    ["a SavedModel's weights", { format: 'durable-train/savedmodel-weights@1', savedModel: SAVEDMODEL_URI, variables: [] }, 'savedmodel'],
  ];
  for (const [what, description, route] of exports) {
    test(`${what} is evaluated on the ${route} route`, () => assert.equal(router.forExport(files(description)).name, route));
  }
  test('an exported model.json of another format is refused, non-retryable, naming the formats', () => {
    assert.throws(() => router.forExport(files({ format: 'graph-model' })), (err: Error) => {
      assert.ok(err instanceof NonRetryableTrainingError);
      assert.match(err.message, /Expected the model\.json at .* to be a tfjs-layers model .* or a SavedModel's weights .*, got format "graph-model"/);
      return true;
    });
  });
});

describe('what a route cannot do fails non-retryably, with a message saying so', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-routes-'));
  const uri = (...parts: string[]) => pathToFileURL(path.join(root, ...parts)).href;
  let backend: BackendInfo;
  let engine: Engine;
  let bare: Engine;
  before(async () => {
    backend = await selectBackend('cpu');
    const deps: RouteDeps = { models: builtInModels(), datasets: builtInDatasets(), openStore: (u) => openStore(u), backend, log: () => undefined };
    engine = new Engine(deps);
    bare = new Engine(deps, [new BareRoute()]);
    // An exported SavedModel's weights, a checkpoint of a savedmodel run, and a model.json of an unknown format.
    fs.mkdirSync(path.join(root, 'sm-export'), { recursive: true });
    fs.writeFileSync(path.join(root, 'sm-export', 'model.json'), JSON.stringify({ format: 'durable-train/savedmodel-weights@1', savedModel: SAVEDMODEL_URI, variables: [] }));
    fs.writeFileSync(path.join(root, 'sm-export', 'weights.bin'), Buffer.alloc(8));
    fs.mkdirSync(path.join(root, 'odd-export'), { recursive: true });
    fs.writeFileSync(path.join(root, 'odd-export', 'model.json'), JSON.stringify({ format: 'graph-model' }));
    fs.writeFileSync(path.join(root, 'odd-export', 'weights.bin'), Buffer.alloc(8));
    const state = { format: 'durable-train/state@1', step: 2, model: { kind: 'savedmodel', uri: SAVEDMODEL_URI } };
    await writeCheckpoint(openStore(uri('sm-run')), 2, new Map([
      ['model.json', fs.readFileSync(path.join(root, 'sm-export', 'model.json'))],
      ['weights.bin', Buffer.alloc(8)],
      ['optimizer.bin', Buffer.alloc(8)],
      ['state.json', Buffer.from(JSON.stringify(state))],
    ]));
  });
  after(() => {
    engine?.dispose();
    bare?.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const config = (overrides: Record<string, unknown>): TrainConfig =>
    parseTrainConfig({ model: { name: 'mlp', params: { hiddenUnits: [4] } }, data: { train: tiny, eval: tiny }, stepsPerEpoch: 2, maxEpochs: 1, ...overrides });
  const train = (e: Engine, runUri: string, c: TrainConfig) =>
    e.train({ runUri, config: c, targetStep: 2, learningRate: 0.01 }, () => undefined, () => false);

  const cases: Array<{ what: string; run: () => Promise<unknown>; message: RegExp }> = [
    {
      what: 'savedmodel: training on a backend without the SavedModel runner',
      run: () => train(engine, uri('a'), config({ model: { kind: 'savedmodel', uri: SAVEDMODEL_URI } })),
      message: /needs the tensorflow backend .* this worker runs on `cpu`/,
    },
    {
      what: "savedmodel: evaluating an exported SavedModel's weights on such a backend",
      run: () => engine.evaluateModels({ modelUris: [uri('sm-export', 'model.json')], data: tiny, loss: 'categoricalCrossentropy' }),
      message: /needs the tensorflow backend/,
    },
    {
      what: "eager: warm-starting a tfjs-layers model from a SavedModel's weights",
      run: () => train(engine, uri('b'), config({ warmStartFrom: uri('sm-export') })),
      message: /warmStartFrom .*sm-export: expected a tfjs-layers model .* got format "durable-train\/savedmodel-weights@1"/,
    },
    {
      what: 'eager: resuming from a checkpoint a savedmodel run wrote',
      run: () => train(engine, uri('sm-run'), config({})),
      message: /was written by a `savedmodel` run; it cannot resume a tfjs-layers run/,
    },
    {
      what: 'any route: evaluating an exported model of a format no route reads',
      run: () => engine.evaluateModels({ modelUris: [uri('odd-export')], data: tiny, loss: 'categoricalCrossentropy' }),
      message: /got format "graph-model"/,
    },
    {
      what: 'any route: warmStartFrom where there is nothing',
      run: () => train(engine, uri('c'), config({ warmStartFrom: uri('nothing-here') })),
      message: /warmStartFrom .*nothing-here: found no checkpoint or model there/,
    },
    {
      what: 'a route without warm start',
      run: () => train(bare, uri('d'), config({ model: { name: 'bare' }, warmStartFrom: uri('sm-export') })),
      message: /The `bare` training route does not support warm starts/,
    },
    {
      what: 'a route without exported-model evaluation',
      run: async () => {
        fs.mkdirSync(path.join(root, 'bare-export'), { recursive: true });
        fs.writeFileSync(path.join(root, 'bare-export', 'model.json'), JSON.stringify({ format: 'bare-weights@1' }));
        fs.writeFileSync(path.join(root, 'bare-export', 'weights.bin'), Buffer.alloc(0));
        return bare.evaluateModels({ modelUris: [uri('bare-export')], data: tiny, loss: 'categoricalCrossentropy' });
      },
      message: /The `bare` training route does not support evaluating exported models/,
    },
  ];
  for (const c of cases) {
    test(c.what, async () => {
      await assert.rejects(c.run(), (err: Error) => {
        assert.ok(err instanceof NonRetryableTrainingError, `${err.name}: ${err.message}`);
        assert.match(err.message, c.message);
        return true;
      });
    });
  }

  test('nothing was trained: no checkpoint besides the one written by hand', () => {
    for (const run of ['a', 'b', 'c', 'd']) assert.ok(!fs.existsSync(path.join(root, run, 'checkpoints')), run);
    assert.deepEqual(fs.readdirSync(path.join(root, 'sm-run', 'checkpoints')), ['000000000002']);
  });

  test('the engine holds no tensors after the failures', () => {
    engine.dispose();
    bare.dispose();
    assert.equal(tf.memory().numTensors, 0);
  });
});
