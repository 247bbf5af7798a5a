/**
 * `durable-train search-edit`, run as a user runs it (bin/durable-train.js in a child process)
 * against a running hyperparameterSearch on the dev server with scripted activities: an accepted
 * edit prints what changed, a refused one exits 2 with the search's reason, bad usage exits 2
 * without connecting, an unknown workflow exits 3.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { hyperparameterSearch } from '../../src/workflows';
import { runDurableTrain, waitFor } from '../helpers/temporal';
import { Harness, trainInput } from './harness';
import { gate, type EpochContext } from './mock-activities';

let h: Harness;
before(async () => {
  h = await Harness.start();
});
after(async () => {
  await h?.close();
});

const LR = 'hyperparameters.learningRate';
const loss = (at: EpochContext) => ({ val_loss: at.config.hyperparameters.learningRate + 0.1 / at.epoch });

test('search-edit sends one validated edit and prints the reply; refused edits and bad usage exit 2', async () => {
  const open = gate();
  await h.run({ evalMetrics: loss, beforeTrain: () => open.wait }, async ({ client, taskQueue, mock, id }) => {
    const env = { TEMPORAL_ADDRESS: h.stack.address };
    const cli = (...args: string[]) => runDurableTrain(['search-edit', ...args], env);
    const workflowId = id('cli-edit');
    const handle = await client.workflow.start(hyperparameterSearch, {
      taskQueue,
      workflowId,
      args: [{ base: trainInput({ maxEpochs: 1 }), space: { [LR]: [0.01, 0.1] } }],
    });
    await waitFor(async () => mock.inputs('trainEpoch').length > 0, 20_000, 'trial-1 training');

    const parallel = await cli(workflowId, '--max-parallel', '2');
    assert.equal(parallel.code, 0, parallel.stderr);
    assert.equal(parallel.stdout, `Edit 1 of ${workflowId}:\n  maxParallel 1 -> 2\n`);

    const added = await cli(workflowId, '--add-trial', JSON.stringify({ [LR]: 0.05 }), '--json');
    assert.equal(added.code, 0, added.stderr);
    assert.deepEqual(JSON.parse(added.stdout), { workflowId, edit: 2, changes: ['trial-3 added: {"hyperparameters.learningRate":0.05}'] });

    const refused = await cli(workflowId, '--max-parallel', '0');
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /Invalid search edit:\n {2}- Expected `value` to be a whole number from 1 to 1000, got `0` \(number\)/);

    const two = await cli(workflowId, '--max-parallel', '2', '--stop-trial', '1');
    assert.equal(two.code, 2);
    assert.match(two.stderr, /search-edit takes exactly one edit, got 2/);
    const notNumber = await cli(workflowId, '--stop-trial', 'one');
    assert.equal(notNumber.code, 2);
    assert.match(notNumber.stderr, /Expected `--stop-trial` to be a whole number, got `one`/);
    const badJson = await cli(workflowId, '--add-trial', '{lr');
    assert.equal(badJson.code, 2);
    assert.match(badJson.stderr, /Expected `--add-trial` to be a JSON object or @file, got `\{lr`/);
    const unknown = await cli(`${workflowId}-nope`, '--max-parallel', '3');
    assert.equal(unknown.code, 3, unknown.stderr);
    const help = await cli('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--add-trial JSON\|@FILE/);

    open.open();
    const result = await handle.result();
    assert.deepEqual(result.edits.map((e) => e.edit), [{ op: 'maxParallel', value: 2 }, { op: 'addTrials', trials: [{ [LR]: 0.05 }] }]);
    assert.deepEqual(result.trials.map((t) => t.params[LR]), [0.01, 0.1, 0.05]);
  });
});
