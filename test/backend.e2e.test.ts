/**
 * Issue #7, backend selection: the real trainer process (TrainerClient) on each installed backend,
 * `auto`, and the two ways to ask for something impossible (a backend that is not installed, a
 * DT_BACKEND value that is not a backend). Each must say so by name, never fall back silently.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DescribeResult } from '../src/training/protocol';
import { TrainerClient, TrainerError } from '../src/training/trainer-client';

async function describeTrainer(options: ConstructorParameters<typeof TrainerClient>[0]): Promise<DescribeResult> {
  const trainer = new TrainerClient({ log: () => undefined, ...options });
  try {
    return await trainer.request<DescribeResult>({ type: 'describe' });
  } finally {
    await trainer.close();
  }
}

async function startFailure(options: ConstructorParameters<typeof TrainerClient>[0]): Promise<TrainerError> {
  const trainer = new TrainerClient({ log: () => undefined, ...options });
  try {
    await trainer.request<DescribeResult>({ type: 'describe' });
  } catch (err) {
    return err as TrainerError;
  } finally {
    await trainer.close();
  }
  assert.fail('the trainer should have refused to start');
}

describe('backend selection (real trainer process)', () => {
  const expected = [
    { preference: 'tensorflow', name: 'tensorflow', package: '@tensorflow/tfjs-node' },
    { preference: 'wasm', name: 'wasm', package: '@tensorflow/tfjs-backend-wasm' },
    { preference: 'cpu', name: 'cpu', package: '@tensorflow/tfjs-backend-cpu' },
    // tfjs-node-gpu is not installed here and tfjs-node is: auto picks native TensorFlow on CPU.
    { preference: 'auto', name: 'tensorflow', package: '@tensorflow/tfjs-node' },
  ];
  for (const e of expected) {
    test(`backend ${e.preference}: the trainer reports ${e.name} (${e.package})`, async (t) => {
      const d = await describeTrainer({ backend: e.preference });
      t.diagnostic(`describe.backend: ${JSON.stringify(d.backend)}`);
      assert.equal(d.backend.name, e.name);
      assert.equal(d.backend.package, e.package);
      assert.equal(d.backend.gpu, false);
      assert.ok(d.models.includes('mlp') && d.models.includes('cnn'));
    });
  }

  test('auto says why it skipped tfjs-node-gpu', async () => {
    const d = await describeTrainer({ backend: 'auto' });
    assert.ok(d.backend.notes.some((n) => n.includes('@tensorflow/tfjs-node-gpu')), d.backend.notes.join('\n'));
  });

  test('DT_BACKEND in the environment is honoured when no option is given', async () => {
    const d = await describeTrainer({ env: { DT_BACKEND: 'cpu' } });
    assert.equal(d.backend.name, 'cpu');
  });

  test('an explicitly requested backend that is not installed fails, naming it (no fallback)', async () => {
    // scripts/setup-native.sh --gpu may have built it: point the trainer at a folder without it.
    const err = await startFailure({ backend: 'tensorflow-gpu', env: { DT_TFJS_NODE_GPU_DIR: '/nonexistent/tfjs-node-gpu' } });
    assert.ok(err instanceof TrainerError, String(err));
    assert.equal(err.name, 'BackendUnavailableError');
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /Backend `tensorflow-gpu` \(DT_BACKEND\) is not available/);
    assert.match(err.message, /@tensorflow\/tfjs-node-gpu/);
  });

  test('a DT_BACKEND that is not a backend fails with the accepted values and the bad one', async () => {
    const err = await startFailure({ env: { DT_BACKEND: 'tensorflw' } });
    assert.ok(err instanceof TrainerError, String(err));
    assert.equal(err.nonRetryable, true);
    assert.equal(
      err.message,
      'Expected `DT_BACKEND` to be one of auto, tensorflow-gpu, tensorflow, wasm, cpu, got "tensorflw"',
    );
  });
});
