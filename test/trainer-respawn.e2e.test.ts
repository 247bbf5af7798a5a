/**
 * A trainer process that dies after it had started (SIGKILL, a native crash) is started again at
 * once, not on the next request (issue #22 point 4): the retried attempt, a retry backoff later,
 * then finds TensorFlow loaded. One that never answered is not restarted in a loop, and close()
 * restarts nothing. Real trainer processes (trainer-client.ts), no server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DescribeResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import { waitFor } from './helpers/temporal';

describe('trainer respawn', { timeout: 180_000 }, () => {
  test('a killed trainer is replaced without a request, and the replacement answers', async (t) => {
    const trainer = new TrainerClient({ backend: 'cpu', log: () => undefined });
    try {
      const first = await trainer.request<DescribeResult>({ type: 'describe' });
      assert.equal(first.pid, trainer.pid);
      process.kill(first.pid, 'SIGKILL');
      const replaced = await waitFor(async () => (trainer.pid !== undefined && trainer.pid !== first.pid ? trainer.pid : undefined), 10_000, 'a new trainer process without any request');
      // Ready before anyone asks: a request after it loaded is answered at once.
      const loadedAt = Date.now();
      const again = await trainer.request<DescribeResult>({ type: 'describe' });
      t.diagnostic(`trainer ${first.pid} killed; ${replaced} started at once; its first answer took ${Date.now() - loadedAt} ms after the restart was seen`);
      assert.equal(again.pid, replaced);
      await trainer.close();
      assert.equal(trainer.pid, undefined, 'close() ends the trainer and starts none');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(trainer.pid, undefined);
    } finally {
      await trainer.close();
    }
  });

  test('a trainer that fails at start is not restarted until the next request', async () => {
    const trainer = new TrainerClient({ backend: 'no-such-backend', log: () => undefined });
    try {
      await assert.rejects(trainer.request({ type: 'describe' }));
      await waitFor(async () => trainer.pid === undefined || undefined, 10_000, 'the failed trainer to exit');
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(trainer.pid, undefined, 'no new trainer started by itself');
    } finally {
      await trainer.close();
    }
  });
});
