/**
 * Exactness of PBT across restarts, with real processes and real (tiny) training: a population
 * search whose worker process is SIGKILLed and whose dev server is stopped and restarted at moments
 * drawn from a printed seed (DT_TEST_SEED replays one) ends with the same trial table, the same
 * exploit/explore lineage, the same weights in every trial and the same best model, bit for bit, as
 * an uninterrupted search of the same input.
 *
 * Two slots, so two trials of a round train at once and finish in either order. What must be the
 * same is what the search decides, not the order the server happened to record things in: rounds
 * are synchronous (search/pbt.ts decides a round once all of it reported, from the results alone)
 * and a freed slot takes the lowest queued trial, so the lineage, the table and the order children
 * are *initiated* (commands) are functions of the seed; the order their *started* events land in
 * is not, and is compared as a set.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { LineageRecord, SearchResult, TrialRecord } from '../src/workflows';
import { resultThroughOutages, useRestartStack } from './helpers/restart';
import { uniqueId, waitFor } from './helpers/temporal';
import { WEIGHTS_BIN } from '../src/checkpoints/layout';
import { mulberry32, testSeed } from './helpers/seed';
import { checkpointWeights, sha256 } from './e2e-support';
import { chainHistories, logRows, type HistoryEvent } from './search-e2e-support';

const LR = 'hyperparameters.learningRate';
const PBT = {
  base: {
    model: { name: 'mlp', params: { hiddenUnits: [8] } },
    data: {
      train: { name: 'synthetic', params: { size: 256, noise: 1.5 } },
      eval: { name: 'synthetic', split: 'test', params: { size: 128, noise: 1.5 } },
    },
    hyperparameters: { optimizer: 'adam', learningRate: 0.01, batchSize: 32 },
    stepsPerEpoch: 4,
    maxEpochs: 3,
    seed: 3,
    checkpoint: { keepLast: 1000, everySeconds: 0 },
    timeouts: { heartbeatSeconds: 5 },
  },
  strategy: 'pbt',
  roundEpochs: 1,
  // Four trials, the bottom half exploits the top half: two copies a round, two rounds decided.
  maxTrials: 4,
  quantile: 0.5,
  maxParallel: 2,
  seed: 17,
  continueAsNewEvery: 5,
  space: { [LR]: { loguniform: [0.001, 0.1] } },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const harness = useRestartStack();

/** Children of a chain: initiated (command order), started and closed (server order); ids relative to the search. */
async function children(handle: WorkflowHandleWithFirstExecutionRunId): Promise<{ initiated: string[]; started: string[]; moments: number }> {
  const runs: HistoryEvent[][] = await chainHistories(harness.stack.client, handle.workflowId, handle.firstExecutionRunId);
  const short = (id: string) => id.slice(handle.workflowId.length + 1);
  const initiated: string[] = [];
  const started: string[] = [];
  let moments = 0;
  for (const e of runs.flat()) {
    const init = e.startChildWorkflowExecutionInitiatedEventAttributes;
    if (init) initiated.push(short(init.workflowId!));
    const start = e.childWorkflowExecutionStartedEventAttributes;
    if (start) started.push(short(start.workflowExecution!.workflowId!));
    if (start || e.childWorkflowExecutionCompletedEventAttributes || e.childWorkflowExecutionFailedEventAttributes) moments++;
  }
  return { initiated, started, moments };
}

/** A URI under the search's folder, from the search's own folder on (the two searches have different roots and ids). */
const inSearch = (r: SearchResult, uri: string | null) => (uri === null ? null : uri.slice(r.searchUri.length));

const table = (r: SearchResult) =>
  r.trials.map((t: TrialRecord) => ({ id: t.id, params: t.params, status: t.status, rung: t.rung, value: t.value, epochs: t.epochs, step: t.step, runStatus: t.runStatus, model: inSearch(r, t.modelUri) }));
/** Everything but the decision's workflow time; the checkpoint relative to the search. */
const lineage = (r: SearchResult, rows: readonly LineageRecord[] = r.lineage) => rows.map(({ at: _at, checkpointUri, ...rest }) => ({ ...rest, checkpoint: inSearch(r, checkpointUri) }));
/** SHA-256 of each trial's exported weights.bin. */
const exported = (r: SearchResult) => r.trials.map((t) => sha256(fs.readFileSync(path.join(path.dirname(fileURLToPath(t.modelUri!)), WEIGHTS_BIN))));

