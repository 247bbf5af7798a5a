/**
 * PBT's pure decisions (src/workflows/search/pbt.ts): round budgets, exploit/explore given a
 * round's results and a seed, the rule that a trial without a committed checkpoint at the round is
 * never a donor, perturbations within the space, the scheduler's rounds (decided once, when every
 * living trial has reported; failures leave the population) and its state through JSON round-trips.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../src/config/validate';
import { parseSearchConfig, type SpaceEntry } from '../src/config/search-config';
import { createSearch, plannedTrials } from '../src/workflows/search';
import { pbtEpochs, pbtRound, perturbParams, perturbValue, type PbtReport } from '../src/workflows/search/pbt';
import { unitDraw } from '../src/workflows/search/random';
import { tinyInput } from './e2e-support';

const LR = 'hyperparameters.learningRate';
const space: SpaceEntry[] = [{ path: LR, dimension: { kind: 'loguniform', lo: 1e-4, hi: 1 } }];
const report = (trial: number, value: number | null, eligible = true): PbtReport => ({ trial, value, eligible, params: { [LR]: trial / 100 } });
const opts = (seed: number, quantile = 0.25) => ({ round: 1, quantile, mode: 'min' as const, seed, space });
const pbt = (extra: Record<string, unknown> = {}) =>
  parseSearchConfig({ base: tinyInput({ maxEpochs: 5 }), strategy: 'pbt', roundEpochs: 2, maxTrials: 4, space: { [LR]: { loguniform: [1e-4, 1] } }, ...extra });

describe('PBT: rounds and decisions', () => {
  test('rounds of roundEpochs, the last one ending at maxEpochs', () => {
    assert.deepEqual(pbtEpochs(2, 5), [2, 4, 5]);
    assert.deepEqual(pbtEpochs(2, 6), [2, 4, 6]);
    assert.deepEqual(pbtEpochs(3, 3), [3]);
  });

  test('the bottom quantile copies a top trial and perturbs its values; the rest go on', () => {
    const reports = [report(1, 0.1), report(2, 0.4), report(3, 0.2), report(4, 0.3)];
    for (const seed of [1, 2, 3, 4, 5]) {
      const decisions = pbtRound(reports, opts(seed));
      assert.deepEqual(decisions.map((d) => [d.trial, d.action]), [[1, 'promote'], [2, 'exploit'], [3, 'promote'], [4, 'promote']]);
      const d = decisions[1]!;
      assert.ok(d.action === 'exploit');
      assert.equal(d.from, 1);
      assert.equal(d.rung, 2);
      const factor = unitDraw(seed, 2, `pbt/1/${LR}`) >= 0.5 ? 1.2 : 0.8;
      assert.equal(d.params[LR], 0.01 * factor);
    }
    // Seeded: the same inputs decide the same; across seeds both directions occur.
    assert.deepEqual(pbtRound(reports, opts(7)), pbtRound(reports, opts(7)));
    const lrs = new Set([1, 2, 3, 4, 5, 6, 7, 8].map((seed) => (pbtRound(reports, opts(seed))[1] as { params: Record<string, number> }).params[LR]));
    assert.deepEqual([...lrs].sort(), [0.008, 0.012]);
  });

  test('a trial with no committed checkpoint at the round (ended early) is never a donor', () => {
    // Trial 1 is best but early-stopped: with quantile 0.25 it is the whole top, so nobody exploits.
    const reports = [report(1, 0.1, false), report(2, 0.4), report(3, 0.2), report(4, 0.3)];
    assert.deepEqual(pbtRound(reports, opts(1)).map((d) => [d.trial, d.action]), [[2, 'promote'], [3, 'promote'], [4, 'promote']]);
    // With quantile 0.5 the top is trials 1 and 3: every seed picks 3, never 1.
    for (let seed = 1; seed <= 20; seed++) {
      const exploits = pbtRound(reports, opts(seed, 0.5)).filter((d) => d.action === 'exploit');
      assert.deepEqual(exploits.map((d) => [d.trial, d.action === 'exploit' && d.from]), [[2, 3], [4, 3]]);
    }
  });

  test('a trial without a metric is in the bottom; a population of one never exploits', () => {
    const decisions = pbtRound([report(1, 0.1), report(2, null), report(3, 0.2), report(4, 0.3)], opts(1));
    assert.deepEqual(decisions.filter((d) => d.action === 'exploit').map((d) => d.trial), [2]);
    assert.deepEqual(pbtRound([report(1, 0.1)], opts(1)), [{ trial: 1, action: 'promote', rung: 2 }]);
  });

  test('perturbations stay within the space: clamped ranges, neighbouring list values, whole numbers move', () => {
    assert.equal(perturbValue({ path: 'a', dimension: { kind: 'uniform', lo: 0, hi: 1 } }, 0.9, 0.9), 1);
    assert.equal(perturbValue({ path: 'a', dimension: { kind: 'loguniform', lo: 0.01, hi: 1 } }, 0.011, 0.1), 0.01);
    assert.equal(perturbValue({ path: 'a', dimension: { kind: 'values', values: [16, 32, 64] } }, 32, 0.9), 64);
    assert.equal(perturbValue({ path: 'a', dimension: { kind: 'values', values: [16, 32, 64] } }, 16, 0.1), 16);
    assert.equal(perturbValue({ path: 'a', dimension: { kind: 'int', lo: 1, hi: 10 } }, 2, 0.9), 3);
    assert.equal(perturbValue({ path: 'a', dimension: { kind: 'int', lo: 1, hi: 10 } }, 1, 0.1), 1);
    assert.deepEqual(perturbParams(space, { [LR]: 0.5, other: 'kept' }, 1, 1, 1).other, 'kept');
  });
});

describe('PBT: the scheduler', () => {
  const result = (rung: number, value: number, epochs = [2, 4, 5][rung - 1]!, runStatus = 'completed') => ({ rung, value, epochs, runStatus, params: { [LR]: 0.01 } });

  test('a round is decided when every living trial has reported it, once; JSON state resumes mid-round', () => {
    const config = pbt();
    assert.equal(plannedTrials(config), 4);
    const { scheduler } = createSearch(config, 4);
    assert.deepEqual(scheduler.progress().rungs.map((r) => r.epochs), [2, 4, 5]);
    assert.equal(scheduler.maxEpochsAt(1), 2);
    assert.deepEqual(scheduler.onTrialResult(2, result(1, 0.4)), [{ trial: 2, action: 'pause' }]);
    assert.deepEqual(scheduler.onTrialResult(1, result(1, 0.1)), [{ trial: 1, action: 'pause' }]);
    const saved = scheduler.getState();
    const resumed = createSearch(config, 4, { searcher: null, scheduler: JSON.parse(JSON.stringify(saved)) }).scheduler;
    for (const s of [scheduler, resumed]) {
      assert.deepEqual(s.onTrialResult(3, result(1, 0.2)), [{ trial: 3, action: 'pause' }]);
      const last = s.onTrialResult(4, result(1, 0.3));
      assert.deepEqual(last.map((d) => [d.trial, d.action]), [[1, 'promote'], [2, 'exploit'], [3, 'promote'], [4, 'promote']]);
    }
    assert.deepEqual(scheduler.getState(), resumed.getState());
    // A pending trial stopped after the round was decided does not decide it again.
    assert.deepEqual(scheduler.onTrialError(2, 1), []);
    assert.deepEqual(scheduler.onTrialResult(1, result(2, 0.1)), [{ trial: 1, action: 'pause' }]);
    assert.deepEqual(scheduler.onTrialResult(3, result(2, 0.2)), [{ trial: 3, action: 'pause' }]);
    assert.deepEqual(scheduler.onTrialResult(4, result(2, 0.3)).map((d) => [d.trial, d.action]), [[1, 'promote'], [3, 'promote'], [4, 'exploit']]);
    assert.deepEqual(scheduler.onTrialResult(1, result(3, 0.1)), [{ trial: 1, action: 'continue' }]);
  });

  test('a failed trial leaves the population and completes its round; an early-stopped one completes and is no donor', () => {
    const { scheduler } = createSearch(pbt({ quantile: 0.5, maxTrials: 5 }), 5);
    assert.deepEqual(scheduler.onTrialResult(1, result(1, 0.05, 1, 'early-stopped')), [{ trial: 1, action: 'continue' }]);
    scheduler.onTrialResult(2, result(1, 0.4));
    scheduler.onTrialResult(3, result(1, 0.2));
    scheduler.onTrialResult(4, result(1, 0.3));
    // Top half of the four ranked: 1 (no checkpoint at epoch 2) and 3; the bottom half copies 3.
    const decisions = scheduler.onTrialError(5, 1);
    assert.deepEqual(decisions.map((d) => [d.trial, d.action, d.action === 'exploit' ? d.from : null]), [[2, 'exploit', 3], [3, 'promote', null], [4, 'exploit', 3]]);
  });

  test('input: roundEpochs is required and at most base.maxEpochs; quantile in (0, 0.5]; other strategies take neither', () => {
    const issues = (input: Record<string, unknown>) => {
      try {
        parseSearchConfig(input);
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.issues.map((i) => i.field);
      }
    };
    const base = tinyInput({ maxEpochs: 5 });
    assert.deepEqual(issues({ base, strategy: 'pbt', space: { [LR]: [0.1] } }), ['roundEpochs']);
    assert.deepEqual(issues({ base, strategy: 'pbt', roundEpochs: 6, space: { [LR]: [0.1] } }), ['roundEpochs']);
    assert.deepEqual(issues({ base, strategy: 'pbt', roundEpochs: 2, quantile: 0.6, space: { [LR]: [0.1] } }), ['quantile']);
    assert.deepEqual(issues({ base, strategy: 'asha', eta: 2, minEpochs: 1, roundEpochs: 2, quantile: 0.2, space: { [LR]: [0.1] } }), ['roundEpochs', 'quantile']);
    assert.deepEqual(pbt().quantile, 0.25);
  });
});
