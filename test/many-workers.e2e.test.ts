/**
 * Issue #15, many workers: two worker processes (src/worker.ts, each with its own trainer) on one
 * task queue and one checkpoint root, as a fleet shares a bucket, run a 4-trial random search with
 * real (tiny, synthetic) training.
 *
 * 1. Worker B is SIGKILLed (with its trainer) in the middle of one of its trials: its trainer holds
 *    before a step of the first epoch it trains, whichever epoch of whichever trial the queue gives it
 *    (the step within the epoch is drawn from the printed seed; DT_TEST_SEED replays it), and the kill follows a
 *    seeded delay while worker A keeps training the other trials. Nothing is lost: every trial runs
 *    as exactly one child run, completes, and records each epoch once.
 * 2. The same search again on worker A and a fresh worker B, uninterrupted: trials train on both
 *    workers (worker identities from the trials' ActivityTaskStarted events), and every trial's
 *    exported weights.bin equals the killed search's byte for byte (training is deterministic for a
 *    seed, whichever worker and attempt ran each epoch).
 *
 *   node --import tsx --test test/many-workers.e2e.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { METRICS_JSONL, WEIGHTS_BIN, joinUri } from '../src/checkpoints/layout';
import type { SearchResult } from '../src/workflows';
import { comparable, sha256, tinyInput } from './e2e-support';
import { mulberry32, testSeed } from './helpers/seed';
import { startStack, startWorkerProcess, tempCheckpointRoot, uniqueId, waitFor, type Stack, type WorkerProcess } from './helpers/temporal';
import { chainHistories, childResult, childStats, type HistoryEvent } from './search-e2e-support';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STEPS = 10;
const EPOCHS = 3;
const TRIALS = 4;
const SEARCH = {
  base: tinyInput({ stepsPerEpoch: STEPS, maxEpochs: EPOCHS, timeouts: { heartbeatSeconds: 3 } }),
  strategy: 'random',
  maxTrials: TRIALS,
  // All four at once: a worker takes one activity per trainer slot (one here), so both get trials.
  maxParallel: TRIALS,
  seed: 5,
  space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.1] } },
};

const SEED = testSeed('many-workers');
const draw = mulberry32(SEED);
// A step within an epoch: the killed worker holds there in the first epoch it trains, whichever
// epoch that is (on a loaded machine worker A may have taken every trial's first epoch).
const HOLD_IN_EPOCH = 1 + Math.floor(draw() * STEPS);
const HOLD_STEPS = Array.from({ length: EPOCHS }, (_, e) => e * STEPS + HOLD_IN_EPOCH);
const KILL_DELAY_MS = Math.floor(draw() * 1500);

/** `${pid}@${hostname}`: the SDK's default worker identity (src/worker.ts sets none). */
const identityOf = (w: WorkerProcess): string => `${w.child.pid}@${os.hostname()}`;

/** Identities of the workers that started each epoch activity (trainEpoch) attempt in one run's history. */
function trainingIdentities(events: HistoryEvent[]): string[] {
  const train = new Set<string>();
  const out: string[] = [];
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainEpoch') train.add(String(e.eventId));
    const started = e.activityTaskStartedEventAttributes;
    if (started && train.has(String(started.scheduledEventId))) out.push(started.identity ?? '');
  }
  return out;
}

async function childHistories(client: Client, result: SearchResult): Promise<HistoryEvent[][]> {
  return Promise.all(result.trials.map(async (t) => (await client.workflow.getHandle(t.workflowId!).fetchHistory()).events ?? []));
}

const weightsOf = (modelUri: string): string => sha256(fs.readFileSync(path.join(path.dirname(fileURLToPath(modelUri)), WEIGHTS_BIN)));

