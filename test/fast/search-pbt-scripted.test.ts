/**
 * PBT in hyperparameterSearch on the real dev server with scripted activities: a population of
 * four trains in two rounds; at the end of round 1 the worst trial copies the best one's checkpoint
 * (copyTrialCheckpoint, at the round's step), takes a perturbed learning rate and continues its own
 * run from there; the lineage is in the result and in results.json and survives continue-as-new.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseSearchConfig } from '../../src/config/search-config';
import { hyperparameterSearch } from '../../src/workflows';
import { perturbParams } from '../../src/workflows/search/pbt';
import { eventCounts, Harness, trainInput } from './harness';
import type { EpochContext } from './mock-activities';
import { tableFromLog } from '../../src/activities/search-results';

let h: Harness;
before(async () => {
  h = await Harness.start();
});
after(async () => {
  await h?.close();
});

const LR = 'hyperparameters.learningRate';
/** Best at learning rate 0.01; the rate the trainer is given is the one that counts. */
const loss = (at: EpochContext) => ({ val_loss: Math.abs(Math.log10(at.learningRate) + 2) + 0.1 / at.epoch });
const tail = (uri: string) => uri.slice(uri.lastIndexOf('/') + 1);

describe('hyperparameterSearch: PBT', () => {
  test('the bottom quantile copies a top trial\'s checkpoint at the round and trains on with a perturbed rate; lineage in the result', () =>
    h.run({ evalMetrics: loss }, async ({ client, taskQueue, mock, id }) => {
      const input = {
        base: trainInput({ maxEpochs: 4 }),
        strategy: 'pbt',
        roundEpochs: 2,
        maxTrials: 4,
        maxParallel: 2,
        seed: 3,
        // Five starts, then drain and continue as new: the exploit of round 1 is carried across.
        continueAsNewEvery: 5,
        space: { [LR]: [0.001, 0.003, 0.01, 0.03, 0.1] },
      };
      const handle = await client.workflow.start(hyperparameterSearch, { taskQueue, workflowId: id('pbt'), args: [input] });
      const result = await handle.result();

      // Round 1 (2 epochs): 3 (lr 0.01) 0.05 < 4 (0.03) 0.527 < 2 (0.003) 0.573 < 1 (0.001) 1.05: trial 1 copies trial 3.
      const explored = perturbParams(parseSearchConfig(input).space, { [LR]: 0.01 }, 3, 1, 1)[LR];
      assert.ok(explored === 0.003 || explored === 0.03, `explored ${String(explored)}`);
      assert.equal(result.lineage.length, 1);
      const [copy] = result.lineage;
      assert.deepEqual(
        { round: copy!.round, step: copy!.step, epochs: copy!.epochs, trial: copy!.trial, from: copy!.from, previousParams: copy!.previousParams, params: copy!.params, fromParams: copy!.fromParams },
        { round: 1, step: 10, epochs: 2, trial: 1, from: 3, previousParams: { [LR]: 0.001 }, params: { [LR]: explored }, fromParams: { [LR]: 0.01 } },
      );
      assert.equal(copy!.value, 1 + 0.05);
      assert.equal(copy!.fromValue, 0.05);
      const copies = mock.inputs('copyTrialCheckpoint');
      assert.deepEqual(copies.map((c) => [tail(c.fromRunUri), tail(c.toRunUri), c.step, c.round]), [['trial-3', 'trial-1', 10, 1]]);

      // Trial 1's round 2 resumes its own run (from the copied step) at the perturbed rate.
      const trial1 = mock.inputs('trainEpoch').filter((i) => i.runUri.endsWith('/trial-1'));
      assert.deepEqual(trial1.map((i) => [i.targetStep, i.learningRate, i.config.resume ?? false]), [
        [5, 0.001, false], [10, 0.001, false], [15, explored, true], [20, explored, true],
      ]);
      assert.deepEqual(result.trials.map((t) => [t.id, t.status, t.rung, t.epochs]), [
        ['trial-1', 'completed', 2, 4], ['trial-2', 'completed', 2, 4], ['trial-3', 'completed', 2, 4], ['trial-4', 'completed', 2, 4],
      ]);
      assert.deepEqual(result.trials[0]!.params, { [LR]: explored });
      assert.deepEqual(result.rungs.map((r) => [r.rung, r.epochs]), [[1, 2], [2, 4]]);
      assert.equal(result.best.trial, 3);
      assert.equal(result.best.value, 0.1 / 4);
      // Each round's export is archived before the trial trains on (trainModel never overwrites one).
      assert.deepEqual(mock.inputs('archiveTrialModel').map((a) => `${tail(a.runUri)}@${a.rung}`).sort(), ['trial-1@1', 'trial-2@1', 'trial-3@1', 'trial-4@1']);
      const written = mock.inputs('writeSearchResults');
      // The copies are in the search's log (search-store-rows): results.json is written from it.
      const last = written[written.length - 1]!;
      assert.equal(last.logUri, `${result.searchUri}/log/`);
      assert.deepEqual((await tableFromLog(mock.logStore(result.searchUri), last)).small.lineage, result.lineage);
      const first = client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId);
      assert.equal((await eventCounts(first)).get('EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW'), 1);
    }));
});
