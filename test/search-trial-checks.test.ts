/**
 * Which trials a search's start already checked (src/workflows/search-trial-checks.ts, pure): a
 * trial naming only the up-front trials' model and dataset names and URIs, in the search's folder,
 * is covered; one naming anything else (another dataset, another data URI, a warm start, a data
 * window to resolve, another folder) is not, and a search input carrying `searchTrial` is refused.
 *
 *   node --import tsx --test test/search-trial-checks.test.ts
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { parseTrainConfig } from '../src/config/train-config';
import { trialInput } from '../src/workflows/search-space';
import { checkedBySearchStart, startChecks } from '../src/workflows/search-trial-checks';
import { validateSearchOrFail } from '../src/workflows/search/validate';
import { tinyInput } from './e2e-support';

const SEARCH_URI = 'file:///runs/search-1';
const base = tinyInput({ maxEpochs: 1, data: { train: { name: 'csv', params: { uri: 'file:///data/train.csv', label: 'y' } }, eval: { name: 'csv', params: { uri: 'file:///data/eval.csv', label: 'y' } } } });
const child = (over: Record<string, unknown> = {}, runId = 'trial-0001', searchUri = SEARCH_URI) => trialInput({ ...base, ...over }, { 'hyperparameters.learningRate': 0.05 }, { runId, searchUri });
const checked = startChecks([parseTrainConfig(trialInput(base, { 'hyperparameters.learningRate': 0.01 }, { runId: 'trial-0001', searchUri: SEARCH_URI }))]);

describe('search-trial-checks', () => {
  test('a trial with other hyperparameters but the same names and URIs, in the search folder, was checked', () => {
    assert.equal(checkedBySearchStart(checked, SEARCH_URI, child({}, 'trial-0042')), true);
  });

  test('a trial naming anything the start did not check keeps its own checks', () => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['another data URI', { data: { train: { name: 'csv', params: { uri: 'file:///elsewhere/train.csv', label: 'y' } }, eval: (base.data as { eval: unknown }).eval } }],
      ['another dataset name', { data: { train: { name: 'synthetic', params: { size: 64 } }, eval: (base.data as { eval: unknown }).eval } }],
      ['another model name', { model: { name: 'cnn', params: {} } }],
      ['a warm start', { warmStartFrom: 'file:///runs/other/checkpoints/4' }],
      ['a data window to resolve', { data: { train: { name: 'sharded', params: { uri: 'file:///data/{date}/*.jsonl', window: 2 } }, eval: (base.data as { eval: unknown }).eval } }],
    ];
    for (const [what, over] of cases) assert.equal(checkedBySearchStart(checked, SEARCH_URI, child(over)), false, what);
    assert.equal(checkedBySearchStart(checked, SEARCH_URI, child({}, 'trial-0001', 'file:///runs/other-search')), false, 'another folder');
    assert.equal(checkedBySearchStart(checked, SEARCH_URI, { ...child(), stepsPerEpoch: -1 }), false, 'an input its own validation refuses');
  });

  test('a search whose base carries searchTrial is refused, naming base.searchTrial', () => {
    const input = { base: { ...base, searchTrial: { mlflow: false } }, strategy: 'random', maxTrials: 2, space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.1] } } };
    assert.throws(
      () => validateSearchOrFail(input),
      (err: unknown) => err instanceof ApplicationFailure && err.type === 'InvalidConfig' && err.nonRetryable && /base\.searchTrial/.test(err.message),
    );
  });

  test('searchTrial is checked like every field: an object with a boolean mlflow', () => {
    assert.deepEqual(parseTrainConfig({ ...child(), searchTrial: { mlflow: true } }).searchTrial, { mlflow: true });
    assert.throws(() => parseTrainConfig({ ...child(), searchTrial: { mlflow: 'yes' } }), /searchTrial\.mlflow/);
    assert.throws(() => parseTrainConfig({ ...child(), searchTrial: { mlflow: false, skip: true } }), /searchTrial\.skip/);
  });
});
