/**
 * hyperparameterSearch's decisions on the real dev server with scripted activities: every trial
 * is a real child trainModel whose metrics the script derives from the trial's parameters, so the
 * test checks scheduling (maxParallel, child ids, continue-as-new), the failure budget, the
 * winner, and successive halving's promotions and prunes, all by hand-worked expectations.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { hyperparameterSearch, leaderboardQuery } from '../../src/workflows';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes';
import { eventCounts, failureOf, Harness, maxConcurrentChildren, trainInput } from './harness';
import { MOCK_ROOT, type ActivityCall, type EpochContext, type TrainInput } from './mock-activities';

let h: Harness;
before(async () => {
  h = await Harness.start();
});
after(async () => {
  await h?.close();
});

const lrOf = (at: { readonly config: TrainInput['config'] }) => at.config.hyperparameters.learningRate;
/** The learning rate of the trial an activity call belongs to (calls that carry a config). */
const callLr = (c: ActivityCall) => lrOf(c.input as TrainInput);
/** Best at learningRate 0.01 and the smaller batch; improves a little each epoch. */
const gridLoss = (at: EpochContext) => ({
  val_loss: Math.abs(Math.log10(lrOf(at)) + 2) + at.config.hyperparameters.batchSize / 1000 + 0.1 / at.epoch,
});
const base = (overrides: Record<string, unknown> = {}) => trainInput({ maxEpochs: 2, ...overrides });
const runIdsTrained = (inputs: ReadonlyArray<{ runUri: string }>) => [...new Set(inputs.map((i) => i.runUri.slice(i.runUri.lastIndexOf('/') + 1)))].sort();

describe('hyperparameterSearch: grid', () => {
  test('runs every trial as a child trainModel, at most maxParallel at once, and names the best', () =>
    h.run({ evalMetrics: gridLoss }, async ({ client, taskQueue, mock, id }) => {
      const workflowId = id('grid');
      const handle = await client.workflow.start(hyperparameterSearch, {
        taskQueue,
        workflowId,
        args: [{ base: base(), space: { 'hyperparameters.learningRate': [0.001, 0.01, 0.1], 'hyperparameters.batchSize': [16, 64] }, maxParallel: 2 }],
      });
      const result = await handle.result();
      // Grid order varies the last path fastest: trial 3 is (0.01, 16).
      assert.equal(result.best.trial, 3);
      assert.deepEqual(result.best.params, { 'hyperparameters.learningRate': 0.01, 'hyperparameters.batchSize': 16 });
      assert.equal(result.best.value, 0.016 + 0.05);
      assert.equal(result.best.epochs, 2);
      assert.equal(result.best.workflowId, `${workflowId}/trial-3`);
      assert.equal(result.best.runUri, `${MOCK_ROOT}/${workflowId}/trial-3`);
      assert.deepEqual(result.trials.map((t) => t.status), Array(6).fill('completed'));
      assert.deepEqual(runIdsTrained(mock.inputs('trainEpoch')), ['trial-1', 'trial-2', 'trial-3', 'trial-4', 'trial-5', 'trial-6']);
      assert.equal(mock.inputs('trainEpoch').length, 12);
      assert.equal(await maxConcurrentChildren(handle), 2);
      assert.deepEqual(mock.inputs('writeSearchResults').map((w) => w.bestTrial), [3]);
      const board = await handle.query(leaderboardQuery);
      assert.deepEqual(board.trials.map((t) => t.trial).slice(0, 2), [3, 4]);
      const attributes = (await handle.describe()).typedSearchAttributes;
      assert.equal(attributes.get(SEARCH_ATTRIBUTES.status), 'completed');
      assert.equal(attributes.get(SEARCH_ATTRIBUTES.epoch), 6);
      assert.equal(attributes.get(SEARCH_ATTRIBUTES.bestMetric), 0.016 + 0.05);
    }));

  test('trials beyond the budget of failures fail the search; the results are written first', () =>
    h.run(
      {
        evalMetrics: gridLoss,
        fail: (c) => (c.name === 'trainEpoch' && callLr(c) === 0.1 ? ApplicationFailure.nonRetryable('loss is NaN', 'NonFiniteLoss') : undefined),
      },
      async ({ client, taskQueue, mock, id }) => {
        const handle = await client.workflow.start(hyperparameterSearch, {
          taskQueue,
          workflowId: id('budget'),
          args: [{ base: base(), space: { 'hyperparameters.learningRate': [0.1, 0.1, 0.01, 0.001] }, failureBudget: 1 }],
        });
        const failure = await failureOf(handle);
        assert.equal(failure.type, 'FailureBudgetExceeded');
        assert.match(failure.message, /trial-1 \(.*loss is NaN\).*trial-2 \(.*loss is NaN\)/);
        // maxParallel 1: the second failure ends the search before trial 3 starts.
        assert.deepEqual(runIdsTrained(mock.inputs('trainEpoch')), ['trial-1', 'trial-2']);
        assert.equal(mock.inputs('writeSearchResults').length, 1);
      },
    ));

  test('failures within the budget are reported and the search completes', () =>
    h.run(
      { evalMetrics: gridLoss, fail: (c) => (c.name === 'trainEpoch' && callLr(c) === 0.1 ? ApplicationFailure.nonRetryable('bad', 'Bad') : undefined) },
      async ({ client, taskQueue, id }) => {
        const result = await client.workflow.execute(hyperparameterSearch, {
          taskQueue,
          workflowId: id('within'),
          args: [{ base: base(), space: { 'hyperparameters.learningRate': [0.1, 0.01, 0.001] }, failureBudget: 1, maxParallel: 3 }],
        });
        assert.equal(result.failed, 1);
        assert.equal(result.best.trial, 2);
        assert.deepEqual(result.trials.map((t) => t.status), ['failed', 'completed', 'completed']);
        assert.match(result.trials[0]?.error ?? '', /bad/);
      },
    ));

  test('no trial with the metric: NoSuccessfulTrial', () =>
    h.run({ evalMetrics: () => ({ val_accuracy: 0.5 }) }, async ({ client, taskQueue, id }) => {
      const handle = await client.workflow.start(hyperparameterSearch, {
        taskQueue,
        workflowId: id('none'),
        args: [{ base: base(), space: { 'hyperparameters.learningRate': [0.1, 0.01] }, metric: 'val_f1' }],
      });
      assert.equal((await failureOf(handle)).type, 'NoSuccessfulTrial');
    }));
});

