/**
 * Folder ownership on the real file store: no run or search folder inside another's, a search folder
 * belongs to one search identity, only its owners write there, and a resume's read checks the run.
 *
 *   node --import tsx --test test/folder-owners.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';

import { NestedFolderError, ancestorUris, assertNotNested, type AncestorOpener } from '../src/checkpoints/folder-owners';
import { RUN_JSON, SEARCH_JSON, joinUri } from '../src/checkpoints/layout';
import { openStore } from '../src/checkpoints/open-store';
import { RunIdentityMismatchError, checkRunIdentity, verifyRunIdentity } from '../src/checkpoints/run-identity';
import {
  MAX_SEARCH_OWNERS,
  NotSearchOwnerError,
  SearchIdentityMismatchError,
  SearchOwnersFullError,
  assertSearchOwner,
  claimSearchFolder,
  searchIdentityOf,
} from '../src/checkpoints/search-identity';
import { parseSearchConfig } from '../src/config/search-config';
import { parseTrainConfig } from '../src/config/train-config';
import { tempDir } from './helpers/temporal';

const run = {
  model: { name: 'mlp', params: { hiddenUnits: [32] } },
  data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 100 } },
  hyperparameters: { optimizer: 'adam', learningRate: 0.003, batchSize: 32 },
  stepsPerEpoch: 5,
  maxEpochs: 4,
  seed: 3,
};
const trainConfig = (over: Record<string, unknown> = {}) => parseTrainConfig({ ...run, ...over });
const searchConfig = (over: Record<string, unknown> = {}, base: Record<string, unknown> = {}) =>
  parseSearchConfig({ runId: 'sweep', base: { ...run, ...base }, space: { 'hyperparameters.learningRate': [0.01, 0.02] }, ...over });

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
/** A fresh folder, and an opener that stops at it (as the worker's allow-list would). */
function fresh(): { root: string; open: AncestorOpener; store: (...segments: string[]) => ReturnType<typeof openStore> } {
  const dir = tempDir('dt-owners-');
  dirs.push(dir);
  const root = pathToFileURL(dir).href;
  const open: AncestorOpener = (uri) => (uri.startsWith(root) ? openStore(uri) : undefined);
  return { root, open, store: (...segments) => openStore(joinUri(root, ...segments)) };
}

test('ancestorUris: nearest first, up to the bucket; never the file system root', () => {
  assert.deepEqual(ancestorUris('gs://b/x/y/z'), ['gs://b/x/y', 'gs://b/x', 'gs://b']);
  assert.deepEqual(ancestorUris('gs://b/x/'), ['gs://b']);
  assert.deepEqual(ancestorUris('file:///a/b/c'), ['file:///a/b', 'file:///a']);
  assert.deepEqual(ancestorUris('file:///a'), []);
  assert.deepEqual(ancestorUris('not a uri'), []);
});

