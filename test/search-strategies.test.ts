/**
 * The searchers and schedulers of hyperparameterSearch (src/workflows/search/), pure: the order of
 * suggestions, their state through a JSON round-trip, and successive halving driven through the
 * scheduler interface against a plain re-statement of the rungs it ran before the split.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSearchConfig, type SearchConfig } from '../src/config/search-config';
import type { TrialRow } from '../src/config/search-types';
import { ConfigError } from '../src/config/validate';
import { createSearch, planTrials, plannedTrials, STRATEGIES, type Searcher } from '../src/workflows/search';
import { gridSearcher, gridTrials } from '../src/workflows/search/grid';
import { halvingSchedule, selectSurvivors } from '../src/workflows/search/halving';
import { legacyHalvingState, migrateLegacyState, type LegacySearchState } from '../src/workflows/search/legacy';
import { randomSearcher, randomTrialAt, unitDraw } from '../src/workflows/search/random';
import { tinyInput } from './e2e-support';
import { drive, runOf, type Outcome, type Row } from './search-simulate';

const roundTrip = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

function suggestAll(searcher: Searcher, from: number, to: number): unknown[] {
  return Array.from({ length: to - from + 1 }, (_, i) => searcher.suggest(from + i));
}

describe('searchers', () => {
  const grid = parseSearchConfig({ base: tinyInput(), space: { a: [1, 2, 3], b: ['x', 'y'] }, maxTrials: 5 });
  const random = parseSearchConfig({ base: tinyInput(), strategy: 'random', seed: 9, space: { a: { uniform: [0, 1] }, b: ['x', 'y'] } });

  test('grid suggests its combinations in order, then finishes', () => {
    const s = gridSearcher.create(grid, undefined);
    const all = gridTrials(grid.space);
    assert.deepEqual(suggestAll(s, 1, 6), all.map((params) => ({ kind: 'trial', params })));
    assert.deepEqual(s.suggest(7), { kind: 'finished' });
    assert.equal(gridSearcher.plannedTrials(grid), 5, 'maxTrials cuts the grid');
    assert.deepEqual(planTrials(grid), all.slice(0, 5));
    // MAX_TRIALS: a grid of 2,500 (over the old bound of 2,000) is fine; 101³ = 1,030,301 is not.
    const list = (n: number) => Array.from({ length: n }, (_, i) => i);
    assert.equal(plannedTrials(parseSearchConfig({ base: tinyInput(), space: { a: list(50), b: list(50) } })), 2500);
    const huge = parseSearchConfig({ base: tinyInput(), space: { a: list(101), b: list(101), c: list(101) } });
    assert.throws(() => plannedTrials(huge), (e: unknown) => e instanceof ConfigError && /a grid of at most 1000000 trials/.test(e.message) && /1030301 combinations/.test(e.message));
  });

  test('random: trial n is a pure function of (seed, n, path), default 10 trials', () => {
    const s = randomSearcher.create(random, undefined);
    assert.equal(plannedTrials(random), 10);
    const first = suggestAll(s, 1, 10);
    assert.deepEqual(first, Array.from({ length: 10 }, (_, i) => ({ kind: 'trial', params: randomTrialAt(random.space, 9, i + 1) })));
    // Asked again, out of order, or by a fresh searcher: the same values.
    assert.deepEqual(randomSearcher.create(random, undefined).suggest(7), first[6]);
    assert.equal((first[0] as { params: Record<string, unknown> }).params.a, unitDraw(9, 1, 'a'));
  });

  for (const [name, config] of [['grid', grid], ['random', random]] as const) {
    test(`${name}: a searcher restored from its JSON state goes on exactly as the original`, () => {
      const a = STRATEGIES[config.strategy].searcher(config).create(config, undefined);
      suggestAll(a, 1, 3);
      a.onTrialComplete(1, { value: 0.5, status: 'completed' });
      const b = STRATEGIES[config.strategy].searcher(config).create(config, roundTrip(a.getState()));
      assert.deepEqual(suggestAll(b, 4, 8), suggestAll(a, 4, 8));
    });
  }
});

describe('FIFO scheduler', () => {
  test('every run ends its trial, to the base maxEpochs; one rung', () => {
    const config = parseSearchConfig({ base: tinyInput({ maxEpochs: 3 }), space: { a: [1, 2] } });
    const { scheduler } = createSearch(config, 2);
    assert.equal(scheduler.maxEpochsAt(1), undefined);
    assert.deepEqual(scheduler.onTrialResult(2, { rung: 1, value: 0.1, epochs: 3, runStatus: 'completed' }), [{ trial: 2, action: 'continue' }]);
    assert.deepEqual(scheduler.onTrialError(1, 1), []);
    assert.deepEqual(scheduler.progress(), { rung: 1, rungs: [{ rung: 1, trials: 2, epochs: 3 }] });
    assert.equal(JSON.stringify(scheduler.getState()), 'null');
  });
});

/** Successive halving as hyperparameterSearch ran it before the split: rung by rung, trial order. */
function referenceHalving(config: SearchConfig, n: number, seed: number): Outcome {
  const rungs = halvingSchedule(n, config.eta, config.minEpochs!, config.base.maxEpochs as number);
  const rows: Record<number, Row & { trial: number }> = {};
  for (let t = 1; t <= n; t++) rows[t] = { trial: t, status: 'pending', rung: 1, value: null, epochs: 0, runStatus: null };
  const launches: string[] = [];
  for (let rung = 1; ; rung++) {
    for (const t of Object.values(rows).filter((r) => r.status === 'pending')) {
      launches.push(`${t.trial}/${rung}`);
      const run = runOf(seed, t.trial, t.epochs, rungs[rung - 1]!.epochs);
      Object.assign(t, run.failed ? { status: 'failed', value: null, rung } : { status: 'completed', value: run.value, epochs: run.epochs, runStatus: run.runStatus, rung });
    }
    const next = rungs[rung];
    if (!next) break;
    const candidates = Object.values(rows).filter((t) => t.rung === rung && t.status === 'completed');
    const survivors = new Set(selectSurvivors(candidates, next.trials, config.mode).map((t) => t.trial));
    for (const t of candidates) {
      if (!survivors.has(t.trial)) t.status = 'pruned';
      else if (t.runStatus === 'completed' && t.epochs < next.epochs) t.status = 'pending';
      else t.rung = rung + 1;
    }
    if (survivors.size === 0) break;
  }
  return { launches, rows, maxRunning: 0 };
}