describe('hyperparameterSearch: random and continue-as-new', () => {
  test('random draws maxTrials trials from the space, each within its range', () =>
    h.run({ evalMetrics: gridLoss }, async ({ client, taskQueue, id }) => {
      const result = await client.workflow.execute(hyperparameterSearch, {
        taskQueue,
        workflowId: id('random'),
        args: [{ base: base(), strategy: 'random', seed: 5, maxTrials: 4, maxParallel: 4, space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.1] } } }],
      });
      assert.equal(result.trials.length, 4);
      const lrs = result.trials.map((t) => t.params['hyperparameters.learningRate'] as number);
      assert.ok(lrs.every((lr) => lr >= 0.001 && lr <= 0.1), `learning rates ${lrs.join(', ')}`);
      assert.equal(new Set(lrs).size, 4);
      const best = [...result.trials].sort((a, b) => a.value! - b.value!)[0]!;
      assert.equal(result.best.trial, best.trial);
    }));

  test('continueAsNewEvery continues as new with trials running (no drain) and carries the table: every trial runs once', () =>
    h.run({ evalMetrics: gridLoss }, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(hyperparameterSearch, {
        taskQueue,
        workflowId: id('search-can'),
        args: [{ base: base(), space: { 'hyperparameters.learningRate': [0.001, 0.003, 0.01, 0.03, 0.1] }, continueAsNewEvery: 2, maxParallel: 2 }],
      });
      const result = await handle.result();
      assert.deepEqual(result.trials.map((t) => t.status), Array(5).fill('completed'));
      assert.equal(result.best.trial, 3);
      assert.equal(mock.inputs('trainEpoch').length, 10);
      assert.deepEqual(runIdsTrained(mock.inputs('trainEpoch')), ['trial-1', 'trial-2', 'trial-3', 'trial-4', 'trial-5']);
      assert.equal((await handle.query(leaderboardQuery)).continuedRuns, 2);
      const first = client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId);
      const counts = await eventCounts(first);
      assert.equal(counts.get('EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW'), 1);
      // No drain: the first run started two trials and continued as new before they ended; a later
      // run got their outcomes (a trialEnded signal, then fetchTrialOutcome).
      assert.equal(counts.get('EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED'), 2);
      assert.ok((counts.get('EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED') ?? 0) < 2, 'a trial ran across the continue-as-new');
      const last = await eventCounts(client.workflow.getHandle(handle.workflowId));
      assert.ok((last.get('EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED') ?? 0) >= 1, 'trials signal their end');
    }));
});