test('a run folder is claimed beside others, never inside a run, inside a search, or around one', async () => {
  const { open, store } = fresh();
  await checkRunIdentity(store('prod'), trainConfig(), undefined, undefined, { beforeClaim: () => assertNotNested('run', store('prod'), open) });
  // Beside it: fine.
  await assertNotNested('run', store('other'), open);
  // Inside it, at any depth: refused, naming the run folder; nothing is written.
  for (const inner of [['prod', 'model', 'inside'], ['prod', 'rungs', 'rung-1']]) {
    const target = store(...inner);
    const err = await checkRunIdentity(target, trainConfig(), undefined, undefined, { beforeClaim: () => assertNotNested('run', target, open) }).then(
      () => assert.fail('claimed a folder inside a run'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof NestedFolderError);
    assert.match(err.message, new RegExp(`inside the run folder ${store('prod').uri}`));
    assert.equal(await target.get(RUN_JSON), undefined);
  }
  // Around it: a search (or a run) whose folder holds prod.
  await assert.rejects(assertNotNested('search', store(), open), (e: Error) => e instanceof NestedFolderError && e.message.includes(`${store('prod').uri}/${RUN_JSON}`));
  // A search in a run's folder, a run in a search's.
  await assert.rejects(assertNotNested('search', store('prod'), open), /it is a run's folder/);
  await claimSearchFolder(store('sweep'), searchConfig(), 'search-wf', open);
  await assert.rejects(assertNotNested('run', store('sweep'), open), /it is a search's folder/);
});

test('a trial folder is claimed only by a child of the search that owns it', async () => {
  const { open, store } = fresh();
  await claimSearchFolder(store('sweep'), searchConfig(), 'search-wf', open);
  // The search's child: its parent workflow is an owner.
  await assertNotNested('run', store('sweep', 'trial-3'), open, { parentWorkflowId: 'search-wf', workflowId: 'search-wf/trial-3' });
  await assertNotNested('run', store('sweep', 'trial-3'), open, { parentWorkflowId: 'search-wf', workflowId: 'search-wf/trial-3/rung-2' });
  // No parent (a caller starting trainModel), another parent, not a trial folder, or a child the
  // search did not name after the trial (a retrainModel whose workflow id is an owner's, its run id
  // `trial-3`): refused.
  const cases = [
    [['sweep', 'trial-3'], undefined, undefined],
    [['sweep', 'trial-3'], 'retrain-wf', 'retrain-wf/trial-3'],
    [['sweep', 'other'], 'search-wf', 'search-wf/other'],
    [['sweep', 'trial-3', 'x'], 'search-wf', 'search-wf/trial-3'],
    [['sweep', 'trial-3'], 'search-wf', 'trial-3'],
    [['sweep', 'trial-3'], 'search-wf', undefined],
    [['sweep', 'trial-3'], 'search-wf', 'search-wf/trial-4'],
    [['sweep', 'trial-3'], 'search-wf', 'search-wf/trial-3/rung-x'],
  ] as const;
  for (const [segments, parent, own] of cases) {
    await assert.rejects(assertNotNested('run', store(...segments), open, { parentWorkflowId: parent, workflowId: own }), (e: Error) => e instanceof NestedFolderError && e.message.includes(`search folder ${store('sweep').uri}`), `${segments.join('/')} for ${parent} as ${own}`);
  }
  // A trial that holds run.json is a run folder like any other: nothing nests inside it.
  await checkRunIdentity(store('sweep', 'trial-3'), trainConfig());
  await assert.rejects(assertNotNested('run', store('sweep', 'trial-3', 'rungs', 'rung-1'), open, { parentWorkflowId: 'search-wf', workflowId: 'search-wf/trial-3' }), /inside the run folder/);
  // A search started again over its own trial folders (from before search.json) may claim it.
  const { open: open2, store: store2 } = fresh();
  await checkRunIdentity(store2('old', 'trial-1'), trainConfig());
  assert.deepEqual(await claimSearchFolder(store2('old'), searchConfig(), 'wf', open2), { created: true });
});

test('a search folder belongs to one identity: the same input joins the owners, another fails naming the fields', async () => {
  const { open, store } = fresh();
  const folder = store('sweep');
  assert.deepEqual(await claimSearchFolder(folder, searchConfig(), 'first', open), { created: true });
  assert.deepEqual(await claimSearchFolder(folder, searchConfig(), 'first', open), { created: false });
  // What only runs the search differently is not its identity.
  assert.deepEqual(await claimSearchFolder(folder, searchConfig({ maxParallel: 2, failureBudget: 0, continueAsNewEvery: 3 }, { checkpoint: { keepLast: 1 }, timeouts: { heartbeatSeconds: 9 } }), 'again', open), { created: false });
  assert.deepEqual(JSON.parse((await folder.get(SEARCH_JSON))!.toString()).owners, ['first', 'again']);
  const before = await folder.get(SEARCH_JSON);
  const err = await claimSearchFolder(folder, searchConfig({ metric: 'val_accuracy' }, { model: { name: 'mlp', params: { hiddenUnits: [4] } } }), 'attacker', open).then(
    () => assert.fail('a different search claimed the folder'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof SearchIdentityMismatchError);
  assert.deepEqual(err.differences, ['`base.model.params.hiddenUnits` is [32] there, [4] here', '`metric` is "val_loss" there, "val_accuracy" here', '`mode` is "min" there, "max" here']);
  assert.deepEqual(await folder.get(SEARCH_JSON), before);
  // Only owners write results; a folder from before search.json has no owner to check.
  await assertSearchOwner(folder, 'again');
  await assert.rejects(assertSearchOwner(folder, 'attacker'), NotSearchOwnerError);
  await assertSearchOwner(store('unclaimed'), 'anyone');
});

test('the identity of a search: the strategy options it takes, not the ones it ignores', () => {
  const grid = searchIdentityOf(searchConfig());
  assert.equal('seed' in grid, false);
  const halving = (over: Record<string, unknown>) => searchIdentityOf(searchConfig({ strategy: 'halving', minEpochs: 1, maxTrials: 2, ...over }));
  assert.notDeepEqual(halving({ eta: 2 }), halving({ eta: 3 }));
  assert.notDeepEqual(halving({ seed: 1 }), halving({ seed: 2 }));
  assert.deepEqual(Object.keys(grid.base as object).sort(), ['data', 'hyperparameters', 'maxEpochs', 'model', 'seed', 'stepsPerEpoch']);
});

test('owners are bounded: a full search.json refuses one more search, and no owner drops out', async () => {
  const { open, store } = fresh();
  for (let i = 0; i < MAX_SEARCH_OWNERS; i++) await claimSearchFolder(store('s'), searchConfig(), `wf-${i}`, open);
  await assert.rejects(claimSearchFolder(store('s'), searchConfig(), 'wf-late', open), SearchOwnersFullError);
  const owners = JSON.parse((await store('s').get(SEARCH_JSON))!.toString()).owners as string[];
  assert.equal(owners.length, MAX_SEARCH_OWNERS);
  assert.equal(owners[0], 'wf-0', 'the first (possibly still running) search keeps its right to write');
  await assertSearchOwner(store('s'), 'wf-0');
});

test("verifyRunIdentity reads a run folder's identity without claiming it", async () => {
  const { store } = fresh();
  assert.equal(await verifyRunIdentity(store('r'), trainConfig()), 'absent');
  assert.equal(fs.existsSync(path.join(new URL(store('r').uri).pathname, RUN_JSON)), false);
  await checkRunIdentity(store('r'), trainConfig());
  assert.equal(await verifyRunIdentity(store('r'), trainConfig({ resume: true, maxEpochs: 2, checkpoint: { keepLast: 1 } })), 'same');
  await assert.rejects(verifyRunIdentity(store('r'), trainConfig({ model: { name: 'mlp', params: { hiddenUnits: [1] } }, seed: 9 })), (e: Error) =>
    e instanceof RunIdentityMismatchError && e.message.includes('`model.params.hiddenUnits` is [32] there, [1] here') && e.message.includes('`seed` is 3 there, 9 here'));
});

test('a run.json that pins a streamed dataset: the activities, which cannot list shards, check the rest', async () => {
  const { store } = fresh();
  await checkRunIdentity(store('s'), trainConfig(), undefined, { shards: [{ uri: 'gs://b/d/0.csv', size: 10, generation: '1' }] });
  assert.equal(await verifyRunIdentity(store('s'), trainConfig({ resume: true })), 'same');
  await assert.rejects(verifyRunIdentity(store('s'), trainConfig({ seed: 4 })), /`seed` is 3 there, 4 here/);
});

/** A run record as run-identity.ts writes it (only its format matters to the nesting check). */
const RECORD = Buffer.from(JSON.stringify({ format: 'durable-train/run@1', fingerprint: 'x', identity: {} }));

test("a user's own file called run.json (an input beside the runs) does not make its folder a run folder", async () => {
  const { open, store } = fresh();
  await store('work').put(RUN_JSON, Buffer.from(JSON.stringify({ model: { name: 'mlp' }, maxEpochs: 3 })));
  await store('work').put(SEARCH_JSON, Buffer.from('not json'));
  await checkRunIdentity(store('work', 'runs', 'r1'), trainConfig(), undefined, undefined, { beforeClaim: () => assertNotNested('run', store('work', 'runs', 'r1'), open) });
  assert.ok(await store('work', 'runs', 'r1').get(RUN_JSON), 'claimed');
  // A real record still refuses.
  await assert.rejects(assertNotNested('run', store('work', 'runs', 'r1', 'inner'), open), NestedFolderError);
});

test('two folders claimed at the same moment, one inside the other: the claim re-checked after its write fails and removes its record', async () => {
  const { open, store } = fresh();
  const outer = store('race');
  const inner = store('race', 'inner');
  let checks = 0;
  // The outer claim's first check passes; the inner run's run.json lands right after it (the race the
  // hostile review hit with two runs started together); the check after the write sees it.
  const beforeClaim = async (): Promise<void> => {
    checks += 1;
    await assertNotNested('run', outer, open);
    if (checks === 1) await inner.putIfVersion(RUN_JSON, RECORD, undefined);
  };
  await assert.rejects(checkRunIdentity(outer, trainConfig(), undefined, undefined, { beforeClaim }), NestedFolderError);
  assert.equal(checks, 2, 'checked before and after the write');
  assert.equal(await outer.get(RUN_JSON), undefined, 'the failed claim removed its run.json');
  assert.ok(await inner.get(RUN_JSON), "the other run's record stands");

  // A search folder claimed while a run appears inside it: the same.
  const s = store('race-search');
  const planted = store('race-search', 'x');
  const racing: AncestorOpener = (uri) => {
    if (uri === s.uri) void planted.putIfVersion(RUN_JSON, RECORD, undefined).catch(() => undefined);
    return open(uri);
  };
  await planted.putIfVersion(RUN_JSON, RECORD, undefined);
  await assert.rejects(claimSearchFolder(s, searchConfig(), 'sweep-1', racing), NestedFolderError);
  assert.equal(await s.get(SEARCH_JSON), undefined);
});