const sortedLaunches = (o: Outcome) => [...o.launches].sort();
const rowsOf = (o: Outcome) =>
  Object.fromEntries(Object.entries(o.rows).map(([t, r]) => [t, { status: r.status, rung: r.rung, value: r.value, epochs: r.epochs, runStatus: r.status === 'failed' ? null : r.runStatus }]));

describe('successive halving scheduler', () => {
  const halving = (n: number, eta: number, minEpochs: number, maxEpochs: number) =>
    parseSearchConfig({ base: tinyInput({ maxEpochs }), strategy: 'halving', eta, minEpochs, maxTrials: n, space: { 'hyperparameters.learningRate': { loguniform: [1e-4, 1] } } });

  test('4 trials, eta 2: rungs of 4, 2, 1; the best promote in trial order, the rest are pruned', () => {
    const config = halving(4, 2, 1, 4);
    const { scheduler } = createSearch(config, 4);
    assert.deepEqual(scheduler.progress().rungs.map((r) => [r.trials, r.epochs]), [[4, 1], [2, 2], [1, 4]]);
    assert.deepEqual([1, 2, 3, 4].map((r) => scheduler.maxEpochsAt(r)), [1, 2, 4, undefined]);
    const result = (value: number) => ({ rung: 1, value, epochs: 1, runStatus: 'completed' });
    assert.deepEqual(scheduler.onTrialResult(3, result(0.3)), [{ trial: 3, action: 'pause' }]);
    assert.deepEqual(scheduler.onTrialResult(1, result(0.5)), [{ trial: 1, action: 'pause' }]);
    assert.deepEqual(scheduler.onTrialError(2, 1), []);
    assert.deepEqual(scheduler.onTrialResult(4, result(0.1)), [
      { trial: 1, action: 'stop' },
      { trial: 3, action: 'promote', rung: 2 },
      { trial: 4, action: 'promote', rung: 2 },
    ]);
    assert.equal(scheduler.progress().rung, 2);
    const two = (value: number) => ({ rung: 2, value, epochs: 2, runStatus: 'completed' });
    assert.deepEqual(scheduler.onTrialResult(4, two(0.2)), [{ trial: 4, action: 'pause' }]);
    assert.deepEqual(scheduler.onTrialResult(3, two(0.05)), [{ trial: 3, action: 'promote', rung: 3 }, { trial: 4, action: 'stop' }]);
    assert.deepEqual(scheduler.onTrialResult(3, { rung: 3, value: 0.01, epochs: 4, runStatus: 'completed' }), [{ trial: 3, action: 'continue' }]);
  });

  test('promotes exactly the trials the pre-split search promoted (random sizes, ties, failures, early stops, any order)', () => {
    let cases = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const n = 1 + Math.floor(unitDraw(seed, 0, 'n') * 20);
      const eta = 2 + Math.floor(unitDraw(seed, 0, 'eta') * 3);
      const minEpochs = 1 + Math.floor(unitDraw(seed, 0, 'min') * 2);
      const maxEpochs = minEpochs + Math.floor(unitDraw(seed, 0, 'max') * 12);
      const config = halving(n, eta, minEpochs, maxEpochs);
      const reference = referenceHalving(config, n, seed);
      for (const [maxParallel, roundTripEvery] of [[1, 0], [3, 0], [n, 2], [2, 1]] as const) {
        const got = drive(config, seed, maxParallel, roundTripEvery);
        const what = `seed ${seed}: n=${n} eta=${eta} epochs ${minEpochs}..${maxEpochs}, maxParallel ${maxParallel}, round trip every ${roundTripEvery}`;
        assert.deepEqual(rowsOf(got), rowsOf(reference), what);
        assert.deepEqual(sortedLaunches(got), sortedLaunches(reference), what);
        if (maxParallel === 1) assert.deepEqual(got.launches, reference.launches, `${what}: launch order`);
        cases++;
      }
    }
    assert.equal(cases, 240);
  });
});

