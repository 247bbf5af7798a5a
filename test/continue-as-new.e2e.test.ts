/**
 * Continue-as-new end to end: 60 tiny epochs with continueAsNewEvery 10 (see EPOCHS) become a chain of runs,
 * each with a bounded history, and the chain ends in exactly the state of an uninterrupted run of
 * the same config (continueAsNewEvery 0): same metrics, learning rates, best epoch, early-stopping
 * outcome and final weights, bit for bit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { progressQuery, type TrainModelResult } from '../src/workflows';
import { startStack, startWorker, uniqueId, type InProcessWorker, type Stack } from './helpers/temporal';
import { comparable, eventsPerRun, modelWeights, sha256, tinyInput } from './e2e-support';

/**
 * 60 epochs in 6 runs of 10: what is checked is the mechanism (state carried across each
 * continue-as-new), not the length, and six boundaries with reduceLrOnPlateau's patience 5 and
 * cooldown 2 cross its counters mid-count. Before: 240 epochs in 6 runs of 40 (~90 s alone, 179 s
 * beside two other files in npm test). The uninterrupted run must stay one run: the server suggests
 * continue-as-new at 4,096 events on the dev server, and 60 epochs are ~1,000.
 */
const EPOCHS = 60;
const EVERY = 10;
/**
 * One epoch costs at most 16 events (two activities of 3 events each, three workflow tasks of 3
 * each, an upserted search attribute or two); the start, the describeWorker marker and the
 * final/continue-as-new events add a few dozen. Measured: see the test's diagnostics.
 */
const EVENTS_PER_EPOCH_BOUND = 16;
const HISTORY_BOUND = EVERY * EVENTS_PER_EPOCH_BOUND + 40;

function input(continueAsNewEvery: number): Record<string, unknown> {
  return tinyInput({
    stepsPerEpoch: 1,
    maxEpochs: EPOCHS,
    hyperparameters: { learningRate: 0.03 },
    // Never stops (patience > epochs), but carries its best epoch through every continue-as-new.
    earlyStopping: { patience: 1000, restoreBestWeights: true },
    reduceLrOnPlateau: { patience: 5, factor: 0.5, minDelta: 1e-3, cooldown: 2, minLr: 1e-4 },
    continueAsNewEvery,
  });
}

describe('continue-as-new', () => {
  let stack: Stack;
  let workers: InProcessWorker[];

  before(async () => {
    stack = await startStack();
    // Two workers (two trainer processes) so the chained and the uninterrupted run train side by side.
    workers = await Promise.all([startWorker(stack.address), startWorker(stack.address)]);
  });
  after(async () => {
    await Promise.all(workers?.map((w) => w.stop()) ?? []);
    await stack?.close();
  });

  test(`${EPOCHS} epochs, continueAsNewEvery ${EVERY}: bounded runs, same final state as an uninterrupted run`, async (t) => {
    const chainedId = uniqueId('can');
    const straightId = uniqueId('straight');
    const started = Date.now();
    const chained = await stack.client.workflow.start('trainModel', { taskQueue: workers[0]!.taskQueue, workflowId: chainedId, args: [input(EVERY)] });
    const straight = await stack.client.workflow.start('trainModel', { taskQueue: workers[1]!.taskQueue, workflowId: straightId, args: [input(0)] });
    const firstRunId = chained.firstExecutionRunId;

    const timed = async (p: Promise<unknown>) => {
      const r = (await p) as TrainModelResult;
      return { r, seconds: (Date.now() - started) / 1000 };
    };
    const [a, b] = await Promise.all([timed(chained.result()), timed(straight.result())]);
    t.diagnostic(`chained run took ${a.seconds.toFixed(1)} s, uninterrupted ${b.seconds.toFixed(1)} s (side by side)`);

    // The chain: the first run continued as new, and there are EPOCHS / EVERY runs in all.
    const first = await stack.client.workflow.getHandle(chainedId, firstRunId).describe();
    assert.equal(first.status.name, 'CONTINUED_AS_NEW');
    const runs = await eventsPerRun(stack.client, chainedId);
    t.diagnostic(`runs: ${runs.length}; events per run: ${runs.map((r) => r.events).join(', ')}; bound ${HISTORY_BOUND}`);
    assert.equal(runs.length, EPOCHS / EVERY);
    assert.deepEqual(runs.map((r) => r.status), [...Array(EPOCHS / EVERY - 1).fill('CONTINUED_AS_NEW'), 'COMPLETED']);
    for (const r of runs) assert.ok(r.events <= HISTORY_BOUND, `run ${r.runId} has ${r.events} events > ${HISTORY_BOUND}`);
    const straightRuns = await eventsPerRun(stack.client, straightId);
    assert.equal(straightRuns.length, 1, 'the reference run is one uninterrupted run');
    const straightRun = straightRuns[0];
    t.diagnostic(`the uninterrupted run has ${straightRun!.events} events`);
    assert.ok(straightRun!.events > HISTORY_BOUND, 'without continue-as-new the history grows past the bound');

    // Same final state.
    assert.equal(a.r.status, 'completed');
    assert.equal(a.r.status, b.r.status);
    assert.equal(a.r.epochs, EPOCHS);
    assert.equal(a.r.epochs, b.r.epochs);
    assert.equal(a.r.step, b.r.step);
    assert.deepEqual(a.r.best, b.r.best);
    assert.equal(a.r.modelStep, b.r.modelStep);
    assert.ok(a.r.modelStep < EPOCHS, 'restoreBestWeights exports an earlier (best) epoch');
    assert.deepEqual(a.r.finalMetrics, b.r.finalMetrics);
    assert.equal(a.r.learningRate, b.r.learningRate);
    assert.ok(a.r.learningRate < 0.03, 'the plateau reduced the learning rate');
    assert.deepEqual(comparable(a.r.history), comparable(b.r.history));
    assert.equal(sha256(modelWeights(a.r)), sha256(modelWeights(b.r)));

    const [pa, pb] = await Promise.all([chained.query(progressQuery), straight.query(progressQuery)]);
    assert.equal(pa.continuedRuns, EPOCHS / EVERY - 1);
    assert.equal(pb.continuedRuns, 0);
    assert.deepEqual({ ...pa, runId: '', runUri: '', latestCheckpointUri: '', bestCheckpointUri: '', continuedRuns: 0, secondsPerEpoch: 0, latest: null },
      { ...pb, runId: '', runUri: '', latestCheckpointUri: '', bestCheckpointUri: '', continuedRuns: 0, secondsPerEpoch: 0, latest: null });
  });
});
