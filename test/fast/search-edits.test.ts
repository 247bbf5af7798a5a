/**
 * Live edits of a running hyperparameterSearch (the `editSearch` Update) on the real dev server with
 * scripted activities: every kind of edit with the reply it gets and its effect on the trials, edits
 * the validator refuses (nothing enters history), and edits that survive continue-as-new. Training
 * waits at a gate the test opens, so each edit lands at a moment the test chose.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { editSearchUpdate, hyperparameterSearch, leaderboardQuery, type SearchEdit } from '../../src/workflows';
import { waitFor } from '../helpers/temporal';
import { eventCounts, Harness, trainInput } from './harness';
import { gate, type EpochContext, type MockActivities } from './mock-activities';
import { tableFromLog } from '../../src/activities/search-results';

let h: Harness;
before(async () => {
  h = await Harness.start();
});
after(async () => {
  await h?.close();
});

const LR = 'hyperparameters.learningRate';
const loss = (at: EpochContext) => ({ val_loss: Math.abs(Math.log10(at.config.hyperparameters.learningRate) + 2) + 0.1 / at.epoch });
const trained = (mock: MockActivities, id: string) => mock.inputs('trainEpoch').filter((i) => i.runUri.endsWith(`/${id}`));
const until = (what: string, fn: () => boolean | Promise<boolean>) => waitFor(async () => (await fn()) || undefined, 20_000, what);
const edit = (handle: WorkflowHandle, e: SearchEdit) => handle.executeUpdate(editSearchUpdate, { args: [e] });

async function refused(handle: WorkflowHandle, e: unknown, message: RegExp): Promise<void> {
  const err = await handle.executeUpdate(editSearchUpdate, { args: [e as SearchEdit] }).then(
    () => assert.fail(`Expected ${JSON.stringify(e)} to be refused`),
    (x: unknown) => x,
  );
  assert.ok(err instanceof WorkflowUpdateFailedError, `Expected WorkflowUpdateFailedError, got ${String(err)}`);
  assert.ok(err.cause instanceof ApplicationFailure);
  assert.equal(err.cause.type, 'InvalidEdit');
  assert.match(err.cause.message, message);
}

describe('hyperparameterSearch: live edits', () => {
  test('each edit is applied, replied with what changed, and logged in the result and results.json', async () => {
    const open = gate();
    await h.run({ evalMetrics: loss, beforeTrain: () => open.wait }, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(hyperparameterSearch, {
        taskQueue,
        workflowId: id('edits'),
        args: [{ base: trainInput({ maxEpochs: 2 }), strategy: 'random', seed: 5, maxTrials: 2, space: { [LR]: { loguniform: [0.001, 0.1] } } }],
      });
      await until('trial-1 training', () => trained(mock, 'trial-1').length === 1);
      assert.deepEqual(await edit(handle, { op: 'maxParallel', value: 2 }), { edit: 1, changes: ['maxParallel 1 -> 2'] });
      await until('trial-2 training', () => trained(mock, 'trial-2').length === 1);
      assert.deepEqual(await edit(handle, { op: 'addTrials', trials: [{ [LR]: 0.05 }] }), { edit: 2, changes: ['trial-3 added: {"hyperparameters.learningRate":0.05}'] });
      assert.deepEqual((await edit(handle, { op: 'pause', trial: 3 })).changes, ['trial-3: held; it does not start until resumed']);
      assert.deepEqual((await edit(handle, { op: 'maxTrials', value: 3 })).changes, ['trial limit 2 -> 3']);
      assert.deepEqual((await edit(handle, { op: 'maxEpochs', value: 3 })).changes, ['epochs of trials started from now on 2 -> 3']);
      assert.match((await edit(handle, { op: 'stop', trial: 1 })).changes[0]!, /^trial-1: stop sent to .*\/trial-1; it is pruned when its run ends$/);
      // The stopped trial's slot goes to the searcher's third draw (trial-4), not to the held trial-3.
      await until('trial-4 training', () => trained(mock, 'trial-4').length === 1);
      open.open();
      await until('trials 2 and 4 done', async () => (await handle.query(leaderboardQuery)).trials.filter((t) => t.status === 'completed').length === 2);
      assert.equal(trained(mock, 'trial-3').length, 0);
      assert.deepEqual((await edit(handle, { op: 'resume', trial: 3 })).changes, ['trial-3: released; it starts when a slot frees']);
      const result = await handle.result();

      assert.deepEqual(result.trials.map((t) => [t.id, t.status, t.epochs]), [
        ['trial-1', 'pruned', 0], ['trial-2', 'completed', 2], ['trial-3', 'completed', 3], ['trial-4', 'completed', 3],
      ]);
      assert.equal(result.failed, 0);
      assert.equal(result.trials[2]!.params[LR], 0.05);
      assert.deepEqual(result.edits.map((e) => e.edit.op), ['maxParallel', 'addTrials', 'pause', 'maxTrials', 'maxEpochs', 'stop', 'resume']);
      assert.deepEqual(result.edits.map((e) => e.number), [1, 2, 3, 4, 5, 6, 7]);
      assert.equal(mock.cancelled.length, 1);
      const written = mock.inputs('writeSearchResults');
      // The edits are in the search's log (search-store-rows): results.json is written from it.
      const last = written[written.length - 1]!;
      assert.equal(last.logUri, `${result.searchUri}/log/`);
      assert.deepEqual((await tableFromLog(mock.logStore(result.searchUri), last)).small.edits, result.edits);
      assert.equal((await eventCounts(handle)).get('EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED'), 7);
    });
  });

  test('a bad edit is refused by the validator, naming field, expected and received, and never enters history', async () => {
    const open = gate();
    await h.run({ evalMetrics: loss, beforeTrain: () => open.wait }, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(hyperparameterSearch, {
        taskQueue,
        workflowId: id('refused'),
        args: [{ base: trainInput({ maxEpochs: 2 }), space: { [LR]: [0.01, 0.1] } }],
      });
      await until('trial-1 training', () => trained(mock, 'trial-1').length === 1);
      await refused(handle, { op: 'maxParallel', value: 0 }, /Expected `value` to be a whole number from 1 to 1000, got `0` \(number\)/);
      await refused(handle, { op: 'maxTrials', value: 3 }, /Expected `value` to be a number that adds trials \(the searcher has 2 in all\), got `3` \(number\)/);
      await refused(handle, { op: 'stop', trial: 7 }, /Expected `trial` to be a whole number from 1 to 1, got `7` \(number\)/);
      await refused(handle, { op: 'resume', trial: 1 }, /Expected `trial` to be a trial paused by an edit, got `"trial-1 \(running\)"`/);
      await refused(handle, { op: 'addTrials', trials: [{ 'hyperparameters.batchSize': 8 }] }, /Expected `trials\[0\]\.hyperparameters\.batchSize` to be a searched path/);
      await refused(handle, { op: 'addTrials', trials: [{ [LR]: -1 }] }, /Expected `trials\[0\]: trial-2: hyperparameters\.learningRate` to be/);
      await refused(handle, { op: 'grow' }, /Expected `op` to be one of `maxParallel`/);
      await refused(handle, { op: 'maxEpochs', value: 3, extra: 1 }, /Expected `extra` to be one of the known fields/);
      open.open();
      const result = await handle.result();
      assert.deepEqual(result.edits, []);
      assert.equal(result.trials.length, 2);
      const counts = await eventCounts(handle);
      assert.equal(counts.get('EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED'), undefined);
      assert.equal(counts.get('EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED'), undefined);
    });
  });

  test('edits survive continue-as-new: a trial held in one run is resumed in a later one, maxParallel carries over', async () => {
    const open = gate();
    await h.run({ evalMetrics: loss, beforeTrain: () => open.wait }, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(hyperparameterSearch, {
        taskQueue,
        workflowId: id('edits-can'),
        args: [{ base: trainInput({ maxEpochs: 1 }), space: { [LR]: [0.001, 0.003, 0.01, 0.03] }, continueAsNewEvery: 2 }],
      });
      await until('trial-1 training', () => trained(mock, 'trial-1').length === 1);
      assert.deepEqual((await edit(handle, { op: 'addTrials', trials: [{ [LR]: 0.02 }] })).changes, ['trial-2 added: {"hyperparameters.learningRate":0.02}']);
      await edit(handle, { op: 'pause', trial: 2 });
      await edit(handle, { op: 'maxParallel', value: 2 });
      open.open();
      // Every grid trial done (three runs of the workflow), the held one still waiting.
      const board = await waitFor(async () => {
        const b = await handle.query(leaderboardQuery);
        return b.trials.filter((t) => t.status === 'completed').length === 4 && b;
      }, 20_000, 'the grid trials done');
      assert.ok(board.continuedRuns >= 1, `continuedRuns ${board.continuedRuns}`);
      assert.equal(board.maxParallel, 2);
      assert.equal(trained(mock, 'trial-2').length, 0);
      await edit(handle, { op: 'resume', trial: 2 });
      const result = await handle.result();
      assert.deepEqual(result.trials.map((t) => t.params[LR]), [0.001, 0.02, 0.003, 0.01, 0.03]);
      assert.deepEqual(result.trials.map((t) => t.status), Array(5).fill('completed'));
      assert.equal(mock.inputs('trainEpoch').length, 5);
      assert.deepEqual(result.edits.map((e) => e.edit.op), ['addTrials', 'pause', 'maxParallel', 'resume']);
      const first = client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId);
      assert.equal((await eventCounts(first)).get('EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW'), 1);
    });
  });
});
