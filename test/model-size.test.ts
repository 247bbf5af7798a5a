/**
 * The model-size estimate counts exactly the parameters tfjs builds for the built-in models, and
 * refuses a model over the limit with the field, the estimate and the limit; the monitor check
 * names unknown monitors with the run's metric names and never reads inherited properties.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTrainConfig } from '../src/config/train-config';
import { builtInModels } from '../src/training/models';
import { checkModelFits, estimateModelSize, trainerMaxBytes } from '../src/training/model-size';
import { NonRetryableTrainingError } from '../src/training/protocol';
import { unknownMonitors } from '../src/workflows/monitor-check';
import { tinyInput } from './e2e-support';

const shapes = [
  { inputShape: [784], outputUnits: 10 },
  { inputShape: [16], outputUnits: 4 },
  { inputShape: [28, 28], outputUnits: 3 },
];
const models = [
  { name: 'mlp', params: {} },
  { name: 'mlp', params: { hiddenUnits: [32, 7], dropout: 0.2 } },
  { name: 'cnn', params: {} },
  { name: 'cnn', params: { filters: [3, 5, 2], denseUnits: [9, 4] } },
  { name: 'cnn', params: { filters: [], denseUnits: [] } },
];

describe('estimateModelSize', () => {
  for (const model of models) {
    for (const shape of shapes) {
      if (model.name === 'cnn' && shape.inputShape.length === 1 && shape.inputShape[0] !== 784) continue;
      test(`${model.name} ${JSON.stringify(model.params)} on [${shape.inputShape}] counts the parameters tfjs builds`, async () => {
        const config = parseTrainConfig(tinyInput({ model }));
        const built = await builtInModels().build(config.model, { ...shape, seed: 1 });
        try {
          assert.equal(estimateModelSize(config, shape)?.parameters, built.countParams());
        } finally {
          built.dispose();
        }
      });
    }
  }

  const dense = (units: number, extra: Record<string, unknown> = {}) => ({ class_name: 'Dense', config: { units, ...extra } });
  const topologies: Array<{ name: string; layers: unknown[]; shape: { inputShape: number[]; outputUnits: number } }> = [
    { name: 'two Dense', layers: [dense(32, { batch_input_shape: [null, 784], activation: 'relu' }), dense(10, { use_bias: false })], shape: { inputShape: [784], outputUnits: 10 } },
    {
      name: 'Conv2D, pooling, batch norm, Flatten, Dropout, Dense',
      layers: [
        { class_name: 'Conv2D', config: { filters: 4, kernel_size: [3, 3], batch_input_shape: [null, 28, 28, 1] } },
        { class_name: 'MaxPooling2D', config: { pool_size: [2, 2] } },
        { class_name: 'Conv2D', config: { filters: 6, kernel_size: 5, padding: 'same', strides: 2 } },
        { class_name: 'BatchNormalization', config: {} },
        { class_name: 'Flatten', config: {} },
        { class_name: 'Dropout', config: { rate: 0.5 } },
        dense(3),
      ],
      shape: { inputShape: [28, 28, 1], outputUnits: 3 },
    },
    { name: 'Reshape, Embedding-free Dense stack', layers: [{ class_name: 'Reshape', config: { target_shape: [8, 2], batch_input_shape: [null, 16] } }, dense(5), { class_name: 'Flatten', config: {} }, dense(4)], shape: { inputShape: [16], outputUnits: 4 } },
  ];
  for (const t of topologies) {
    test(`topology ${t.name}: counts the parameters tfjs builds`, async () => {
      const topology = { class_name: 'Sequential', config: { name: 's', layers: t.layers } };
      const config = parseTrainConfig(tinyInput({ model: { topology } }));
      const built = await builtInModels().build(config.model, { ...t.shape, seed: 1 });
      try {
        assert.equal(estimateModelSize(config, t.shape)?.parameters, built.countParams());
        assert.doesNotThrow(() => checkModelFits(config, t.shape, 1e12));
      } finally {
        built.dispose();
      }
    });
  }

  test('a topology of one Dense layer of 300,000 units on 784 inputs is refused under 2 GB, naming the layer\'s units', () => {
    const topology = { class_name: 'Sequential', config: { layers: [dense(300_000, { batch_input_shape: [null, 784] }), dense(10)] } };
    const config = parseTrainConfig(tinyInput({ model: { topology } }));
    assert.throws(() => checkModelFits(config, shapes[0]!, 2e9), (err: unknown) => {
      assert.ok(err instanceof NonRetryableTrainingError);
      assert.match(err.message, /`model\.topology\.config\.layers\[0\]\.config\.units`.*DT_TRAINER_MAX_BYTES: 2000000000.*got 300000/);
      return true;
    });
  });

  test('a topology whose input or output does not fit the data is refused naming both fields and shapes', () => {
    const topology = (first: Record<string, unknown>, units = 10) => parseTrainConfig(tinyInput({ model: { topology: { class_name: 'Sequential', config: { layers: [dense(8, first), dense(units)] } } } }));
    assert.throws(() => checkModelFits(topology({ batch_input_shape: [null, 2] }), shapes[0]!, 1e12), /`model\.topology`'s input shape to be the features of `data\.train` \(\[784\]\), got \[2\]/);
    assert.throws(() => checkModelFits(topology({ batch_input_shape: [null, 784] }, 3), shapes[0]!, 1e12), /last layer to have the 10 outputs .*`data\.train`.*got \[3\]/);
  });

  test('a user model has no estimate (nothing is refused)', () => {
    assert.equal(estimateModelSize(parseTrainConfig(tinyInput({ model: { name: 'mine' } })), shapes[0]!), undefined);
    assert.doesNotThrow(() => checkModelFits(parseTrainConfig(tinyInput({ model: { name: 'mine' } })), shapes[0]!, 1));
  });

  test('hiddenUnits [1e7] on MNIST is refused naming the field, the estimate and the limit', () => {
    const config = parseTrainConfig(tinyInput({ model: { name: 'mlp', params: { hiddenUnits: [1e7] } } }));
    const limit = 8 * 2 ** 30;
    assert.throws(
      () => checkModelFits(config, shapes[0]!, limit),
      (err: unknown) => {
        assert.ok(err instanceof NonRetryableTrainingError);
        assert.match(err.message, /`model\.params\.hiddenUnits`/);
        assert.match(err.message, /\[10000000\]/);
        assert.ok(err.message.includes(`DT_TRAINER_MAX_BYTES: ${limit} bytes`), err.message);
        // 784·1e7 + 1e7 + 1e7·10 + 10 parameters, 7 floats each with adam.
        assert.ok(err.message.includes(`${7_950_000_010} parameters`), err.message);
        assert.ok(err.message.includes(`estimated ${estimateModelSize(config, shapes[0]!)!.bytes} bytes`), err.message);
        return true;
      },
    );
    assert.doesNotThrow(() => checkModelFits(parseTrainConfig(tinyInput()), shapes[0]!, limit));
  });

  test('a cnn whose image shape or depth does not fit the dataset names the field', () => {
    const cnn = (params: Record<string, unknown>) => parseTrainConfig(tinyInput({ model: { name: 'cnn', params } }));
    assert.throws(() => checkModelFits(cnn({ imageShape: [10, 10, 1] }), shapes[0]!, 1e12), /`model\.params\.imageShape`.*784 features.*\[10, 10, 1\]/);
    assert.throws(() => checkModelFits(cnn({ filters: [2, 2, 2, 2] }), shapes[0]!, 1e12), /`model\.params\.filters`.*28×28×1/);
    assert.doesNotThrow(() => checkModelFits(cnn({ filters: [2, 2, 2] }), shapes[0]!, 1e12));
  });

  test('the optimizer and batch size count', () => {
    const bytes = (hp: Record<string, unknown>) => estimateModelSize(parseTrainConfig(tinyInput({ hyperparameters: hp })), shapes[0]!)!.bytes;
    assert.ok(bytes({ optimizer: 'sgd' }) < bytes({ optimizer: 'momentum' }));
    assert.ok(bytes({ optimizer: 'momentum' }) < bytes({ optimizer: 'adam' }));
    assert.ok(bytes({ batchSize: 8 }) < bytes({ batchSize: 4096 }));
  });

  test('DT_TRAINER_MAX_BYTES, else half the memory', () => {
    assert.equal(trainerMaxBytes({}, 16e9), 8e9);
    assert.equal(trainerMaxBytes({ DT_TRAINER_MAX_BYTES: '1000' }, 16e9), 1000);
    assert.throws(() => trainerMaxBytes({ DT_TRAINER_MAX_BYTES: '1GB' }, 16e9), /`DT_TRAINER_MAX_BYTES`/);
  });
});

describe('unknownMonitors', () => {
  const metrics = { loss: 1, val_loss: 2, val_accuracy: 0.5 };
  const config = (es?: string, lr?: string) =>
    parseTrainConfig(tinyInput({ ...(es && { earlyStopping: { monitor: es } }), ...(lr && { reduceLrOnPlateau: { monitor: lr } }) }));

  test('known monitors pass', () => {
    assert.deepEqual(unknownMonitors(config('val_loss', 'val_accuracy'), metrics), []);
    assert.deepEqual(unknownMonitors(config(), metrics), []);
  });

  for (const name of ['val_acc', 'constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    test(`"${name}" is unknown, with the run's metric names`, () => {
      const issues = unknownMonitors(config(name, name), metrics);
      assert.deepEqual(issues.map((i) => i.field), ['earlyStopping.monitor', 'reduceLrOnPlateau.monitor']);
      assert.equal(issues[0]!.expected, "one of the run's metrics (loss, val_loss, val_accuracy)");
      assert.equal(issues[0]!.received, `\`${JSON.stringify(name)}\` (string)`);
    });
  }
});
