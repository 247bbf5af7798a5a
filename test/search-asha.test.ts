/**
 * The ASHA scheduler (src/workflows/search/asha.ts), pure: promotions as soon as a trial is in the
 * top 1/eta of its rung's reports, agreement with the paper's Algorithm 2 on one worker, its state
 * through JSON round-trips, and the search's end (the highest rung's paused trials complete).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSearchConfig, type SearchConfig } from '../src/config/search-config';
import { createSearch, plannedTrials } from '../src/workflows/search';
import { ashaEpochs } from '../src/workflows/search/asha';
import { halvingSchedule, selectSurvivors } from '../src/workflows/search/halving';
import { unitDraw } from '../src/workflows/search/random';
import { tinyInput } from './e2e-support';
import { drive, runOf, type Outcome, type Row } from './search-simulate';

const asha = (n: number, eta: number, minEpochs: number, maxEpochs: number) =>
  parseSearchConfig({ base: tinyInput({ maxEpochs }), strategy: 'asha', eta, minEpochs, maxTrials: n, space: { 'hyperparameters.learningRate': { loguniform: [1e-4, 1] } } });

const result = (rung: number, value: number, epochs = rung) => ({ rung, value, epochs, runStatus: 'completed' });

/** ASHA as the paper's Algorithm 2 states it, for one worker: get_job looks for a promotable trial from the top rung down, else starts a new one. */
function referenceAsha(config: SearchConfig, seed: number): Outcome {
  const epochs = ashaEpochs(config.eta, config.minEpochs!, config.base.maxEpochs as number);
  const top = epochs.length;
  const results: Array<Array<{ trial: number; value: number | null }>> = epochs.map(() => []);
  const promoted: Array<Set<number>> = epochs.map(() => new Set());
  const rows: Record<number, Row> = {};
  const launches: string[] = [];
  const n = plannedTrials(config);
  let suggested = 0;
  for (;;) {
    let job: { trial: number; rung: number } | undefined;
    for (let k = top - 1; k >= 1 && !job; k--) {
      const [best] = selectSurvivors(results[k - 1]!, Math.floor(results[k - 1]!.length / config.eta), config.mode).filter((r) => !promoted[k - 1]!.has(r.trial));
      if (best) {
        promoted[k - 1]!.add(best.trial);
        job = { trial: best.trial, rung: k + 1 };
      }
    }
    if (!job && suggested < n) {
      job = { trial: ++suggested, rung: 1 };
      rows[job.trial] = { status: 'pending', rung: 1, value: null, epochs: 0, runStatus: null };
    }
    if (!job) break;
    const row = rows[job.trial]!;
    if (job.rung > 1 && !(row.runStatus === 'completed' && row.epochs < epochs[job.rung - 1]!)) {
      // An early-stopped run cannot go on: it reaches the rung as it is.
      row.rung = job.rung;
      results[job.rung - 1]!.push({ trial: job.trial, value: row.value });
      continue;
    }
    launches.push(`${job.trial}/${job.rung}`);
    const run = runOf(seed, job.trial, row.epochs, epochs[job.rung - 1]!);
    row.rung = job.rung;
    if (run.failed) {
      Object.assign(row, { status: 'failed', value: null });
      continue;
    }
    Object.assign(row, { status: 'completed', value: run.value, epochs: run.epochs, runStatus: run.runStatus });
    results[job.rung - 1]!.push({ trial: job.trial, value: run.value });
  }
  const highest = results.reduce((h, r, i) => (r.length > 0 ? i + 1 : h), 0);
  for (const row of Object.values(rows)) {
    if (row.status === 'failed' || row.rung === top) continue;
    row.status = row.rung === highest ? 'completed' : 'pruned';
  }
  return { launches, rows, maxRunning: 1 };
}

const rowsOf = (o: Outcome) =>
  Object.fromEntries(Object.entries(o.rows).map(([t, r]) => [t, { status: r.status, rung: r.rung, value: r.value, epochs: r.epochs, runStatus: r.status === 'failed' ? null : r.runStatus }]));

