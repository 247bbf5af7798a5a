/**
 * The search controller (src/workflows/search/controller.ts) driven alone, with simulated children:
 * the commands it gives for PBT's exploit, continue-as-new, edits and the failure budget. The same
 * class runs inside the hyperparameterSearch workflow (whose recorded histories replay in
 * test/replay.test.ts), so these are the workflow's decisions, not a copy of its loop.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSearchConfig } from '../src/config/search-config';
import type { SearchCommand, Upsert } from '../src/workflows/search/controller';
import { unitDraw } from '../src/workflows/search/random';
import { tinyInput } from './e2e-support';
import { continued, newController, simulate, tableOf } from './search-simulate';

const LR = 'hyperparameters.learningRate';

describe('search controller', () => {
  test('PBT: an exploit is an archive, then a copy from the donor, then the recipient\'s next round with the new values', () => {
    const config = parseSearchConfig({ base: tinyInput({ maxEpochs: 4 }), strategy: 'pbt', roundEpochs: 2, maxTrials: 4, maxParallel: 2, space: { [LR]: [0.05, 0.02, 0.005, 0.001] } });
    const commands: SearchCommand[] = [];
    const { ctl } = simulate(config, 5, { onCommand: (cmd) => commands.push(cmd) });
    const copies = commands.flatMap((c, i) => (c.kind === 'copy' ? [i] : []));
    assert.ok(copies.length >= 1, 'some trial exploits');
    for (const i of copies) {
      const copy = commands[i] as Extract<SearchCommand, { kind: 'copy' }>;
      const archive = commands[i - 1]!;
      assert.equal(archive.kind, 'archive');
      assert.equal((archive as { runUri: string }).runUri, copy.input.toRunUri, 'the recipient\'s export is archived before the copy');
      assert.notEqual(copy.input.fromRunUri, copy.input.toRunUri);
    }
    const lineage = ctl.state.lineage;
    assert.equal(lineage.length, copies.length);
    for (const row of lineage) {
      const start = commands.find((c): c is Extract<SearchCommand, { kind: 'start' }> => c.kind === 'start' && c.trial === row.trial && c.rung === row.round + 1);
      assert.ok(start, `trial ${row.trial} starts round ${row.round + 1}`);
      assert.equal(start.input.resume, true);
      assert.deepEqual((start.input.hyperparameters as Record<string, unknown>).learningRate, row.params[LR], 'it trains with the explored value');
      assert.equal(ctl.state.trials[row.trial - 1]!.params[LR], row.params[LR]);
    }
  });

  test('continue-as-new: due after continueAsNewEvery starts, never with a child in flight; the chain ends with the table of one run', () => {
    const base = { base: tinyInput({ maxEpochs: 8 }), strategy: 'asha', eta: 2, minEpochs: 1, maxTrials: 12, maxParallel: 3, space: { [LR]: { loguniform: [1e-4, 1] } } };
    const straight = simulate(parseSearchConfig(base), 11);
    let startsSince = 0;
    const chained = simulate(parseSearchConfig({ ...base, continueAsNewEvery: 4 }), 11, {
      onCommand: (cmd, ctl) => {
        if (cmd.kind === 'start') startsSince++;
        if (cmd.kind === 'continueAsNew') {
          assert.equal(ctl.running(), 0, 'drained before continuing as new');
          assert.ok(startsSince >= 4, `${startsSince} runs started in this run`);
          startsSince = 0;
        }
      },
    });
    assert.ok(chained.continued >= 2, `${chained.continued} continue-as-new`);
    assert.deepEqual(chained.outcome.rows, straight.outcome.rows);
    assert.equal(chained.ctl.state.continuedRuns, chained.continued);
  });

  test('no drain: a due continue-as-new with children running continues at once; their ends, signalled to the next run, are fetched and applied once', () => {
    const config = parseSearchConfig({ base: tinyInput(), strategy: 'random', maxTrials: 4, maxParallel: 2, continueAsNewEvery: 2, space: { [LR]: { uniform: [0.001, 0.1] } } });
    const options = { singleUpsert: true, noDrain: true };
    const ctl = newController(config, options);
    const a = ctl.next({ continueAsNewSuggested: false }) as Extract<SearchCommand, { kind: 'start' }>;
    const b = ctl.next({ continueAsNewSuggested: false }) as Extract<SearchCommand, { kind: 'start' }>;
    assert.deepEqual([a.kind, b.kind], ['start', 'start']);
    // trial-1's child signals its end just before this run continues as new: its promise is lost with the run.
    assert.equal(ctl.onTrialEnded(a.workflowId), true);
    assert.equal(ctl.onTrialEnded(a.workflowId), false, 'a repeat is ignored');
    assert.equal(ctl.onTrialEnded('sim/trial-9'), false, 'an id with no running trial is ignored');
    const can = ctl.next({ continueAsNewSuggested: false });
    assert.equal(can.kind, 'continueAsNew', 'two starts in this run: due, with both children running');
    assert.equal(ctl.running(), 2);
    const next = continued(config, (can as Extract<SearchCommand, { kind: 'continueAsNew' }>).state, options);
    assert.equal(next.running(), 2, 'the running trials ride in the state');
    const fetchA = next.next({ continueAsNewSuggested: false });
    assert.deepEqual(fetchA, { kind: 'fetch', trial: 1, rung: 1, workflowId: a.workflowId }, 'the end reported to the last run is fetched');
    // trial-2 ends now: its signal reaches this run, which holds no promise for it.
    assert.equal(next.onTrialEnded(b.workflowId), true);
    const fetchB = next.next({ continueAsNewSuggested: false });
    assert.deepEqual(fetchB, { kind: 'fetch', trial: 2, rung: 1, workflowId: b.workflowId });
    const result = (value: number) => ({ finalMetrics: { val_loss: value }, epochs: 2, step: 20, status: 'completed' as const, modelUri: 'file:///sim/model' });
    assert.notDeepEqual(next.onChildResult(1, 1, result(0.5)), []);
    assert.notDeepEqual(next.onChildError(2, 1, new Error('boom')), []);
    // A second delivery (a duplicate signal and fetch, a retried activity) changes nothing.
    const before = JSON.stringify(next.snapshot());
    assert.deepEqual(next.onChildResult(1, 1, result(0.1)), []);
    assert.deepEqual(next.onChildError(1, 1, new Error('late')), []);
    assert.deepEqual(next.onChildResult(2, 1, result(0.2)), []);
    assert.equal(next.onTrialEnded(a.workflowId), false, 'a finished trial\'s signal is ignored');
    assert.equal(JSON.stringify(next.snapshot()), before);
    const rows = next.state.trials.map((t) => [t.trial, t.status, t.value]);
    assert.deepEqual(rows, [[1, 'completed', 0.5], [2, 'failed', null]]);
    assert.equal(next.state.failures, 1);
    assert.deepEqual(next.state.endReported, []);
    assert.equal(next.next({ continueAsNewSuggested: false }).kind, 'start', 'the next trial starts in the new run');
  });

  test('no drain: chains of continue-as-new with children running end with the table of one uninterrupted run, every outcome applied once', () => {
    let acrossRunning = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const rungs = seed % 2 ? { strategy: 'asha', eta: 2, minEpochs: 1 } : { strategy: 'random' };
      const base = { base: tinyInput({ maxEpochs: 8 }), ...rungs, maxTrials: 10 + seed, maxParallel: 2 + (seed % 3), space: { [LR]: { loguniform: [1e-4, 1] } } };
      const straight = simulate(parseSearchConfig(base), seed);
      const chained = simulate(parseSearchConfig({ ...base, continueAsNewEvery: 1 + (seed % 4) }), seed, { controller: { singleUpsert: true, noDrain: true }, raceShare: 0.3, storeRows: true });
      assert.deepEqual(chained.outcome.rows, straight.outcome.rows, `seed ${seed}`);
      assert.deepEqual(tableOf(chained.log), JSON.parse(JSON.stringify(straight.ctl.state.trials)), `seed ${seed}: the search log's table`);
      assert.deepEqual(chained.outcome.launches, straight.outcome.launches, `seed ${seed}: the same runs in the same order`);
      const h = chained.handOver;
      assert.ok(chained.continued >= 2, `seed ${seed}: ${chained.continued} continue-as-new`);
      assert.ok(h.runningAtContinue.some((n) => n > 0), `seed ${seed}: some continue-as-new with children running`);
      assert.ok(h.fetched > 0, `seed ${seed}: some outcomes reached a later run`);
      acrossRunning += h.raced;
    }
    assert.ok(acrossRunning > 0, 'some child signalled its end to a run that then continued as new before its promise');
  });

  test('an edit: a stopped waiting trial is pruned and never starts; maxParallel is obeyed from the next start', () => {
    const config = parseSearchConfig({ base: tinyInput(), strategy: 'random', maxTrials: 3, maxParallel: 1, space: { [LR]: { uniform: [0.001, 0.1] } } });
    const ctl = newController(config);
    const first = ctl.next({ continueAsNewSuggested: false });
    assert.equal(first.kind, 'start');
    assert.deepEqual(ctl.next({ continueAsNewSuggested: false }).kind, 'wait');
    const { reply } = ctl.onEdit({ op: 'addTrials', trials: [{ [LR]: 0.01 }] }, 1000);
    assert.deepEqual(reply, { edit: 1, changes: ['trial-2 added: {"hyperparameters.learningRate":0.01}'] });
    ctl.onEdit({ op: 'stop', trial: 2 }, 1001);
    assert.equal(ctl.state.trials[1]!.status, 'pruned');
    ctl.onEdit({ op: 'maxParallel', value: 2 }, 1002);
    const next = ctl.next({ continueAsNewSuggested: false });
    assert.equal(next.kind, 'start');
    assert.equal((next as { trial: number }).trial, 3, 'trial 2 was stopped: the searcher\'s next trial starts');
    assert.equal(ctl.state.edits.length, 3);
  });

  test('failure budget: the results are written, then the search fails naming the failed trials', () => {
    const config = parseSearchConfig({ base: tinyInput(), strategy: 'random', maxTrials: 5, maxParallel: 2, failureBudget: 0, space: { [LR]: { uniform: [0.001, 0.1] } } });
    const ctl = newController(config);
    const a = ctl.next({ continueAsNewSuggested: false }) as Extract<SearchCommand, { kind: 'start' }>;
    ctl.next({ continueAsNewSuggested: false });
    ctl.onChildError(a.trial, 1, new Error('boom'));
    const cmd = ctl.next({ continueAsNewSuggested: false });
    assert.equal(cmd.kind, 'failBudget');
    const failure = ctl.budgetFailure();
    assert.equal(failure.type, 'FailureBudgetExceeded');
    assert.match(failure.message, /trial-1 \(Error: boom\)/);
  });

  const asha = (n: number, seed: number) =>
    parseSearchConfig({ base: tinyInput({ maxEpochs: 8 }), strategy: 'asha', eta: 2 + (seed % 2), minEpochs: 1, maxTrials: n, maxParallel: 1 + (seed % 4), space: { [LR]: { loguniform: [1e-4, 1] } } });

  test('the best so far (a heap) and the running and finished counts (kept per change) equal a sort and a count of the whole table after every step', () => {
    for (let seed = 1; seed <= 25; seed++) {
      const config = asha(5 + Math.floor(unitDraw(seed, 0, 'n') * 40), seed);
      let checked = 0;
      simulate(config, seed, {
        controller: { singleUpsert: true },
        onCommand: (_cmd, ctl) => {
          const trials = ctl.state.trials;
          const sorted = ctl.ranked()[0];
          assert.equal(ctl.bestSoFar(), sorted, `seed ${seed}: best after ${checked} steps`);
          assert.equal(ctl.running(), trials.filter((t) => t.status === 'running').length, `seed ${seed}: running`);
          checked++;
        },
      });
      assert.ok(checked > 5);
    }
  });

  test('one search-attribute upsert per change: status, trials finished and best metric together, none repeated', () => {
    const fieldsOf = (u: Upsert) => u.map((p) => p.key.name).sort().join();
    for (let seed = 1; seed <= 10; seed++) {
      const config = asha(20, seed);
      const upserts: Upsert[] = [];
      const { ctl } = simulate(config, seed, { controller: { singleUpsert: true }, onUpserts: (u) => upserts.push(...u) });
      const values = upserts.map((u) => JSON.stringify(u.map((p) => p.value)));
      values.forEach((v, i) => assert.notEqual(v, values[i - 1], `seed ${seed}: upsert ${i} repeats the one before`));
      for (const u of upserts.slice(1)) assert.match(fieldsOf(u), /^(DurableTrainBestMetric,)?DurableTrainEpoch,DurableTrainStatus$/);
      assert.ok(upserts.every((u, i) => i === 0 || fieldsOf(u).startsWith('DurableTrainBestMetric') || !upserts.slice(0, i).some((x) => fieldsOf(x).startsWith('DurableTrainBestMetric'))), 'once a best exists it is in every upsert');
      // At most one upsert per run ended, per promotion batch and for the start and end.
      const runs = Object.keys(ctl.state.trials).length + ctl.state.trials.reduce((n, t) => n + t.rung - 1, 0);
      assert.ok(upserts.length <= 2 * runs + 3, `seed ${seed}: ${upserts.length} upserts for ${runs} runs`);
    }
    // Searches started before the patch keep two upserts a publish, repeated or not.
    const old: Upsert[] = [];
    simulate(asha(20, 1), 1, { onUpserts: (u) => old.push(...u) });
    assert.ok(old.some((u) => fieldsOf(u) === 'DurableTrainBestMetric'), 'the old branch upserts the best metric on its own');
  });

  test('the search log: every strategy\'s appended segments, replayed, rebuild the table of the same search kept in state; edits and lineage are in it', () => {
    const configs = [
      { base: tinyInput({ maxEpochs: 2 }), strategy: 'random', maxTrials: 700, maxParallel: 4, continueAsNewEvery: 150, space: { [LR]: { uniform: [0.001, 0.1] } } },
      { base: tinyInput({ maxEpochs: 2 }), strategy: 'grid', maxParallel: 3, space: { [LR]: [0.1, 0.05, 0.02, 0.01, 0.005] } },
      { base: tinyInput({ maxEpochs: 8 }), strategy: 'asha', eta: 2, minEpochs: 1, maxTrials: 40, maxParallel: 3, continueAsNewEvery: 7, space: { [LR]: { loguniform: [1e-4, 1] } } },
      { base: tinyInput({ maxEpochs: 8 }), strategy: 'halving', eta: 2, minEpochs: 1, maxTrials: 16, maxParallel: 3, space: { [LR]: { loguniform: [1e-4, 1] } } },
      { base: tinyInput({ maxEpochs: 6 }), strategy: 'pbt', roundEpochs: 2, maxTrials: 6, maxParallel: 2, space: { [LR]: [0.05, 0.02, 0.01, 0.005, 0.002, 0.001] } },
    ];
    for (const input of configs) {
      for (const seed of [3, 8]) {
        const config = parseSearchConfig(input);
        const old = simulate(config, seed);
        // Seed 8 with workflow time: rows wait up to LOG_FLUSH_MS before a wait appends them.
        const stored = simulate(config, seed, { storeRows: true, ...(seed === 8 && { msPerResult: 700 }) });
        assert.equal(old.log.length, 0, `${input.strategy}: a search without state.store appends nothing`);
        assert.ok(stored.log.length > 0, `${input.strategy}: some segments`);
        for (const segment of stored.log) assert.ok(segment.length > 0 && segment.length <= 256, `${input.strategy}: ${segment.length} rows in a segment`);
        assert.deepEqual(tableOf(stored.log), JSON.parse(JSON.stringify(old.ctl.state.trials)), `${input.strategy}, seed ${seed}: the log's table`);
        const lineage = stored.log.flat().filter((r) => r.kind === 'lineage');
        assert.deepEqual(lineage.map((r) => ({ ...r, kind: undefined })), JSON.parse(JSON.stringify(old.ctl.state.lineage)).map((r: object) => ({ ...r, kind: undefined })), `${input.strategy}: lineage`);
        assert.deepEqual(stored.outcome, old.outcome, `${input.strategy}: the same decisions`);
        // No drain at continue-as-new (children ride across it, some ends fetched by the next run): the same.
        const options = { controller: { singleUpsert: true, noDrain: true }, raceShare: 0.3 };
        const oldNoDrain = simulate(config, seed, options);
        const storedNoDrain = simulate(config, seed, { ...options, storeRows: true, msPerResult: 900 });
        assert.deepEqual(tableOf(storedNoDrain.log), JSON.parse(JSON.stringify(oldNoDrain.ctl.state.trials)), `${input.strategy}, seed ${seed}, no drain: the log's table`);
      }
    }
  });

  test('the search log: an edit is a row, and the trials it adds or stops are rows, in the next segment', () => {
    const config = parseSearchConfig({ base: tinyInput(), strategy: 'random', maxTrials: 3, maxParallel: 1, space: { [LR]: { uniform: [0.001, 0.1] } } });
    const ctl = newController(config, undefined, undefined, true);
    const first = ctl.next({ continueAsNewSuggested: false });
    assert.equal(first.kind, 'start');
    const append = ctl.next({ continueAsNewSuggested: false });
    assert.equal(append.kind, 'append', 'the rows are appended before waiting');
    assert.deepEqual(append.kind === 'append' && [append.seq, append.rows.map((r) => `${r.kind}:${'status' in r ? r.status : ''}`)], [0, ['trial:running']]);
    assert.equal(ctl.next({ continueAsNewSuggested: false }).kind, 'wait');
    ctl.onEdit({ op: 'addTrials', trials: [{ [LR]: 0.01 }] }, 1000);
    ctl.onEdit({ op: 'stop', trial: 2 }, 1001);
    const next = ctl.next({ continueAsNewSuggested: false });
    assert.equal(next.kind, 'append');
    const rows = next.kind === 'append' ? next.rows : [];
    assert.equal(next.kind === 'append' && next.seq, 1);
    assert.deepEqual(rows.map((r) => r.kind), ['trial', 'edit', 'edit']);
    assert.equal(rows[0]!.kind === 'trial' && rows[0]!.status, 'pruned', 'the added trial\'s row as of the cut: pruned by the second edit');
  });

  test('100,000 trials of a random search that stores its rows: every continue-as-new input under 256 KB, and its log rebuilds the table of the same search kept whole in state', (t) => {
    const input = { base: tinyInput({ maxEpochs: 1 }), strategy: 'random', maxTrials: 100_000, maxParallel: 16, failureBudget: 100_000, space: { [LR]: { loguniform: [1e-4, 1] }, 'model.params.hiddenUnits': [[4], [8], [16]] } };
    const seed = 4;
    let largest = 0;
    let inMemory = 0;
    let runs = 0;
    const started = Date.now();
    const stored = simulate(parseSearchConfig({ ...input, continueAsNewEvery: 5000 }), seed, {
      storeRows: true,
      // 16 slots of one-second trials: a run ends every 62.5 ms, rows are appended every 5 s.
      msPerResult: 62.5,
      onCommand: (cmd, ctl) => {
        if (cmd.kind !== 'continueAsNew') return;
        runs++;
        largest = Math.max(largest, JSON.stringify(cmd.state).length);
        inMemory = Math.max(inMemory, ctl.trialsInMemory().length);
      },
    });
    t.diagnostic(`stored: ${runs} continue-as-new, largest input ${largest} bytes, at most ${inMemory} trials in memory, ${stored.log.length} segments, ${Date.now() - started} ms`);
    assert.ok(runs >= 19, `${runs} continue-as-new`);
    assert.ok(largest < 256 * 1024, `largest continue-as-new input ${largest} bytes`);
    assert.ok(largest < 16 * 1024, `constant, not growing with the trials: ${largest} bytes`);
    assert.ok(inMemory <= 16, `${inMemory} trials in memory at a continue-as-new (16 slots)`);
    // Rows are appended before every wait: about one segment per trial run ended (two rows each, coalesced).
    assert.ok(stored.log.length <= 100_000 + runs * 2, `${stored.log.length} segments`);
    const whole = simulate(parseSearchConfig(input), seed);
    const table = tableOf(stored.log);
    assert.equal(table.length, 100_000);
    assert.deepEqual(table, JSON.parse(JSON.stringify(whole.ctl.state.trials)));
    // The result's best few and its best are the whole table's.
    const top = stored.ctl.ranked().slice(0, 10);
    assert.deepEqual(top.map((r) => r.trial), whole.ctl.ranked().slice(0, 10).map((r) => r.trial));
    assert.equal(stored.ctl.bestSoFar()?.trial, whole.ctl.bestSoFar()?.trial);
  });
});
