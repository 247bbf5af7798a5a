/**
 * Background checkpoints (src/training/step-loop.ts), through the real engine and eager route on
 * tfjs's `cpu` backend and a real file:// store. The store is wrapped only to slow down or fail
 * one object's write, as a slow or failing disk would, and to log when writes start and end:
 *   - a mid-epoch checkpoint's write overlaps the next steps, one write at a time, in step order; a
 *     checkpoint due meanwhile costs training only its snapshot, and the request returns only
 *     once the checkpoint of its target step is committed;
 *   - a failed background write fails the request, and nothing after it is committed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { checkpointObjectKey, MANIFEST, WEIGHTS_BIN } from '../src/checkpoints/layout';
import { openStore } from '../src/checkpoints/open-store';
import type { CheckpointStore, CreateObjectsOptions, NewObject } from '../src/checkpoints/store';
import { parseTrainConfig } from '../src/config/train-config';
import { selectBackend, type BackendInfo } from '../src/training/backend';
import { builtInDatasets } from '../src/training/dataset-registry';
import { Engine } from '../src/training/engine';
import { builtInModels } from '../src/training/models';

const tiny = { name: 'synthetic', params: { features: 4, classes: 3, size: 64 } };
const config = parseTrainConfig({
  model: { name: 'mlp', params: { hiddenUnits: [4] } },
  data: { train: tiny, eval: tiny },
  hyperparameters: { optimizer: 'adam', learningRate: 0.01, batchSize: 8 },
  stepsPerEpoch: 12,
  maxEpochs: 1,
  checkpoint: { everySteps: 4, everySeconds: 0 },
});

/** A real store whose write of `slowKey` waits `delayMs` and of `failKey` throws; every event is logged. */
function wrapped(inner: CheckpointStore, events: string[], opts: { slowKey?: string; delayMs?: number; failKey?: string }): CheckpointStore {
  let writing = 0;
  let mostAtOnce = 0;
  const store: CheckpointStore & { mostAtOnce: () => number } = Object.assign(Object.create(inner) as CheckpointStore, {
    mostAtOnce: () => mostAtOnce,
    async putIfVersion(key: string, data: Buffer, expected: string | undefined): Promise<void> {
      writing++;
      mostAtOnce = Math.max(mostAtOnce, writing);
      try {
        if (key === opts.failKey) throw new Error(`injected write failure of ${key}`);
        if (key === opts.slowKey) await new Promise((resolve) => setTimeout(resolve, opts.delayMs));
        await inner.putIfVersion(key, data, expected);
        events.push(`stored ${key}`);
      } finally {
        writing--;
      }
    },
    // The store's batch of create-only writes (a checkpoint's objects, then its manifest): one write.
    async createObjects(objects: readonly NewObject[], options?: CreateObjectsOptions): Promise<boolean[]> {
      writing++;
      mostAtOnce = Math.max(mostAtOnce, writing);
      try {
        if (objects.some((o) => o.key === opts.failKey)) throw new Error(`injected write failure of ${opts.failKey}`);
        if (objects.some((o) => o.key === opts.slowKey)) await new Promise((resolve) => setTimeout(resolve, opts.delayMs));
        const created = await inner.createObjects!(objects, options);
        objects.forEach((o, i) => created[i] && events.push(`stored ${o.key}`));
        return created;
      } finally {
        writing--;
      }
    },
  });
  return store;
}

describe('background checkpoints (engine, eager route, cpu backend, file://)', () => {
  let backend: BackendInfo;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-background-'));
  const engines: Engine[] = [];
  before(async () => {
    backend = await selectBackend('cpu');
  });
  after(() => {
    engines.forEach((e) => e.dispose());
    fs.rmSync(root, { recursive: true, force: true });
  });
  const engine = (openStore_: (uri: string) => CheckpointStore): Engine => {
    const e = new Engine({ models: builtInModels(), datasets: builtInDatasets(), openStore: openStore_, backend, log: () => undefined });
    engines.push(e);
    return e;
  };

  test('a mid-epoch write overlaps the next steps, one at a time; the target step is committed before the result', async () => {
    const runUri = pathToFileURL(path.join(root, 'slow')).href;
    const events: string[] = [];
    let store: (CheckpointStore & { mostAtOnce?: () => number }) | undefined;
    const e = engine((uri) => (store = wrapped(openStore(uri), events, { slowKey: checkpointObjectKey(4, WEIGHTS_BIN), delayMs: 400 })));
    const result = await e.train(
      { runUri, config, targetStep: 12, learningRate: 0.01 },
      (p) => events.push(`progress ${p.step}`),
      () => false,
    );
    const committed4 = events.indexOf(`stored ${checkpointObjectKey(4, MANIFEST)}`);
    assert.ok(committed4 >= 0, `checkpoint 4 was committed: ${events.join(', ')}`);
    // Progress at step 4 is reported once the state is snapshotted, before its (slow) write is done.
    assert.ok(events.indexOf('progress 4') < committed4, `training went on while checkpoint 4 was written: ${events.join(', ')}`);
    // Checkpoint 8 came due while 4 was still being written: snapshotted and queued, training went
    // on (its progress is reported after the snapshot), and the writes kept step order.
    assert.ok(events.indexOf('progress 8') < committed4, `checkpoint 8 did not wait for 4's write: ${events.join(', ')}`);
    assert.ok(committed4 < events.indexOf(`stored ${checkpointObjectKey(8, MANIFEST)}`), `written in step order: ${events.join(', ')}`);
    assert.equal(store!.mostAtOnce!(), 1, 'never two writes at once');
    assert.equal(result.checkpointStep, 12);
    assert.ok(fs.existsSync(path.join(root, 'slow', checkpointObjectKey(12, MANIFEST))), 'the target step is committed when the result arrives');
    const t = result.checkpointTiming!;
    assert.equal(t.checkpoints, 3, 'checkpoints 4, 8 and 12');
    assert.ok(t.bytes > 0 && t.writeMs >= 400, `timing recorded the slow write: ${JSON.stringify(t)}`);
  });

  test('a failed background write fails the request, and nothing after it is committed', async () => {
    const runUri = pathToFileURL(path.join(root, 'failing')).href;
    const events: string[] = [];
    const e = engine((uri) => wrapped(openStore(uri), events, { failKey: checkpointObjectKey(4, WEIGHTS_BIN) }));
    await assert.rejects(
      e.train({ runUri, config, targetStep: 12, learningRate: 0.01 }, () => undefined, () => false),
      /injected write failure of checkpoints\/0+4\/weights\.bin/,
    );
    for (const step of [4, 8, 12]) {
      assert.ok(!fs.existsSync(path.join(root, 'failing', checkpointObjectKey(step, MANIFEST))), `no checkpoint ${step}`);
    }
  });
});
