/**
 * Run identity on the real file store: a run folder belongs to one trajectory.
 *
 *   node --import tsx --test test/run-identity.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';

import { retrainRunId, uniqueRetrainRunId } from '../src/config/retrain-config';
import { parseTrainConfig } from '../src/config/train-config';
import { RUN_JSON } from '../src/checkpoints/layout';
import { openStore } from '../src/checkpoints/open-store';
import { RunIdentityMismatchError, checkRunIdentity, fingerprintOf, runIdentityOf } from '../src/checkpoints/run-identity';
import { tempDir } from './helpers/temporal';

const base = {
  runId: 'r1',
  model: { name: 'mlp', params: { hiddenUnits: [64], dropout: 0.2 } },
  data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 200 } },
  hyperparameters: { optimizer: 'adam', learningRate: 0.003, batchSize: 32 },
  stepsPerEpoch: 30,
  maxEpochs: 2,
  seed: 9,
};
const config = (over: Record<string, unknown> = {}) => parseTrainConfig({ ...base, ...over });

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
function freshStore() {
  const dir = tempDir('dt-identity-');
  dirs.push(dir);
  return openStore(pathToFileURL(dir).href);
}

test('the first input records run.json; the same input (any key order) goes on', async () => {
  const store = freshStore();
  assert.deepEqual(await checkRunIdentity(store, config()), { created: true });
  const recorded = JSON.parse((await store.get(RUN_JSON))!.toString());
  assert.equal(recorded.fingerprint, fingerprintOf(runIdentityOf(config())));
  const reordered = parseTrainConfig({ seed: 9, stepsPerEpoch: 30, maxEpochs: 2, hyperparameters: { batchSize: 32, learningRate: 0.003, optimizer: 'adam' }, data: base.data, model: base.model, runId: 'r1' });
  assert.deepEqual(await checkRunIdentity(store, reordered), { created: false });
});

test('what does not change the trajectory may change: maxEpochs, early stopping, checkpoint policy, timeouts', async () => {
  const store = freshStore();
  await checkRunIdentity(store, config());
  const later = config({
    maxEpochs: 9,
    earlyStopping: { monitor: 'val_loss', patience: 1 },
    checkpoint: { everySteps: 5, keepLast: 1 },
    timeouts: { heartbeatSeconds: 7 },
    continueAsNewEvery: 3,
  });
  assert.deepEqual(await checkRunIdentity(store, later), { created: false });
});

test('a different model, data, hyperparameters, seed or stepsPerEpoch fails naming every field that differs', async () => {
  const store = freshStore();
  await checkRunIdentity(store, config());
  const other = config({
    model: { name: 'mlp', params: { hiddenUnits: [32], dropout: 0.2 } },
    hyperparameters: { optimizer: 'adam', learningRate: 0.01, batchSize: 32 },
    seed: 10,
    stepsPerEpoch: 40,
  });
  const err = await checkRunIdentity(store, other).then(
    () => assert.fail('expected a mismatch'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof RunIdentityMismatchError);
  assert.deepEqual(err.differences, [
    '`hyperparameters.learningRate` is 0.003 there, 0.01 here',
    '`model.params.hiddenUnits` is [64] there, [32] here',
    '`seed` is 9 there, 10 here',
    '`stepsPerEpoch` is 30 there, 40 here',
  ]);
  assert.match(err.message, /was started with a different input: .*hiddenUnits.*new run id/);
  assert.match(err.message, new RegExp(store.uri.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  // run.json still holds the first identity.
  assert.equal(JSON.parse((await store.get(RUN_JSON))!.toString()).fingerprint, fingerprintOf(runIdentityOf(config())));
});

test('resume continues only the same trajectory; a warm start into a used folder is refused; run.json keeps the first identity', async () => {
  const store = freshStore();
  await checkRunIdentity(store, config());
  // Halving's later rungs: the same input with resume and more epochs goes on.
  assert.deepEqual(await checkRunIdentity(store, config({ resume: true, maxEpochs: 9 })), { created: false });
  await assert.rejects(checkRunIdentity(store, config({ resume: true, seed: 11 })), (e: RunIdentityMismatchError) => e.differences.join() === '`seed` is 9 there, 11 here');
  await assert.rejects(
    checkRunIdentity(store, config({ warmStartFrom: 'file:///tmp/champion/model/model.json' })),
    (e: RunIdentityMismatchError) => e.differences.some((d) => d.startsWith('`warmStartFrom` is null there')),
  );
  assert.equal(JSON.parse((await store.get(RUN_JSON))!.toString()).identity.seed, 9);
});

test('retrain run ids cannot collide: a/b, a:b, a b and the model/workflow split all differ', () => {
  const ids = [
    uniqueRetrainRunId('m', 'a/b'),
    uniqueRetrainRunId('m', 'a:b'),
    uniqueRetrainRunId('m', 'a b'),
    uniqueRetrainRunId('m', 'a-b'),
    uniqueRetrainRunId('m-a', 'b'),
    uniqueRetrainRunId('m', 'x'.repeat(300)),
    uniqueRetrainRunId('m', `${'x'.repeat(299)}y`),
  ];
  assert.equal(retrainRunId('m', 'a/b'), retrainRunId('m', 'a:b'), 'the old mapping collides (kept for workflows already running)');
  assert.equal(new Set(ids).size, ids.length, ids.join(' '));
  for (const id of ids) assert.match(id, /^[A-Za-z0-9._-]{1,128}$/);
  assert.equal(uniqueRetrainRunId('m', 'a-b'), 'm-a-b', 'an id that lost nothing stays as it was');
  assert.match(uniqueRetrainRunId('mnist', 'nightly-2026-11-27T03:00:00Z'), /^mnist-nightly-2026-11-27T03-00-00Z-[0-9a-f]{16}$/);
  assert.equal(uniqueRetrainRunId('m', 'a/b'), uniqueRetrainRunId('m', 'a/b'), 'stable');
});