describe('ASHA scheduler', () => {
  test('rungs: minEpochs, eta× more each, the last exactly maxEpochs', () => {
    assert.deepEqual(ashaEpochs(3, 1, 9), [1, 3, 9]);
    assert.deepEqual(ashaEpochs(2, 1, 5), [1, 2, 4, 5]);
    assert.deepEqual(ashaEpochs(3, 4, 4), [4]);
    // The same budgets as synchronous halving's, without its trial counts.
    assert.deepEqual(ashaEpochs(3, 2, 10), halvingSchedule(27, 3, 2, 10).map((r) => r.epochs));
  });

  test('a trial is promoted as soon as it is in the top 1/eta of the reports at its rung', () => {
    const { scheduler } = createSearch(asha(8, 2, 1, 4), 8);
    assert.deepEqual([1, 2, 3, 4].map((r) => scheduler.maxEpochsAt(r)), [1, 2, 4, undefined]);
    assert.deepEqual(scheduler.onTrialResult(1, result(1, 0.5)), [{ trial: 1, action: 'pause' }], '1 report: top 0');
    assert.deepEqual(scheduler.onTrialResult(2, result(1, 0.3)), [{ trial: 2, action: 'promote', rung: 2 }], '2 reports: the best goes on at once');
    assert.deepEqual(scheduler.onTrialResult(3, result(1, 0.6)), [{ trial: 3, action: 'pause' }]);
    assert.deepEqual(scheduler.onTrialError(4, 1), [], 'a failure is not a report');
    // 4 reports: the top 2 are trials 2 and 1; trial 1, paused, is promoted now.
    assert.deepEqual(scheduler.onTrialResult(5, result(1, 0.9)), [{ trial: 5, action: 'pause' }, { trial: 1, action: 'promote', rung: 2 }]);
    assert.deepEqual(scheduler.onTrialResult(2, result(2, 0.2, 2)), [{ trial: 2, action: 'pause' }]);
    assert.deepEqual(scheduler.onTrialResult(1, result(2, 0.1, 2)), [{ trial: 1, action: 'promote', rung: 3 }]);
    assert.equal(scheduler.progress().rung, 3);
    assert.deepEqual(scheduler.progress().rungs.map((r) => [r.trials, r.epochs]), [[4, 1], [2, 2], [0, 4]]);
    assert.deepEqual(scheduler.onTrialResult(1, result(3, 0.05, 4)), [{ trial: 1, action: 'continue' }], 'the last rung completes');
    // Out of work: the paused trials of lower rungs are pruned (trial 1 reached the top).
    assert.deepEqual(scheduler.onSearchEnd(), [{ trial: 3, action: 'stop' }, { trial: 5, action: 'stop' }, { trial: 2, action: 'stop' }]);
    assert.deepEqual(scheduler.onSearchEnd(), [], 'the last word is said once');
  });

  test('when no trial reached the top rung, the highest rung reached completes (its best is the search\'s best)', () => {
    const { scheduler } = createSearch(asha(3, 3, 1, 9), 3);
    scheduler.onTrialResult(1, result(1, 0.5));
    scheduler.onTrialResult(2, result(1, 0.4));
    assert.deepEqual(scheduler.onTrialResult(3, result(1, 0.3)), [{ trial: 3, action: 'promote', rung: 2 }]);
    assert.deepEqual(scheduler.onTrialResult(3, result(2, 0.2, 3)), [{ trial: 3, action: 'pause' }]);
    assert.deepEqual(scheduler.onSearchEnd(), [{ trial: 1, action: 'stop' }, { trial: 2, action: 'stop' }, { trial: 3, action: 'continue' }]);
  });

  test('on one worker it runs exactly the paper\'s Algorithm 2 (random sizes, ties, failures, early stops)', () => {
    for (let seed = 1; seed <= 80; seed++) {
      const n = 1 + Math.floor(unitDraw(seed, 0, 'n') * 30);
      const eta = 2 + Math.floor(unitDraw(seed, 0, 'eta') * 3);
      const minEpochs = 1 + Math.floor(unitDraw(seed, 0, 'min') * 2);
      const maxEpochs = minEpochs + Math.floor(unitDraw(seed, 0, 'max') * 12);
      const config = asha(n, eta, minEpochs, maxEpochs);
      const what = `seed ${seed}: n=${n} eta=${eta} epochs ${minEpochs}..${maxEpochs}`;
      const reference = referenceAsha(config, seed);
      const got = drive(config, seed, 1);
      assert.deepEqual(got.launches, reference.launches, what);
      assert.deepEqual(rowsOf(got), rowsOf(reference), what);
    }
  });

  test('state through JSON after every result: the same runs and decisions, on any number of slots', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const config = asha(12 + (seed % 9), 2 + (seed % 3), 1, 8);
      for (const maxParallel of [2, 4, 7]) {
        const straight = drive(config, seed, maxParallel);
        const resumed = drive(config, seed, maxParallel, 1);
        assert.deepEqual(resumed, straight, `seed ${seed}, maxParallel ${maxParallel}`);
        assert.equal(straight.maxRunning, maxParallel, 'every slot is used');
      }
    }
  });
});