describe('hyperparameterSearch: successive halving', () => {
  // val_loss = a + b / epoch per trial (learningRate 0.0k is trial k). Rung 1 (1 epoch) keeps trials
  // 4, 7, 2 (0.40, 0.45, 0.50); rung 2 (3 epochs) keeps 7 (0.25); rung 3 runs it to 9 epochs.
  // Trial 9 would win at 9 epochs (0.2) but loses the first cut (1.0): halving prunes it.
  const curves: Record<number, [number, number]> = {
    1: [0.5, 0.1], 2: [0.32, 0.18], 3: [0.55, 0.1], 4: [0.35, 0.05], 5: [0.6, 0.1], 6: [0.41, 0.3], 7: [0.15, 0.3], 8: [0.7, 0.1], 9: [0.1, 0.9],
  };
  const halvingLoss = (at: EpochContext) => {
    const [a, b] = curves[Math.round(lrOf(at) * 100)]!;
    return { val_loss: a + b / at.epoch };
  };

  test('promotes the best 1/eta of each rung to continue its own run, prunes the rest, and picks the last rung\'s winner', () =>
    h.run({ evalMetrics: halvingLoss }, async ({ client, taskQueue, mock, id }) => {
      const workflowId = id('halving');
      const lrs = Object.keys(curves).map((k) => Number(k) / 100);
      const result = await client.workflow.execute(hyperparameterSearch, {
        taskQueue,
        workflowId,
        args: [{ base: base({ maxEpochs: 9 }), strategy: 'halving', eta: 3, minEpochs: 1, maxParallel: 3, space: { 'hyperparameters.learningRate': lrs } }],
      });
      assert.deepEqual(result.rungs, [{ rung: 1, trials: 9, epochs: 1 }, { rung: 2, trials: 3, epochs: 3 }, { rung: 3, trials: 1, epochs: 9 }]);
      assert.equal(result.best.trial, 7);
      assert.equal(result.best.epochs, 9);
      assert.equal(result.best.value, 0.15 + 0.3 / 9);
      assert.equal(result.best.workflowId, `${workflowId}/trial-7/rung-3`);
      assert.deepEqual(result.trials.filter((t) => t.status === 'completed').map((t) => t.trial), [7]);
      assert.deepEqual(result.trials.filter((t) => t.status === 'pruned').map((t) => t.trial), [1, 2, 3, 4, 5, 6, 8, 9]);
      assert.deepEqual(result.trials.map((t) => t.rung), [1, 2, 1, 2, 1, 1, 3, 1, 1]);
      // Each rung's export is archived before the promoted run continues (and exports again).
      assert.deepEqual(mock.inputs('archiveTrialModel').map((a) => `${a.runUri.slice(a.runUri.lastIndexOf('/') + 1)}@${a.rung}`).sort(), ['trial-2@1', 'trial-4@1', 'trial-7@1', 'trial-7@2']);
      // A promoted trial resumes its run: epochs are never trained twice.
      const trial7 = mock.inputs('trainEpoch').filter((i) => i.runUri.endsWith('/trial-7'));
      assert.deepEqual(trial7.map((i) => i.targetStep), [5, 10, 15, 20, 25, 30, 35, 40, 45]);
      assert.deepEqual(trial7.map((i) => i.config.resume ?? false), [false, true, true, true, true, true, true, true, true]);
      assert.equal(mock.inputs('trainEpoch').filter((i) => i.runUri.endsWith('/trial-9')).length, 1);
    }));
});