describe('state carried from before the split', () => {
  const row = (trial: number, status: TrialRow['status'], rung: number, value: number | null): TrialRow => ({
    trial, id: `trial-${trial}`, params: { a: trial }, status, rung, workflowId: null, value, epochs: rung, step: 0, runStatus: 'completed',
    runUri: `file:///s/trial-${trial}`, modelUri: null, error: null,
  });
  const legacy = (rung: number, trials: TrialRow[]): LegacySearchState => ({
    searchRunId: 's', searchUri: 'file:///s', rungs: halvingSchedule(4, 2, 1, 4), trials, rung, failures: 0, status: 'searching', continuedRuns: 0, startedThisRun: 2,
  });

  test('a grid: pending trials queue in trial order, nothing more is suggested', () => {
    const config = parseSearchConfig({ base: tinyInput(), space: { a: [1, 2, 3, 4] } });
    const m = migrateLegacyState(legacy(1, [row(1, 'completed', 1, 0.2), row(2, 'completed', 1, 0.1), row(3, 'pending', 1, null), row(4, 'pending', 1, null)]), config);
    assert.deepEqual(m.queue, [{ trial: 3, rung: 1 }, { trial: 4, rung: 1 }]);
    assert.equal(m.trialLimit, 4);
    assert.equal(m.scheduler, null);
  });

  test('halving mid-rung: promoted trials still pending will report at the rung, with the ones that have', () => {
    const config = parseSearchConfig({ base: tinyInput({ maxEpochs: 4 }), space: { a: [1, 2, 3, 4] }, strategy: 'halving', eta: 2, minEpochs: 1 });
    const old = legacy(2, [row(1, 'pending', 1, 0.3), row(2, 'completed', 2, 0.2), row(3, 'pruned', 1, 0.5), row(4, 'pruned', 1, 0.6)]);
    assert.deepEqual(legacyHalvingState(old), { rungs: old.rungs, rung: 2, expected: 2, reported: [{ trial: 2, value: 0.2, failed: false }] });
    const m = migrateLegacyState(old, config);
    assert.deepEqual(m.queue, [{ trial: 1, rung: 2 }]);
    const { scheduler } = createSearch(config, m.trialLimit, { searcher: m.searcher, scheduler: m.scheduler });
    assert.deepEqual(scheduler.onTrialResult(1, { rung: 2, value: 0.1, epochs: 2, runStatus: 'completed' }), [
      { trial: 1, action: 'promote', rung: 3 },
      { trial: 2, action: 'stop' },
    ]);
  });
});
