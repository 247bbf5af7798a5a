/**
 * Retention that keeps what a run still needs, and collection of leftovers, on the real stores.
 *
 *   node --import tsx --test test/retention.e2e.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import type { EarlyStoppingConfig } from '../src/config/train-config';
import { listCheckpointSteps, readCheckpoint, writeCheckpoint } from '../src/checkpoints/format';
import { FileCheckpointStore } from '../src/checkpoints/fs-store';
import { GcsCheckpointStore } from '../src/checkpoints/gcs-store';
import { checkpointKey, checkpointObjectKey } from '../src/checkpoints/layout';
import { applyRetention, collectLeftovers } from '../src/checkpoints/retention';
import type { CheckpointStore } from '../src/checkpoints/store';
import { initialEarlyStopping, restoreEpoch, stepEarlyStopping, type EarlyStoppingState } from '../src/workflows/callbacks';
import { protectedSteps } from '../src/workflows/protected-steps';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { tempDir } from './helpers/temporal';

function objectsFor(step: number): Map<string, Buffer> {
  return new Map([
    ['model.json', Buffer.from(JSON.stringify({ step }))],
    ['weights.bin', Buffer.from(`weights of step ${step}`.repeat(16))],
    ['optimizer.bin', Buffer.from(`optimizer of step ${step}`)],
    ['state.json', Buffer.from(JSON.stringify({ step }))],
  ]);
}

/** Flips one byte of an object through the store, as a bad disk or a partial upload would. */
async function damage(store: CheckpointStore, key: string): Promise<void> {
  const data = (await store.get(key))!;
  data[5] = data[5]! ^ 0x01;
  await store.put(key, data);
}

