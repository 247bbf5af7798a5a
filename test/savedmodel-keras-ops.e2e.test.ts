/**
 * Issue #20: the op allow-list (src/training/savedmodel/op-allow-list.ts) against what the
 * installed TensorFlow and Keras export. Python TensorFlow from scripts/setup-bench-python.sh (as
 * test/keras-roundtrip.e2e.test.ts) exports small models of the common Keras 3 layers, losses and
 * optimizers with tools/export_trainable_savedmodel.py (test/fixtures/savedmodel/keras_layer_zoo.py:
 * Dense, Dropout, Conv1D/2D, depthwise, pooling, BatchNormalization, LayerNormalization, LSTM, GRU,
 * MultiHeadAttention; Adam, AdamW, SGD, RMSprop, Adagrad, Nadam; cross-entropies and MSE): each
 * passes the op check. The control, the hostile layer exported the same way, is refused.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { COMPUTATION_OPS, RESTORE_OPS } from '../src/training/savedmodel/op-allow-list';
import { checkSavedModelOps, UnsafeSavedModelError } from '../src/training/savedmodel/op-check';
import { ROOT, tempDir } from './helpers/temporal';

const MODELS = ['mlp-dropout-adam', 'cnn-sgd', 'normalized-cnn-sgd', 'recurrent-rmsprop', 'attention-adamw', 'regression-adagrad-mse', 'binary-nadam'];

describe('SavedModels of the common Keras layers pass the op check', { timeout: 1_200_000 }, () => {
  const out = tempDir('dt-keras-ops-');
  let python = '';
  before(() => {
    const setup = spawnSync('bash', [path.join(ROOT, 'scripts/setup-bench-python.sh')], { encoding: 'utf8' });
    assert.equal(setup.status, 0, `scripts/setup-bench-python.sh: ${setup.stderr}`);
    python = setup.stdout.trim();
    const r = spawnSync(python, [path.join(ROOT, 'test/fixtures/savedmodel/keras_layer_zoo.py'), out], { encoding: 'utf8', timeout: 900_000 });
    assert.equal(r.status, 0, `keras_layer_zoo.py: ${r.stderr.slice(-2000)}`);
  });
  after(() => fs.rmSync(out, { recursive: true, force: true }));

  for (const name of MODELS) {
    test(name, () => {
      const dir = path.join(out, name);
      assert.match(checkSavedModelOps(dir, `file://${dir}`), /^[0-9a-f]{64}$/);
    });
  }

  test('every op on the allow-list is one TensorFlow registers (no misspelt name lets an op through)', () => {
    const ops = [...COMPUTATION_OPS, ...RESTORE_OPS];
    const script = 'import sys\nfrom tensorflow.python.framework import op_def_registry\nprint(" ".join(o for o in sys.stdin.read().split() if op_def_registry.get(o) is None))';
    const r = spawnSync(python, ['-c', script], { input: ops.join(' '), encoding: 'utf8', env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' } });
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    assert.deepEqual(r.stdout.trim().split(/\s+/).filter(Boolean), [], 'listed ops that TensorFlow does not know');
  });

  test('the control: the hostile layer exported the same way is refused, naming ReadFile', () => {
    const dir = path.join(out, 'hostile-copies-a-file');
    assert.throws(() => checkSavedModelOps(dir, `file://${dir}`), (err: Error) => err instanceof UnsafeSavedModelError && /`ReadFile`/.test(err.message));
  });
});
