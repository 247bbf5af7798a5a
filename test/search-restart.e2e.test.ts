/**
 * Exactness of ASHA across restarts, with real processes and real (tiny) training: a search whose
 * worker process is SIGKILLed and whose dev server is stopped and restarted at moments drawn from a
 * printed seed (DT_TEST_SEED replays one) ends with the same trial table, the same promotions (the
 * same child runs, in the same order) and the same best model, bit for bit, as an uninterrupted
 * search of the same input. maxParallel is 1: with more slots ASHA's promotions depend on the order
 * trials finish in (README, Hyperparameter search).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { SearchResult } from '../src/workflows';
import { resultThroughOutages, useRestartStack } from './helpers/restart';
import { uniqueId, waitFor } from './helpers/temporal';
import { tinyInput } from './e2e-support';
import { mulberry32, testSeed } from './helpers/seed';
import { chainHistories, childStats } from './search-e2e-support';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ASHA = {
  base: tinyInput({ stepsPerEpoch: 4, maxEpochs: 4 }),
  strategy: 'asha',
  eta: 2,
  minEpochs: 1,
  maxTrials: 6,
  maxParallel: 1,
  seed: 11,
  continueAsNewEvery: 5,
  space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.1] } },
};

const harness = useRestartStack();

const table = (r: SearchResult) => r.trials.map((t) => ({ id: t.id, params: t.params, status: t.status, rung: t.rung, value: t.value, epochs: t.epochs, step: t.step, runStatus: t.runStatus }));
const started = async (handle: WorkflowHandleWithFirstExecutionRunId) =>
  childStats(await chainHistories(harness.stack.client, handle.workflowId, handle.firstExecutionRunId)).started.map((w) => w.slice(handle.workflowId.length + 1));

for (const [name, INPUT] of [['ASHA', ASHA]] as const) {
  test(`${name} killed and restarted at seeded moments: the same trials, promotions and best model as uninterrupted`, async (t) => {
    const seed = testSeed(`search-restart ${name}`);
    t.diagnostic(`fault seed ${seed} (DT_TEST_SEED=${seed} replays these moments)`);
    const draw = mulberry32(seed);

    const reference = await harness.stack.client.workflow.start('hyperparameterSearch', { taskQueue: harness.worker.taskQueue, workflowId: uniqueId('asha-ref'), args: [INPUT] });
    const expected = (await reference.result()) as SearchResult;
    const expectedRuns = await started(reference);
    t.diagnostic(`reference: ${expectedRuns.length} runs: ${expectedRuns.join(', ')}`);

    const faulted = harness.faultedWorkers('tq-asha-restart');
    let current = faulted.start();
    const handle = await harness.stack.client.workflow.start('hyperparameterSearch', { taskQueue: faulted.taskQueue, workflowId: uniqueId('asha-faulted'), args: [INPUT] });
    // A worker SIGKILL after the k-th run started (plus up to 1.5 s), then a server restart later on.
    const killAt = 2 + Math.floor(draw() * Math.max(1, expectedRuns.length - 4));
    const restartAt = killAt + 1 + Math.floor(draw() * Math.max(1, expectedRuns.length - killAt - 2));
    await waitFor(async () => (await started(handle)).length >= killAt, 180_000, `run ${killAt} started`);
    await sleep(draw() * 1500);
    await current.kill();
    t.diagnostic(`SIGKILLed the worker with ${(await started(handle)).length} runs started`);
    current = faulted.start();
    await waitFor(async () => (await started(handle)).length >= restartAt, 180_000, `run ${restartAt} started`);
    await sleep(draw() * 1500);
    await harness.restartServer(() => t.diagnostic(`stopped the server after run ${restartAt} started`));
    const result = await resultThroughOutages<SearchResult>(handle, 300_000);

    assert.deepEqual(table(result), table(expected), 'the same trial table, bit for bit');
    // One slot: the same runs in the same order (two children started together may be recorded in either order).
    assert.deepEqual(await started(handle), expectedRuns, 'the same runs (promotions), in the same order');
    assert.deepEqual(result.rungs, expected.rungs);
    assert.equal(result.best.trial, expected.best.trial);
    assert.equal(result.best.value, expected.best.value);
    assert.equal(result.best.step, expected.best.step);
    assert.equal(result.best.modelUri.slice(result.best.modelUri.indexOf('/trial-')), expected.best.modelUri.slice(expected.best.modelUri.indexOf('/trial-')));
  });
}