function retentionSuite(name: string, newStore: () => Promise<CheckpointStore>): void {
  void describe(`${name}: retention`, () => {
    test('keepLast 1, minDelta 0.05, patience 2, val_loss 1.0/0.97/0.96: the checkpoint early stopping restores survives', async () => {
      const store = await newStore();
      const stepsPerEpoch = 10;
      const es: EarlyStoppingConfig = { monitor: 'val_loss', mode: 'min', minDelta: 0.05, patience: 2, baseline: null, restoreBestWeights: true, startFromEpoch: 0 };
      const config = { earlyStopping: es, stepsPerEpoch };
      let state: { best: { step: number; value: number } | null; earlyStopping: EarlyStoppingState } = { best: null, earlyStopping: initialEarlyStopping() };
      let stopped = false;
      for (const [i, valLoss] of [1.0, 0.97, 0.96].entries()) {
        const epoch = i + 1;
        const step = epoch * stepsPerEpoch;
        await writeCheckpoint(store, step, objectsFor(step));
        // As the workflow does: evaluateCheckpoint protects the steps decided before this epoch's bookkeeping, plus its own step.
        await applyRetention(store, 1, [...protectedSteps(config, state), step]);
        const best = state.best === null || valLoss < state.best.value ? { step, value: valLoss } : state.best;
        const next = stepEarlyStopping(es, state.earlyStopping, epoch, { val_loss: valLoss });
        state = { best, earlyStopping: next.state };
        stopped = next.stop;
      }
      assert.equal(stopped, true, 'early stopping fires after epoch 3');
      const restore = restoreEpoch(es, state.earlyStopping);
      assert.equal(restore, 1, 'Keras restores epoch 1 (0.97 and 0.96 are not better by minDelta)');
      assert.equal(state.best?.step, 30, 'the plain best is epoch 3: protecting only it would have deleted epoch 1');
      // finalizeRun: exports modelStep and runs retention once more with the same protection.
      const modelStep = restore! * stepsPerEpoch;
      await applyRetention(store, 1, [...protectedSteps(config, state), modelStep]);
      assert.equal((await readCheckpoint(store, modelStep)).ok, true, 'the exported checkpoint is still there');
      assert.deepEqual(await listCheckpointSteps(store), [10, 30]);
    });

    test('keepLast 1 with a damaged byte in the newest: the previous good checkpoint is kept', async () => {
      const store = await newStore();
      for (const step of [10, 20, 30]) await writeCheckpoint(store, step, objectsFor(step));
      await damage(store, checkpointObjectKey(30, 'weights.bin'));
      const logs: string[] = [];
      const deleted = await applyRetention(store, 1, [], { log: (m) => logs.push(m) });
      assert.deepEqual(deleted, [10], 'only what is older than the newest verified one goes');
      assert.equal((await readCheckpoint(store, 20)).ok, true, 'the newest verified checkpoint stays');
      assert.deepEqual(await listCheckpointSteps(store), [20, 30], 'the damaged one stays for the retry to rewrite');
      assert.match(logs.join('\n'), /000000000030 does not verify \(weights\.bin fails its checksum/);
      // Nothing verifies at all: nothing is deleted.
      await damage(store, checkpointObjectKey(20, 'optimizer.bin'));
      assert.deepEqual(await applyRetention(store, 1, []), []);
      assert.deepEqual(await listCheckpointSteps(store), [20, 30]);
    });

    test('leftovers of killed and losing writes are collected; a write in progress is not', async () => {
      const store = await newStore();
      for (const step of [10, 30]) await writeCheckpoint(store, step, objectsFor(step));
      // A torn write below the newest committed step, and one above it (may still be running).
      for (const [n, d] of objectsFor(20)) if (n !== 'state.json') await store.put(checkpointObjectKey(20, n), d);
      await store.put(checkpointObjectKey(40, 'weights.bin'), Buffer.from('in progress'));
      // A losing writer's copy inside a committed step, in its own writer folder.
      const loser = checkpointObjectKey(30, 'w-000000000001-abcdef/weights.bin');
      await store.put(loser, Buffer.from('a loser'));
      const removed = await collectLeftovers(store);
      assert.deepEqual(removed.sort(), [...['model.json', 'optimizer.bin', 'weights.bin'].map((n) => checkpointObjectKey(20, n)), loser].sort());
      assert.deepEqual(await store.list(`${checkpointKey(40)}/`), [checkpointObjectKey(40, 'weights.bin')]);
      for (const step of [10, 30]) assert.equal((await readCheckpoint(store, step)).ok, true);
    });
  });
}

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const newDir = (): string => {
  const dir = tempDir('dt-retention-');
  dirs.push(dir);
  return dir;
};
retentionSuite('file store', async () => new FileCheckpointStore(pathToFileURL(newDir()).href));

test('file store: old temporary files and stale lock files are collected, fresh ones are not', async () => {
  const dir = newDir();
  const store = new FileCheckpointStore(pathToFileURL(dir).href, { staleLockMs: 30_000 });
  await writeCheckpoint(store, 10, objectsFor(10));
  const ckptDir = path.join(dir, checkpointKey(10));
  const old = (Date.now() - 3_600_000) / 1000;
  const plant = (file: string, age: 'old' | 'fresh'): void => {
    fs.writeFileSync(file, 'x');
    if (age === 'old') fs.utimesSync(file, old, old);
  };
  plant(path.join(ckptDir, '.dt-tmp-4242-0123456789ab'), 'old');
  plant(path.join(ckptDir, '.dt-tmp-4243-fresh0000000'), 'fresh');
  plant(path.join(dir, '.dt-lock-latest.json'), 'old');
  plant(path.join(dir, '.dt-lock-lease.json'), 'fresh');
  const removed = await collectLeftovers(store);
  assert.deepEqual(removed.sort(), [`${checkpointKey(10)}/.dt-tmp-4242-0123456789ab`, '.dt-lock-latest.json'].sort());
  assert.ok(fs.existsSync(path.join(ckptDir, '.dt-tmp-4243-fresh0000000')), 'a temp file of a write in progress stays');
  assert.ok(fs.existsSync(path.join(dir, '.dt-lock-lease.json')), 'a lock held right now stays');
  assert.equal((await readCheckpoint(store, 10)).ok, true);
});

void describe('GCS emulator', () => {
  let emu: GcsEmulator;
  let n = 0;
  before(async () => {
    emu = await startGcsEmulator({ buckets: ['retention'], backend: 'memory' });
  });
  after(async () => {
    await emu?.dispose();
  });
  retentionSuite('GCS store', async () => new GcsCheckpointStore(`gs://retention/run-${process.pid}-${n++}`, { storage: emu.storage }));
});
