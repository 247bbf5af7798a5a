/**
 * The start-time bound of strategies that keep trials in their state (ASHA, halving): a search that
 * stores its rows must not refuse what the search kept whole in state accepted before the log
 * (2,000 trials), and grid and random are never bounded by it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { storedStateIssues } from '../src/workflows/search/start';
import { childWorkflowId, newTrial } from '../src/workflows/search/state';
import type { SearchConfig } from '../src/config/search-config';

const searchUri = 'file:///data/checkpoints/my-search';
const params = { 'hyperparameters.learningRate': 0.001 };
const sample = (planned: number) => {
  const row = { ...newTrial(searchUri, planned, params as never), status: 'paused', workflowId: childWorkflowId('my-search', planned, 9), value: 0.123456789012345, epochs: 100, step: 100000, runStatus: 'early-stopped' };
  return { ...row, modelUri: `${row.runUri}/model/model.json` };
};
const config = (strategy: string) => ({ strategy, eta: 3, minEpochs: 1, base: { maxEpochs: 27 }, maxTrials: 2000 }) as unknown as SearchConfig;

test('asha and halving searches of 2,000 trials (the cap before the log) still start', () => {
  for (const strategy of ['asha', 'halving']) {
    assert.deepEqual(storedStateIssues(config(strategy), 2000, sample(2000), params), [], strategy);
  }
});

test('an asha search past its bound is refused naming maxTrials, the bound and why', () => {
  const [issue, ...rest] = storedStateIssues(config('asha'), 100_000, sample(100_000), params);
  assert.equal(rest.length, 0);
  assert.equal(issue?.field, 'maxTrials');
  assert.match(issue!.expected, /^at most \d+ trials for the `asha` strategy: it keeps every trial it may still promote/);
  const bound = Number(/at most (\d+)/.exec(issue!.expected)![1]);
  assert.ok(bound >= 2000 && bound < 100_000, `bound ${bound}`);
  assert.equal(issue?.received, '100000 trials');
});

test('grid and random keep constant state: no bound at any number of trials', () => {
  for (const strategy of ['grid', 'random']) assert.deepEqual(storedStateIssues(config(strategy), 1_000_000, sample(1_000_000), params), [], strategy);
});