test('PBT killed and restarted at seeded moments: the same trials, lineage, weights and best model as uninterrupted', async (t) => {
  const seed = testSeed('search-pbt-restart');
  t.diagnostic(`fault seed ${seed} (DT_TEST_SEED=${seed} replays these moments)`);
  const draw = mulberry32(seed);

  const reference = await harness.stack.client.workflow.start('hyperparameterSearch', { taskQueue: harness.worker.taskQueue, workflowId: uniqueId('pbt-ref'), args: [PBT] });
  const expected = (await reference.result()) as SearchResult;
  const expectedChildren = await children(reference);
  t.diagnostic(`reference: ${expectedChildren.initiated.length} runs, ${expected.lineage.length} copies: ${expected.lineage.map((l) => `r${l.round} trial-${l.from}→trial-${l.trial}`).join(', ')}`);
  // The search under test really exploits, and more than once (else the lineage compares nothing).
  assert.equal(expectedChildren.initiated.length, 12);
  assert.equal(expected.lineage.length, 4, JSON.stringify(lineage(expected)));

  const faulted = harness.faultedWorkers('tq-pbt-restart');
  let current = faulted.start();
  const handle = await harness.stack.client.workflow.start('hyperparameterSearch', { taskQueue: faulted.taskQueue, workflowId: uniqueId('pbt-faulted'), args: [PBT] });
  // Moments are child starts and ends (a round's last end is when its copies are made), plus up to 1.5 s.
  const total = expectedChildren.moments;
  const killAt = 2 + Math.floor(draw() * (total - 8));
  const restartAt = killAt + 2 + Math.floor(draw() * (total - killAt - 4));
  const [killDelay, restartDelay] = [draw() * 1500, draw() * 1500];
  t.diagnostic(`worker SIGKILL ${Math.round(killDelay)} ms after child event ${killAt}, server restart ${Math.round(restartDelay)} ms after child event ${restartAt} (of ${total})`);
  await waitFor(async () => (await children(handle)).moments >= killAt, 180_000, `child event ${killAt}`);
  await sleep(killDelay);
  await current.kill();
  t.diagnostic(`SIGKILLed the worker at child event ${(await children(handle)).moments}`);
  current = faulted.start();
  await waitFor(async () => (await children(handle)).moments >= restartAt, 180_000, `child event ${restartAt}`);
  await sleep(restartDelay);
  await harness.restartServer(() => t.diagnostic('stopped the server'));
  const result = await resultThroughOutages<SearchResult>(handle, 300_000);
  const got = await children(handle);

  assert.deepEqual(table(result), table(expected), 'the same trial table, bit for bit');
  assert.deepEqual(lineage(result), lineage(expected), 'the same copies: rounds, donors, recipients, values before and after');
  // results.json counts the copies; the search's log (search-store-rows) holds them, in the order made.
  const written = JSON.parse(fs.readFileSync(fileURLToPath(result.resultsUri), 'utf8')) as { lineage: number };
  assert.equal(written.lineage, expected.lineage.length, 'results.json counts the same copies');
  const logged = (await logRows(result.searchUri)).filter((r) => r.kind === 'lineage').map(({ kind: _kind, ...rest }) => rest as unknown as LineageRecord);
  assert.deepEqual(lineage(result, logged), lineage(expected), 'the log has the same lineage');
  assert.deepEqual(result.rungs, expected.rungs);
  assert.deepEqual(got.initiated, expectedChildren.initiated, 'the same runs, initiated in the same order');
  assert.deepEqual([...got.started].sort(), [...expectedChildren.started].sort(), 'the same runs started (in whatever order the server recorded)');
  assert.deepEqual(exported(result), exported(expected), 'every trial ends with the same weights');
  for (const copy of result.lineage) {
    const [to, from] = [result.trials[copy.trial - 1]!, result.trials[copy.from - 1]!];
    assert.ok(checkpointWeights(to.runUri, copy.step).equals(checkpointWeights(from.runUri, copy.step)), `trial-${copy.trial} holds trial-${copy.from}'s weights at step ${copy.step}`);
  }
  assert.equal(result.best.trial, expected.best.trial);
  assert.equal(result.best.value, expected.best.value);
  assert.equal(result.best.step, expected.best.step);
  assert.deepEqual(result.best.params, expected.best.params);
  assert.equal(inSearch(result, result.best.modelUri), inSearch(expected, expected.best.modelUri));
});
