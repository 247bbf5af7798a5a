/** hyperparameterSearch's pure parts: input validation, trial generation, ranking and halving rungs (the strategies themselves: search-strategies.test.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { parseSearchConfig } from '../src/config/search-config';
import { ConfigError } from '../src/config/validate';
import { applyParams, compareRanked, trialInput } from '../src/workflows/search-space';
import { planTrials } from '../src/workflows/search';
import { gridTrialAt, gridTrials } from '../src/workflows/search/grid';
import { halvingSchedule, selectSurvivors } from '../src/workflows/search/halving';
import { randomTrials, unitDraw } from '../src/workflows/search/random';
import { validateSearchOrFail } from '../src/workflows/hyperparameter-search';
import { tinyInput } from './e2e-support';

const GRID_SPACE = { 'hyperparameters.learningRate': [0.1, 0.01, 0.001], 'model.params.hiddenUnits': [[32], [64]] };

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.field}: ${i.expected} | ${i.received}`);
    if (err instanceof ApplicationFailure) {
      assert.equal(err.type, 'InvalidConfig');
      assert.equal(err.nonRetryable, true);
      return (err.details![0] as Array<{ field: string; expected: string; received: string }>).map((i) => `${i.field}: ${i.expected} | ${i.received}`);
    }
    throw err;
  }
  assert.fail('expected a validation error');
}

describe('grid', () => {
  test('expands in input order, the last path fastest', () => {
    const config = parseSearchConfig({ base: tinyInput(), space: GRID_SPACE });
    assert.deepEqual(planTrials(config), [
      { 'hyperparameters.learningRate': 0.1, 'model.params.hiddenUnits': [32] },
      { 'hyperparameters.learningRate': 0.1, 'model.params.hiddenUnits': [64] },
      { 'hyperparameters.learningRate': 0.01, 'model.params.hiddenUnits': [32] },
      { 'hyperparameters.learningRate': 0.01, 'model.params.hiddenUnits': [64] },
      { 'hyperparameters.learningRate': 0.001, 'model.params.hiddenUnits': [32] },
      { 'hyperparameters.learningRate': 0.001, 'model.params.hiddenUnits': [64] },
    ]);
  });

  test('gridTrialAt agrees with the expansion; maxTrials keeps the first ones', () => {
    const config = parseSearchConfig({ base: tinyInput(), space: { a: [1, 2, 3], b: ['x', 'y'], c: [true, false] }, maxTrials: 5 });
    const all = gridTrials(config.space);
    assert.equal(all.length, 12);
    all.forEach((t, i) => assert.deepEqual(gridTrialAt(config.space, i), t));
    assert.deepEqual(planTrials(config), all.slice(0, 5));
  });

  test('a trial input sets each dotted path, its runId and its checkpoint folder, and leaves the base alone', () => {
    const base = tinyInput({ checkpoint: { keepLast: 2 } });
    const before = JSON.stringify(base);
    const input = trialInput(base, { 'hyperparameters.learningRate': 0.5, 'model.params.hiddenUnits': [4, 4], 'reduceLrOnPlateau.factor': 0.5 }, {
      runId: 'trial-3',
      searchUri: 'file:///runs/s1',
      maxEpochs: 4,
      resume: true,
    }) as Record<string, any>;
    assert.equal(JSON.stringify(base), before);
    assert.equal(input.hyperparameters.learningRate, 0.5);
    assert.equal(input.hyperparameters.batchSize, 32, 'siblings kept');
    assert.deepEqual(input.model, { name: 'mlp', params: { hiddenUnits: [4, 4] } });
    assert.deepEqual(input.reduceLrOnPlateau, { factor: 0.5 }, 'a missing object is created');
    assert.equal(input.runId, 'trial-3');
    assert.deepEqual(input.checkpoint, { keepLast: 2, uri: 'file:///runs/s1' });
    assert.equal(input.maxEpochs, 4);
    assert.equal(input.resume, true);
    assert.deepEqual(applyParams({ a: { b: 1 } }, { 'a.c': [1] }), { a: { b: 1, c: [1] } });
  });
});

describe('random', () => {
  const space = {
    'hyperparameters.learningRate': { loguniform: [1e-4, 1e-1] },
    'hyperparameters.momentum': { uniform: [0.5, 0.99] },
    'hyperparameters.batchSize': { int: [8, 64] },
    'hyperparameters.optimizer': { choice: ['adam', 'sgd', 'momentum'] },
  };
  const plan = (seed: number, maxTrials = 20) => planTrials(parseSearchConfig({ base: tinyInput(), space, strategy: 'random', seed, maxTrials }));

  test('the same seed draws the same trials, another seed others', () => {
    assert.deepEqual(plan(7), plan(7));
    assert.notDeepEqual(plan(7), plan(8));
    // Trial n draws the same whatever maxTrials is.
    assert.deepEqual(plan(7, 5), plan(7, 20).slice(0, 5));
  });

  test('draws stay in their ranges and cover them', () => {
    const trials = plan(3, 400);
    const lr = trials.map((t) => t['hyperparameters.learningRate'] as number);
    const bs = trials.map((t) => t['hyperparameters.batchSize'] as number);
    assert.ok(lr.every((v) => v >= 1e-4 && v <= 1e-1));
    assert.ok(lr.filter((v) => v < 1e-3).length > 80 && lr.filter((v) => v > 1e-2).length > 80, 'log-uniform: each decade gets about a third');
    assert.ok(bs.every((v) => Number.isInteger(v) && v >= 8 && v <= 64));
    assert.equal(Math.min(...bs), 8);
    assert.equal(Math.max(...bs), 64);
    assert.deepEqual(new Set(trials.map((t) => t['hyperparameters.optimizer'])), new Set(['adam', 'sgd', 'momentum']));
    const u = Array.from({ length: 2000 }, (_, i) => unitDraw(1, i, 'x'));
    assert.ok(u.every((v) => v >= 0 && v < 1));
    const mean = u.reduce((a, b) => a + b, 0) / u.length;
    assert.ok(Math.abs(mean - 0.5) < 0.03, `mean ${mean}`);
  });

  test('a list of values in a random space is a uniform choice', () => {
    const trials = randomTrials(parseSearchConfig({ base: tinyInput(), space: { seed: [1, 2] }, strategy: 'random', seed: 5 }).space, 5, 50);
    assert.deepEqual(new Set(trials.map((t) => t.seed)), new Set([1, 2]));
  });
});

describe('ranking and successive halving', () => {
  test('ranks by metric in the mode, missing metrics last, ties by trial number', () => {
    const trials = [
      { trial: 1, value: 0.5 },
      { trial: 2, value: null },
      { trial: 3, value: 0.2 },
      { trial: 4, value: 0.5 },
      { trial: 5, value: NaN },
      { trial: 6, value: 0.9 },
    ];
    assert.deepEqual([...trials].sort(compareRanked('min')).map((t) => t.trial), [3, 1, 4, 6, 2, 5]);
    assert.deepEqual([...trials].sort(compareRanked('max')).map((t) => t.trial), [6, 1, 4, 3, 2, 5]);
  });

  test('keeps the right top-k, ties broken by the lower trial number, never a trial without a metric', () => {
    const trials = [
      { trial: 1, value: 0.3 },
      { trial: 2, value: 0.1 },
      { trial: 3, value: 0.3 },
      { trial: 4, value: 0.3 },
      { trial: 5, value: null },
      { trial: 6, value: 0.7 },
    ];
    assert.deepEqual(selectSurvivors(trials, 2, 'min').map((t) => t.trial), [2, 1]);
    assert.deepEqual(selectSurvivors(trials, 3, 'min').map((t) => t.trial), [2, 1, 3]);
    assert.deepEqual(selectSurvivors(trials, 2, 'max').map((t) => t.trial), [6, 1]);
    assert.deepEqual(selectSurvivors(trials, 10, 'min').map((t) => t.trial), [2, 1, 3, 4, 6]);
  });

  test('rungs: 1/eta of the trials go on with eta× the epochs, capped at maxEpochs', () => {
    assert.deepEqual(halvingSchedule(9, 3, 1, 9), [
      { rung: 1, trials: 9, epochs: 1 },
      { rung: 2, trials: 3, epochs: 3 },
      { rung: 3, trials: 1, epochs: 9 },
    ]);
    assert.deepEqual(halvingSchedule(4, 2, 1, 100), [
      { rung: 1, trials: 4, epochs: 1 },
      { rung: 2, trials: 2, epochs: 2 },
      { rung: 3, trials: 1, epochs: 4 },
    ]);
    assert.deepEqual(halvingSchedule(27, 3, 2, 10), [
      { rung: 1, trials: 27, epochs: 2 },
      { rung: 2, trials: 9, epochs: 6 },
      { rung: 3, trials: 3, epochs: 10 },
    ]);
    assert.deepEqual(halvingSchedule(2, 3, 1, 9), [{ rung: 1, trials: 2, epochs: 1 }]);
    assert.deepEqual(halvingSchedule(9, 3, 5, 5), [{ rung: 1, trials: 9, epochs: 5 }]);
  });
});

describe('validation', () => {
  test('names every bad field of the search input', () => {
    const issues = issuesOf(() =>
      parseSearchConfig({
        base: tinyInput({ runId: 'x' }),
        space: {
          'hyperparameters.learningRate': { uniform: [1, 0] },
          'stepsPerEpoch.x': [1],
          'checkpoint.uri': ['file:///a'],
          'a..b': [1],
          'model.params.hiddenUnits': [],
        },
        strategy: 'random',
        maxParallel: 0,
        failureBudget: -1,
        minEpochs: 2,
        typo: 1,
      }),
    );
    const fields = issues.map((i) => i.split(':')[0]);
    assert.deepEqual(fields.sort(), [
      'base.runId', 'failureBudget', 'maxParallel', 'minEpochs', 'space.a..b', 'space.checkpoint.uri', 'space.hyperparameters.learningRate.uniform',
      'space.model.params.hiddenUnits', 'space.stepsPerEpoch.x', 'typo',
    ].sort());
    assert.ok(issues.some((i) => /space\.stepsPerEpoch\.x: a path through objects \(`stepsPerEpoch` is not an object in `base`\)/.test(i)), issues.join('\n'));
  });

  test('grid takes lists only; halving needs minEpochs within base.maxEpochs', () => {
    assert.match(issuesOf(() => parseSearchConfig({ base: tinyInput(), space: { seed: { int: [1, 3] } } })).join('\n'), /space\.seed: a list of values \(the `grid` strategy/);
    const h = issuesOf(() => parseSearchConfig({ base: tinyInput({ maxEpochs: 4 }), space: { seed: [1, 2] }, strategy: 'halving', minEpochs: 5 }));
    assert.deepEqual(h, ['minEpochs: a whole number at most `base.maxEpochs` (4), the budget of the last rung | `5` (number)']);
    assert.match(issuesOf(() => parseSearchConfig({ base: tinyInput(), space: { seed: [1] }, strategy: 'halving' })).join('\n'), /^minEpochs: a whole number from 1 and up \| nothing/);
  });

  test('every trial config is validated: bad values and unknown fields are named once, with the first trial that has them', () => {
    const issues = issuesOf(() =>
      validateSearchOrFail({
        base: tinyInput(),
        space: { 'hyperparameters.learningRate': [0.01, -1], 'hyperparameters.learningRat': [1, 2], 'model.params.hiddenUnits': [[8], [16]] },
      }),
    );
    assert.deepEqual(issues, [
      'trial-1: hyperparameters.learningRat: one of the known fields (optimizer, learningRate, batchSize, momentum) | an unknown field',
      'trial-5: hyperparameters.learningRate: a number greater than 0 and at most 1000 | `-1` (number)',
    ]);
  });

  test('a valid search plans its trials and rungs', () => {
    const v = validateSearchOrFail({ base: tinyInput({ maxEpochs: 9 }), space: GRID_SPACE, strategy: 'halving', minEpochs: 1, maxParallel: 3 });
    assert.equal(v.trials.length, 6);
    assert.deepEqual(v.rungs.map((r) => [r.trials, r.epochs]), [[6, 1], [2, 3]]);
    assert.equal(v.config.metric, 'val_loss');
    assert.equal(v.config.mode, 'min');
    assert.equal(parseSearchConfig({ base: tinyInput(), space: GRID_SPACE, metric: 'val_accuracy' }).mode, 'max');
  });
});