describe('many workers on one task queue', () => {
  let stack: Stack;
  const workers: WorkerProcess[] = [];
  const taskQueue = uniqueId('tq-fleet');
  const checkpointRoot = tempCheckpointRoot();
  let killed: SearchResult | undefined;
  let workerA: WorkerProcess;

  async function startWorker(env: Record<string, string> = {}): Promise<WorkerProcess> {
    const w = startWorkerProcess({
      TEMPORAL_ADDRESS: stack.address,
      TEMPORAL_NAMESPACE: 'default',
      DT_TASK_QUEUE: taskQueue,
      DT_CHECKPOINT_URI: checkpointRoot,
      // Steps of a few ms would let one worker drain every trial's epoch before the other polls;
      // at 25 ms a step an epoch holds a worker's slot long enough for the other worker to get work.
      DT_FAULT_STEP_DELAY_MS: '25',
      ...env,
    });
    workers.push(w);
    await waitFor(async () => w.output().includes('[durable-train] worker on') || undefined, 60_000, `worker ${w.child.pid} to poll`);
    return w;
  }

  const search = (name: string): Promise<WorkflowHandleWithFirstExecutionRunId> =>
    stack.client.workflow.start('hyperparameterSearch', { taskQueue, workflowId: uniqueId(name), args: [SEARCH] });

  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    for (const w of workers) await w.stop();
    await stack?.close();
  });

  test(`one of two workers SIGKILLed mid-trial (seed ${SEED}): every trial completes exactly once`, async (t) => {
    [workerA] = await Promise.all([startWorker(), startWorker({ DT_FAULT_PAUSE_BEFORE_STEP: HOLD_STEPS.join(',') })]);
    const workerB = workers[1]!;
    const started = Date.now();
    const handle = await search('fleet-killed');
    const done = handle.result().then(() => true, () => true);
    const held = await Promise.race([
      waitFor(async () => /paused before step \d+/.exec(workerB.output())?.[0], 120_000, `worker B to hold before one of steps ${HOLD_STEPS.join(', ')}`),
      done.then(() => false),
    ]);
    if (!held) {
      const result = (await handle.result()) as SearchResult;
      const ids = (await childHistories(stack.client, result)).map(trainingIdentities);
      assert.fail(`worker B (${identityOf(workerB)}) trained no trial before the search ended: ${JSON.stringify(ids)}\n${workerB.output().slice(-3000)}`);
    }
    await sleep(KILL_DELAY_MS);
    await workerB.kill();
    t.diagnostic(`SIGKILLed worker B (and its trainer) ${KILL_DELAY_MS} ms after it ${held} of a trial`);
    const result = (await handle.result()) as SearchResult;
    t.diagnostic(`${TRIALS} trials in ${((Date.now() - started) / 1000).toFixed(1)} s, one worker lost`);
    killed = result;

    assert.equal(result.trials.length, TRIALS);
    for (const tr of result.trials) {
      assert.equal(tr.status, 'completed', `${tr.id}: ${tr.error}`);
      assert.equal(tr.epochs, EPOCHS, tr.id);
      assert.equal(tr.step, STEPS * EPOCHS, tr.id);
      assert.ok(tr.value !== null && tr.modelUri !== null, `${tr.id} has its result`);
      const epochs = fs.readFileSync(fileURLToPath(joinUri(tr.runUri, METRICS_JSONL)), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { epoch: number }).epoch);
      assert.deepEqual(epochs, [1, 2, 3], `${tr.id}: every epoch recorded once`);
    }
    const stats = childStats(await chainHistories(stack.client, handle.workflowId, handle.firstExecutionRunId));
    assert.deepEqual(stats.started, [...new Set(stats.started)], 'no trial started twice');
    assert.deepEqual([...stats.started].sort(), result.trials.map((tr) => `${handle.workflowId}/${tr.id}`).sort(), 'one child run per trial');
    assert.equal(stats.openAtEnd, 0);
    // The kill cost something: the held attempt was lost and trained again on worker A.
    const a = identityOf(workerA);
    const histories = await childHistories(stack.client, result);
    const retried = histories.flat().filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1);
    assert.ok(retried.length >= 1, 'an activity attempt was lost with worker B and retried');
    assert.ok(retried.every((e) => e.activityTaskStartedEventAttributes?.identity === a), 'retries ran on the surviving worker');
  });

  test('the same search on two live workers: trials on both, each trial\'s weights equal the killed search\'s', async (t) => {
    const reference = killed;
    assert.ok(reference, 'runs after the kill test');
    const workerB = await startWorker();
    const handle = await search('fleet-clean');
    const result = (await handle.result()) as SearchResult;

    const [a, b] = [identityOf(workerA), identityOf(workerB)];
    const perTrial = (await childHistories(stack.client, result)).map(trainingIdentities);
    const label = (id: string) => (id === a ? 'A' : id === b ? 'B' : id);
    t.diagnostic(`epochs trained per trial, by worker: ${perTrial.map((ids, i) => `trial-${i + 1} ${ids.map(label).join('')}`).join(', ')}`);
    const used = new Set(perTrial.flat());
    assert.ok(used.has(a) && used.has(b), `trials trained on both workers (${[...used].map(label).join(', ')})`);
    assert.ok([...used].every((id) => id === a || id === b), 'and only on them');

    for (const [i, clean] of result.trials.entries()) {
      const faulted: SearchResult['trials'][number] = reference.trials[i]!;
      assert.deepEqual(clean.params, faulted.params, `${clean.id}: the same draw`);
      assert.equal(clean.value, faulted.value, `${clean.id}: the same metric, bit for bit`);
      assert.equal(weightsOf(clean.modelUri!), weightsOf(faulted.modelUri!), `${clean.id}: exported weights.bin (SHA-256)`);
      const [c, f] = await Promise.all([childResult(stack.client, clean.workflowId!), childResult(stack.client, faulted.workflowId!)]);
      assert.deepEqual(comparable(c.history), comparable(f.history), `${clean.id}: every epoch's metrics`);
    }
  });
});
