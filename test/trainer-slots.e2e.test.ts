/**
 * Trainer slots end to end (issue #15): one worker with two trainer slots runs a search's two
 * trials at once, on a real dev server with real trainer processes and real training. Two training
 * activities whose time ranges overlap (server event times) could still have queued behind one
 * trainer; the pool's own view, sampled while they run, shows both slots busy with different trials
 * in two different processes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { NativeConnection, Worker } from '@temporalio/worker';
import { DurableTrainPlugin } from '../src/plugin';
import { TrainerPool } from '../src/training/trainer-pool';
import type { SearchResult } from '../src/workflows';
import { startStack, tempCheckpointRoot, uniqueId, workflowBundle, type Stack } from './helpers/temporal';
import { tinyInput } from './e2e-support';
import type { HistoryEvent } from './search-e2e-support';

/** Each step waits this long first (DT_FAULT_STEP_DELAY_MS, off the CPU): an epoch lasts ~1 s, however busy the machine. */
const STEP_DELAY_MS = 120;
const STEPS_PER_EPOCH = 8;
const SEARCH = {
  base: tinyInput({ stepsPerEpoch: STEPS_PER_EPOCH, maxEpochs: 2 }),
  space: { 'hyperparameters.learningRate': [0.05, 0.01] },
  maxParallel: 2,
};

const millis = (t: HistoryEvent['eventTime']): number => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

/** [started, completed] (server times) of every completed `activityType` in a history. */
function activitySpans(events: readonly HistoryEvent[], activityType: string): [number, number][] {
  const scheduled = new Map<string, string>();
  const started = new Map<string, number>();
  const spans: [number, number][] = [];
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType!.name!);
    if (e.activityTaskStartedEventAttributes) started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), millis(e.eventTime));
    const done = e.activityTaskCompletedEventAttributes;
    if (done && scheduled.get(String(done.scheduledEventId)) === activityType) spans.push([started.get(String(done.scheduledEventId))!, millis(e.eventTime)]);
  }
  return spans;
}

/** Milliseconds during which a span of `a` and a span of `b` both ran. */
function overlapMs(a: readonly [number, number][], b: readonly [number, number][]): number {
  let total = 0;
  for (const [s1, e1] of a) for (const [s2, e2] of b) total += Math.max(0, Math.min(e1, e2) - Math.max(s1, s2));
  return total;
}

describe('trainer slots', () => {
  let stack: Stack;
  let pool: TrainerPool;
  let worker: Worker;
  let running: Promise<void>;
  let connection: NativeConnection;
  const taskQueue = uniqueId('slots');

  before(async () => {
    stack = await startStack();
    pool = TrainerPool.create({
      slots: 2,
      backend: process.env.DT_BACKEND ?? 'auto',
      env: { DT_FAULT_STEP_DELAY_MS: String(STEP_DELAY_MS) },
      log: () => undefined,
    });
    const plugin = new DurableTrainPlugin({ trainer: pool, checkpointRoot: tempCheckpointRoot() });
    connection = await NativeConnection.connect({ address: stack.address });
    worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: await workflowBundle(),
      plugins: [plugin],
      maxConcurrentActivityTaskExecutions: plugin.trainer.size,
    });
    running = worker.run();
  });
  after(async () => {
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await running;
    await pool?.close();
    await connection?.close();
    await stack?.close();
  });

  test('a search with maxParallel 2 on one worker with 2 slots trains both trials at once, in two trainer processes', async (t) => {
    // Both slots busy at one moment, with different runs: [pid, runUri] per slot.
    let together: [number | undefined, string | undefined][] | undefined;
    const sampler = setInterval(() => {
      const now = pool.status();
      // A slot may be busy with a request of no run (a trial's describeWorker): both must have trained a trial.
      if (!together && now.every((s) => s.inFlight === 1 && s.lastRun !== undefined) && new Set(now.map((s) => s.lastRun)).size === 2) together = now.map((s) => [s.pid, s.lastRun]);
    }, 20);
    const startedAt = Date.now();
    const handle = await stack.client.workflow.start('hyperparameterSearch', { taskQueue, workflowId: uniqueId('search'), args: [SEARCH] });
    let result: SearchResult;
    try {
      result = (await handle.result()) as SearchResult;
    } finally {
      clearInterval(sampler);
    }
    t.diagnostic(`2 trials in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
    assert.deepEqual(result.trials.map((tr) => [tr.status, tr.epochs]), [['completed', 2], ['completed', 2]]);

    // Server times: the two trials' training activities ran at the same time.
    const spans = await Promise.all(
      result.trials.map(async (tr) => activitySpans((await stack.client.workflow.getHandle(tr.workflowId!).fetchHistory()).events ?? [], 'trainEpoch')),
    );
    assert.deepEqual(spans.map((s) => s.length), [2, 2], 'one training activity per epoch');
    const overlap = overlapMs(spans[0]!, spans[1]!);
    const epochMs = STEPS_PER_EPOCH * STEP_DELAY_MS;
    t.diagnostic(`training activities overlap for ${overlap.toFixed(0)} ms (an epoch's steps wait ${epochMs} ms)`);
    assert.ok(overlap > 0, `the two trials' training activities overlap: ${JSON.stringify(spans)}`);

    // In two processes: both slots were busy with the two trials at one moment.
    assert.ok(together, 'both slots were seen busy with different trials at the same moment');
    const [[pidA, runA], [pidB, runB]] = together as [[number, string], [number, string]];
    assert.ok(pidA !== undefined && pidB !== undefined && pidA !== pidB, `two trainer pids: ${pidA}, ${pidB}`);
    assert.deepEqual([runA, runB].sort(), result.trials.map((tr) => tr.runUri).sort(), 'each slot trained one of the trials');
    t.diagnostic(`trainer pids ${pidA} and ${pidB}`);
  });
});
