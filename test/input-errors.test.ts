/**
 * Errors the same input raises again are classified non-retryable where the trainer answers
 * (src/training/input-errors.ts), and train/eval shapes are compared before the first step
 * (src/training/shape-check.ts). Pure; the end-to-end rows are in test/attacks/inputs.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isInputError, isInputErrorObject } from '../src/training/input-errors';
import { NonRetryableTrainingError } from '../src/training/protocol';
import { checkDataShapes, dataShapeMismatch } from '../src/training/shape-check';
import { TrainerError } from '../src/training/trainer-client';

/** The error `fn` throws. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  return assert.fail('nothing was thrown');
}

describe('isInputError', () => {
  test('the errors tfjs and V8 raise for a shape mismatch or an oversized allocation are the input\'s', () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [2] })] });
    const errors = [
      thrown(() => model.apply(tf.zeros([4, 784]))),
      thrown(() => model.predict(tf.zeros([4, 784]))),
      thrown(() => tf.matMul(tf.zeros([2, 3]), tf.zeros([4, 5]))),
      thrown(() => tf.add(tf.zeros([2, 3]), tf.zeros([4, 5]))),
      thrown(() => new Array(-1)),
      thrown(() => new Float32Array(2 ** 40)),
    ];
    model.dispose();
    for (const err of errors) assert.ok(isInputError(err.name, err.message), `${err.name}: ${err.message}`);
    assert.match(errors[0]!.message, /Input 0 is incompatible with layer/);
  });

  test('a Reshape whose target size is not its input\'s (raised at the first step, was retried 20 times), and any tfjs-layers ValueError', () => {
    const reshape = tf.layers.reshape({ targetShape: [27, 27, 1] });
    const err = thrown(() => reshape.apply(tf.zeros([4, 8])));
    assert.match(err.message, /Total size of new array must be unchanged/);
    assert.ok(isInputError(err.name, err.message), err.message);
    // tfjs-layers' ValueError keeps the name `Error`; its class says it is a configuration or shape error.
    assert.equal(err.name, 'Error');
    assert.equal(err.constructor.name, 'ValueError');
    assert.ok(isInputErrorObject(Object.assign(err, { message: 'some other layer configuration error' })));
    assert.equal(isInputErrorObject(new Error('ECONNRESET')), false);
  });

  test('faults are not: I/O, a lost connection, an unknown failure', () => {
    for (const [name, message] of [['Error', 'ECONNRESET'], ['Error', 'ENOENT: no such file'], ['LeaseLostError', 'lease lost'], ['Error', 'the trainer exited']]) {
      assert.equal(isInputError(name!, message!), false, message);
    }
  });

  test('the worker side maps an unclassified answer of that kind to non-retryable too', () => {
    assert.equal(new TrainerError({ name: 'RangeError', message: 'Invalid array length', nonRetryable: false }).nonRetryable, true);
    assert.equal(new TrainerError({ name: 'Error', message: 'ECONNRESET', nonRetryable: false }).nonRetryable, false);
  });
});

describe('dataShapeMismatch', () => {
  test('equal shapes pass', () => {
    assert.equal(dataShapeMismatch({ xShape: [784], yShape: [10] }, { xShape: [784], yShape: [10] }), undefined);
  });

  test('a 2-feature CSV against MNIST names both fields and both shapes, non-retryably', () => {
    const err = thrown(() => checkDataShapes({ xShape: [2], yShape: [3] }, { xShape: [784], yShape: [10] }));
    assert.ok(err instanceof NonRetryableTrainingError);
    assert.match(err.message, /`data\.eval`.*`data\.train`.*features \[2\].*got features \[784\].*\[2\].*targets .*\[10\].*\[3\]/);
  });
});
