/**
 * No drain at continue-as-new (issue #23 point 3), with real processes and real (tiny) training: a
 * search with continueAsNewEvery 2 and maxParallel 2 continues as new while both of its trials run
 * (children started with parentClosePolicy ABANDON); each trial signals the chain `trialEnded` as it
 * ends and the run that did not start it fetches its outcome (fetchTrialOutcome). It ends with the
 * table of an uninterrupted search of the same input, row for row; and so it does when its worker is
 * SIGKILLed and its server restarted at moments drawn from a printed seed around the hand-overs
 * (DT_TEST_SEED replays them). Random search: its trials do not depend on the order trials end in.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { SearchResult } from '../src/workflows';
import { resultThroughOutages, useRestartStack } from './helpers/restart';
import { uniqueId, waitFor } from './helpers/temporal';
import { tinyInput } from './e2e-support';
import { mulberry32, testSeed } from './helpers/seed';
import { chainHistories, type HistoryEvent } from './search-e2e-support';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const INPUT = {
  base: tinyInput({ stepsPerEpoch: 4, maxEpochs: 3 }),
  strategy: 'random',
  maxTrials: 6,
  maxParallel: 2,
  seed: 7,
  continueAsNewEvery: 2,
  space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.1] } },
};
const UNINTERRUPTED = { ...INPUT, continueAsNewEvery: 0 };

const harness = useRestartStack();

const table = (r: SearchResult) => r.trials.map((t) => ({ id: t.id, params: t.params, status: t.status, rung: t.rung, value: t.value, epochs: t.epochs, step: t.step, runStatus: t.runStatus, error: t.error }));

/** Per run of the chain: the children it started that had not ended when it continued as new, the trialEnded signals it got and the outcomes it fetched. */
function handOvers(runs: HistoryEvent[][]): Array<{ carried: number; signals: number; fetched: number }> {
  return runs.map((events) => {
    const open = new Set<string>();
    let signals = 0;
    let fetched = 0;
    for (const e of events) {
      const started = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId;
      if (started) open.add(started);
      const ended =
        e.childWorkflowExecutionCompletedEventAttributes ?? e.childWorkflowExecutionFailedEventAttributes ?? e.childWorkflowExecutionCanceledEventAttributes ?? e.childWorkflowExecutionTerminatedEventAttributes;
      if (ended?.workflowExecution?.workflowId) open.delete(ended.workflowExecution.workflowId);
      if (e.workflowExecutionSignaledEventAttributes?.signalName === 'trialEnded') signals++;
      if (e.activityTaskScheduledEventAttributes?.activityType?.name === 'fetchTrialOutcome') fetched++;
    }
    return { carried: open.size, signals, fetched };
  });
}

const chainOf = (h: WorkflowHandleWithFirstExecutionRunId) => chainHistories(harness.stack.client, h.workflowId, h.firstExecutionRunId);

let reference: SearchResult | undefined;
async function uninterrupted(): Promise<SearchResult> {
  reference ??= (await harness.stack.client.workflow.execute('hyperparameterSearch', { taskQueue: harness.worker.taskQueue, workflowId: uniqueId('nodrain-ref'), args: [UNINTERRUPTED] })) as SearchResult;
  return reference;
}

test('continue-as-new with trials running: no drain, each trial\'s outcome reaches a later run once, the table of an uninterrupted search', async (t) => {
  const expected = await uninterrupted();
  assert.deepEqual(expected.trials.map((r) => r.status), Array(6).fill('completed'));
  const handle = await harness.stack.client.workflow.start('hyperparameterSearch', { taskQueue: harness.worker.taskQueue, workflowId: uniqueId('nodrain'), args: [INPUT] });
  const result = (await handle.result()) as SearchResult;
  assert.deepEqual(table(result), table(expected), 'the same trial table, row for row');
  assert.equal(result.best.trial, expected.best.trial);
  assert.equal(result.best.value, expected.best.value);

  const runs = handOvers(await chainOf(handle));
  t.diagnostic(`runs: ${JSON.stringify(runs)}`);
  assert.equal(runs.length, 3, 'six trials, continuing as new every two starts');
  // Each run started two trials and continued as new without waiting for them (drain: 0 carried).
  assert.ok(runs.slice(0, -1).every((r) => r.carried > 0), 'every run but the last continued as new with trials running');
  const carried = runs.slice(0, -1).reduce((n, r) => n + r.carried, 0);
  const fetched = runs.reduce((n, r) => n + r.fetched, 0);
  assert.equal(fetched, carried, 'each trial carried over is fetched once, by a later run');
  assert.equal(runs.reduce((n, r) => n + r.signals, 0), 6, 'each trial signalled its end once');
});

test('worker SIGKILL and server restart at seeded moments around the hand-overs: the table of an uninterrupted search, row for row', async (t) => {
  const seed = testSeed('search-no-drain');
  t.diagnostic(`fault seed ${seed} (DT_TEST_SEED=${seed} replays these moments)`);
  const draw = mulberry32(seed);
  const expected = await uninterrupted();

  const faulted = harness.faultedWorkers('tq-nodrain-restart');
  let current = faulted.start();
  const handle = await harness.stack.client.workflow.start('hyperparameterSearch', { taskQueue: faulted.taskQueue, workflowId: uniqueId('nodrain-faulted'), args: [INPUT] });
  const runsSoFar = async () => (await chainOf(handle)).length;
  // The kill: just after hand-over 1 or 2 (the new run's first tasks, the carried trials ending and signalling).
  const killAfter = 1 + Math.floor(draw() * 2);
  await waitFor(async () => (await runsSoFar()) > killAfter, 240_000, `continue-as-new ${killAfter}`);
  await sleep(draw() * 2000);
  await current.kill();
  t.diagnostic(`SIGKILLed the worker ${killAfter} hand-over(s) in`);
  await sleep(draw() * 3000);
  current = faulted.start();
  // The restart: at the next hand-over, or in the last run's fetches.
  await waitFor(async () => (await runsSoFar()) >= Math.min(3, killAfter + 1), 240_000, 'the next run');
  await sleep(draw() * 2000);
  await harness.restartServer(() => t.diagnostic('stopped the server'));
  const result = await resultThroughOutages<SearchResult>(handle, 400_000);

  assert.deepEqual(table(result), table(expected), 'the same trial table, row for row');
  assert.equal(result.best.trial, expected.best.trial);
  assert.equal(result.best.value, expected.best.value);
  assert.equal(result.best.step, expected.best.step);
  const runs = handOvers(await chainOf(handle));
  t.diagnostic(`runs: ${JSON.stringify(runs)}`);
  assert.ok(runs.slice(0, -1).some((r) => r.carried > 0), 'trials ran across a continue-as-new');
});
