/**
 * The eager route's written-out forward and backward passes (src/training/eager/explicit.ts) train
 * like the gradient tape over tfjs-layers' apply() (DT_EAGER_FUSED=0): the same route, model,
 * seed, batches and dropout masks, real tfjs on the trainer's backend, and after every step the
 * losses, and at the end every weight and optimizer slot, agree within float rounding. A model the
 * passes do not cover keeps the tape.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { parseTrainConfig, type TrainConfig } from '../src/config/train-config';
import { backendPreferenceFromEnv, selectBackend, type BackendInfo } from '../src/training/backend';
import { BatchAssembler } from '../src/training/batch';
import type { Dataset } from '../src/training/dataset';
import { builtInDatasets } from '../src/training/dataset-registry';
import { adamApply, adamInternals } from '../src/training/eager/adam';
import { EagerRoute } from '../src/training/eager/route';
import { lossFunction, trainingLoss } from '../src/training/eager/step';
import { builtInModels } from '../src/training/models';

interface Trained {
  losses: number[];
  weights: Float32Array[];
  slots: Float32Array[];
  explicit: boolean;
}

/** A Sequential topology tfjs-layers builds the same way every time (seeded initializers). */
function regressionTopology(): Record<string, unknown> {
  const init = (seed: number) => ({ kernelInitializer: tf.initializers.glorotUniform({ seed }) });
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [784], units: 24, activation: 'relu', ...init(11) }),
      tf.layers.dropout({ rate: 0.25, seed: 5 }),
      tf.layers.dense({ units: 10, activation: 'linear', ...init(12) }),
    ],
  });
  const topology = model.toJSON(null, false) as Record<string, unknown>;
  model.dispose();
  return topology;
}