describe('hyperparameterSearch: successive halving with early stopping', () => {
  // Trial k has learningRate 0.0k. Rungs: 4 trials × 2 epochs, 2 × 4, 1 × 6. Trial 1 early-stops
  // at epoch 2 (patience 1) with its best, 0.5, from epoch 1: promoted with trial 3 (0.7), it is not
  // run again but competes at rung 2 as it is, where trial 3 (0.3 at epoch 4) beats it.
  const curves: Record<number, number[]> = {
    1: [0.5, 0.6, 0.6, 0.6, 0.6, 0.6],
    2: [0.9, 0.8, 0.75, 0.7, 0.65, 0.6],
    3: [0.9, 0.7, 0.65, 0.3, 0.2, 0.1],
    4: [1.0, 0.95, 0.9, 0.85, 0.8, 0.75],
  };
  const loss = (at: EpochContext) => ({ val_loss: curves[Math.round(lrOf(at) * 100)]![at.epoch - 1]! });

  test('an early-stopped survivor competes at the next rung without running again', () =>
    h.run({ evalMetrics: loss }, async ({ client, taskQueue, mock, id }) => {
      const result = await client.workflow.execute(hyperparameterSearch, {
        taskQueue,
        workflowId: id('halving-es'),
        args: [{
          base: base({ maxEpochs: 6, earlyStopping: { patience: 1, restoreBestWeights: true } }),
          strategy: 'halving', eta: 2, minEpochs: 2, maxParallel: 4,
          space: { 'hyperparameters.learningRate': [0.01, 0.02, 0.03, 0.04] },
        }],
      });
      assert.deepEqual(result.rungs.map((r) => [r.trials, r.epochs]), [[4, 2], [2, 4], [1, 6]]);
      assert.equal(result.best.trial, 3);
      assert.equal(result.best.value, 0.1);
      const trial1 = result.trials[0]!;
      assert.deepEqual([trial1.status, trial1.rung, trial1.runStatus, trial1.value], ['pruned', 2, 'early-stopped', 0.5]);
      assert.deepEqual(mock.inputs('trainEpoch').filter((i) => i.runUri.endsWith('/trial-1')).map((i) => i.targetStep), [5, 10]);
      assert.deepEqual(mock.inputs('archiveTrialModel').map((a) => `${a.runUri.slice(a.runUri.lastIndexOf('/') + 1)}@${a.rung}`), ['trial-3@1', 'trial-3@2']);
    }));
});

describe('hyperparameterSearch: invalid input', () => {
  test('a bad space fails as InvalidConfig before any trial starts', () =>
    h.run({ evalMetrics: gridLoss }, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(hyperparameterSearch, {
        taskQueue,
        workflowId: id('bad-space'),
        args: [{ base: base(), space: { 'hyperparameters.learningRate': [] }, maxParallel: 0 }],
      });
      const failure = await failureOf(handle);
      assert.equal(failure.type, 'InvalidConfig');
      assert.match(failure.message, /space\.hyperparameters\.learningRate/);
      assert.match(failure.message, /maxParallel/);
      assert.deepEqual(mock.calls, []);
      assert.equal((await eventCounts(handle)).get('EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED'), undefined);
    }));

  test('pbt refuses space paths it cannot change on a copied checkpoint (the model, the optimizer)', () =>
    h.run({ evalMetrics: gridLoss }, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(hyperparameterSearch, {
        taskQueue,
        workflowId: id('pbt-shape'),
        args: [{
          base: base({ maxEpochs: 4 }), strategy: 'pbt', roundEpochs: 2, maxTrials: 4,
          space: { 'hyperparameters.learningRate': [0.1, 0.01], 'model.params.hiddenUnits': [[8], [16]], 'hyperparameters.optimizer': ['adam', 'sgd'] },
        }],
      });
      const failure = await failureOf(handle);
      assert.equal(failure.type, 'InvalidConfig');
      assert.match(failure.message, /Expected `space\.model\.params\.hiddenUnits` to be one of the paths pbt can change on a copied checkpoint \(hyperparameters\.learningRate, /);
      assert.match(failure.message, /`space\.hyperparameters\.optimizer`/);
      assert.doesNotMatch(failure.message, /`space\.hyperparameters\.learningRate`/);
      // Only the worker's description (a local activity) ran: no trial started.
      assert.deepEqual(mock.calls.map((c) => c.name), ['describeWorker']);
    }));

  test('a model the worker does not have fails every trial up front, named once', () =>
    h.run({ evalMetrics: gridLoss }, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(hyperparameterSearch, {
        taskQueue,
        workflowId: id('bad-model'),
        args: [{ base: base({ model: { name: 'transformer' } }), space: { 'hyperparameters.learningRate': [0.1, 0.01] } }],
      });
      const failure = await failureOf(handle);
      assert.equal(failure.type, 'InvalidConfig');
      assert.match(failure.message, /trial-1: model\.name/);
      assert.doesNotMatch(failure.message, /trial-2/);
      assert.deepEqual(mock.calls.map((c) => c.name), ['describeWorker']);
    }));
});