describe('eager route: written-out gradients against the tape', () => {
  let backend: BackendInfo;
  let train: Dataset;
  before(async () => {
    backend = await selectBackend(backendPreferenceFromEnv());
    train = await builtInDatasets().load({ name: 'mnist', split: 'train' });
  });

  async function trainWith(config: TrainConfig, explicit: boolean, steps: number): Promise<Trained> {
    const before = process.env.DT_EAGER_FUSED;
    process.env.DT_EAGER_FUSED = explicit ? '1' : '0';
    const route = new EagerRoute({ models: builtInModels(), backend });
    const session = await route.openFresh({ runUri: 'file:///unused', config, learningRate: config.hyperparameters.learningRate }, train);
    try {
      const stepper = route.stepper(session, config);
      const engaged = trainingLoss(session.model, config.loss, lossFunction(config.loss)).explicit !== undefined;
      const batch = new BatchAssembler(train, config.hyperparameters.batchSize, config.seed);
      const losses: number[] = [];
      for (let step = 1; step <= steps; step++) {
        batch.fill(step);
        const loss = stepper(step, batch);
        losses.push(loss.dataSync()[0]!);
        loss.dispose();
      }
      const weights = session.model.getWeights().map((w) => w.dataSync() as Float32Array);
      const named = await session.optimizer.getWeights();
      const slots = named.slice(1).map((n) => n.tensor.dataSync() as Float32Array);
      named[0]!.tensor.dispose();
      return { losses, weights, slots, explicit: engaged };
    } finally {
      route.closeSession(session);
      if (before === undefined) delete process.env.DT_EAGER_FUSED;
      else process.env.DT_EAGER_FUSED = before;
    }
  }

  /** Largest |a - b| / (|b| + floor) over two lists of arrays of the same shapes. */
  function maxRelativeDiff(a: ArrayLike<number>[], b: ArrayLike<number>[], floor: number): number {
    assert.equal(a.length, b.length);
    let worst = 0;
    a.forEach((x, i) => {
      const y = b[i]!;
      assert.equal(x.length, y.length);
      for (let k = 0; k < x.length; k++) worst = Math.max(worst, Math.abs(x[k]! - y[k]!) / (Math.abs(y[k]!) + floor));
    });
    return worst;
  }

  const cases: Array<{ name: string; input: Record<string, unknown>; steps: number }> = [
    {
      name: 'MLP with dropout, Adam, categorical crossentropy',
      input: { model: { name: 'mlp', params: { hiddenUnits: [48, 32], dropout: 0.2 } }, hyperparameters: { optimizer: 'adam', learningRate: 0.001, batchSize: 32 } },
      steps: 25,
    },
    {
      name: 'the built-in CNN, Adam, categorical crossentropy',
      input: { model: { name: 'cnn', params: {} }, hyperparameters: { optimizer: 'adam', learningRate: 0.001, batchSize: 16 } },
      steps: 12,
    },
    {
      name: 'a linear-output topology with dropout, momentum, mean squared error',
      input: {
        model: { topology: regressionTopology() },
        loss: 'meanSquaredError',
        hyperparameters: { optimizer: 'momentum', learningRate: 0.01, momentum: 0.9, batchSize: 32 },
      },
      steps: 25,
    },
  ];

  for (const c of cases) {
    test(`${c.name}: losses, weights and slots equal within float rounding`, async (t) => {
      const config = parseTrainConfig({
        data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 100 } },
        stepsPerEpoch: c.steps,
        maxEpochs: 1,
        seed: 7,
        ...c.input,
      });
      const tape = await trainWith(config, false, c.steps);
      const written = await trainWith(config, true, c.steps);
      assert.equal(tape.explicit, false, 'DT_EAGER_FUSED=0 keeps the tape');
      assert.equal(written.explicit, true, 'the written-out passes cover this model');
      const lossDiff = maxRelativeDiff([written.losses], [tape.losses], 1e-3);
      const weightDiff = maxRelativeDiff(written.weights, tape.weights, 1e-2);
      const slotDiff = maxRelativeDiff(written.slots, tape.slots, 1e-4);
      t.diagnostic(`losses ${tape.losses[0]!.toFixed(4)} → ${tape.losses.at(-1)!.toFixed(4)}; max relative difference: loss ${lossDiff.toExponential(2)}, weights ${weightDiff.toExponential(2)}, slots ${slotDiff.toExponential(2)}`);
      // Training moved the weights far beyond these tolerances (a wrong gradient fails them).
      assert.ok(tape.losses.at(-1)! < tape.losses[0]!, `the loss went down: ${tape.losses.join(', ')}`);
      assert.ok(lossDiff < 1e-4, `losses: ${written.losses.join(', ')} vs ${tape.losses.join(', ')}`);
      assert.ok(weightDiff < 1e-3, `weights differ by ${weightDiff}`);
      assert.ok(slotDiff < 1e-2, `optimizer slots differ by ${slotDiff}`);
    });
  }

  test('a model with a layer the passes do not cover keeps the tape', async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [4], units: 3, activation: 'tanh' }), tf.layers.dense({ units: 2, activation: 'softmax' })],
    });
    const normed = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [4], units: 3 }), tf.layers.batchNormalization(), tf.layers.dense({ units: 2, activation: 'softmax' })],
    });
    try {
      assert.equal(trainingLoss(model, 'categoricalCrossentropy', lossFunction('categoricalCrossentropy'), true).explicit, undefined);
      assert.equal(trainingLoss(normed, 'categoricalCrossentropy', lossFunction('categoricalCrossentropy'), true).explicit, undefined);
      // Softmax output under mean squared error: the loss is not taken from logits, so the tape.
      const mlp = await builtInModels().build({ name: 'mlp', params: {} }, { inputShape: [4], outputUnits: 2, seed: 1 });
      assert.equal(trainingLoss(mlp, 'meanSquaredError', lossFunction('meanSquaredError'), true).explicit, undefined);
      assert.notEqual(trainingLoss(mlp, 'categoricalCrossentropy', lossFunction('categoricalCrossentropy'), true).explicit, undefined);
      mlp.dispose();
    } finally {
      model.dispose();
      normed.dispose();
    }
  });

  test("Adam: a small variable's update in JavaScript equals the kernels' update, bit for bit", () => {
    const shapes = [[7, 5], [300], [3, 3, 2, 4]];
    const run = (jsMax: string): Float32Array[] => {
      const before = process.env.DT_ADAM_JS_MAX;
      process.env.DT_ADAM_JS_MAX = jsMax;
      const optimizer = tf.train.adam(0.01);
      const variables = shapes.map((shape, i) => tf.variable(tf.randomUniform(shape, -1, 1, 'float32', 100 + i), true, `adam-js-${jsMax}-${i}`));
      try {
        for (let step = 0; step < 6; step++) {
          tf.tidy(() => {
            const grads: tf.NamedTensorMap = {};
            variables.forEach((v, i) => (grads[v.name] = tf.randomUniform(v.shape, -(10 ** (i - 1)), 10 ** (i - 1), 'float32', step * 10 + i)));
            adamApply(adamInternals(optimizer)!, variables, grads);
          });
        }
        const o = adamInternals(optimizer)!;
        return [
          ...variables.map((v) => v.dataSync() as Float32Array),
          ...o.accumulatedFirstMoment.map((m) => m!.variable.dataSync() as Float32Array),
          ...o.accumulatedSecondMoment.map((m) => m!.variable.dataSync() as Float32Array),
          o.accBeta1.dataSync() as Float32Array,
        ];
      } finally {
        tf.dispose(variables);
        optimizer.dispose();
        if (before === undefined) delete process.env.DT_ADAM_JS_MAX;
        else process.env.DT_ADAM_JS_MAX = before;
      }
    };
    const kernels = run('0');
    const js = run('1000000');
    assert.equal(js.length, kernels.length);
    js.forEach((a, i) => assert.deepEqual(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(kernels[i]!.buffer, kernels[i]!.byteOffset, kernels[i]!.byteLength), `array ${i}`));
    // The variables moved (a no-op update would pass the comparison too).
    assert.ok(Math.abs(js[0]![0]! - tf.tidy(() => tf.randomUniform(shapes[0]!, -1, 1, 'float32', 100).dataSync()[0]!)) > 1e-3);
  });
});
