/**
 * Restart latency after a worker SIGKILL (issue #22 point 4): the run's next workflow task must not
 * wait in the dead worker's sticky queue. A worker process trains a small run and holds before a
 * step drawn from a printed seed; a second worker process starts; the first is SIGKILLed with its
 * trainer. The retried attempt on the second worker resets the workflow's sticky queue
 * (store-and-trainer.ts forgetStickyWorker), so the history has no workflow task that timed out
 * schedule-to-start (before: one, `stickyQueueScheduleToStartTimeout` = 3 s, after every such kill),
 * and the run is back to training within the heartbeat timeout + 5 s. And a worker process loads
 * TensorFlow in its trainer at start, before any task (src/worker.ts), so a run that moves to a
 * freshly started worker does not wait for that load.
 *
 *   node --import tsx --test test/restart-latency.e2e.test.ts      (DT_TEST_SEED=<n> replays a draw)
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { temporal } from '@temporalio/proto';
import type { TrainModelResult } from '../src/workflows';
import { tinyInput } from './e2e-support';
import { resultThroughOutages, workerEnv, workerProcesses } from './helpers/restart';
import { mulberry32, testSeed } from './helpers/seed';
import { tempCheckpointRoot, tempDir, uniqueId, useStackAndWorker, waitFor } from './helpers/temporal';
import { readTimeline } from '../src/training/timeline';

const SUITE = 'restart-latency';
const SEED = testSeed(SUITE);
const STEPS = 4;
const EPOCHS = 6;
const HEARTBEAT_SECONDS = 3;
/** The margin this shared, loaded machine needs on top of the bound (a worker start is not in it: the second worker is up before the kill). */
const MARGIN_SECONDS = 10;

describe(`${SUITE}: a SIGKILLed worker's run moves on without a sticky-queue wait (seed ${SEED})`, { timeout: 300_000 }, () => {
  const harness = useStackAndWorker();
  const taskQueue = uniqueId('restart-latency');
  const root = tempCheckpointRoot();
  const workers = workerProcesses(() => workerEnv(harness.stack.address, taskQueue, root));

  test('the retried attempt runs on the live worker and no workflow task waits for the dead one', async (t) => {
    const r = mulberry32(SEED);
    // A step inside epochs 2..EPOCHS-1, not an epoch's first: the kill lands inside a training activity.
    const epoch = 2 + Math.floor(r() * (EPOCHS - 2));
    const holdStep = (epoch - 1) * STEPS + 2 + Math.floor(r() * (STEPS - 1));
    t.diagnostic(`seed ${SEED}: the first worker holds before step ${holdStep} (epoch ${epoch})`);
    try {
      const held = workers.start({ DT_FAULT_PAUSE_BEFORE_STEP: String(holdStep) });
      const input = tinyInput({ runId: uniqueId('sticky'), stepsPerEpoch: STEPS, maxEpochs: EPOCHS, timeouts: { heartbeatSeconds: HEARTBEAT_SECONDS } });
      const handle = await harness.stack.client.workflow.start('trainModel', { taskQueue, workflowId: uniqueId('restart-latency'), args: [input] });
      await waitFor(async () => held.output().includes(`paused before step ${holdStep}`) || undefined, 120_000, `the trainer to hold before step ${holdStep}`);
      const live = workers.start();
      await waitFor(async () => live.output().includes('Worker state changed') || undefined, 120_000, 'the second worker to poll');
      const killedAt = Date.now();
      await held.kill();
      const result = await resultThroughOutages<TrainModelResult>(handle, 120_000);
      assert.equal(result.history.length, EPOCHS);

      const events = (await handle.fetchHistory()).events ?? [];
      const retried = events.filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1);
      assert.ok(retried.length >= 1, 'the killed attempt was retried');
      const timedOut = events.filter(
        (e) =>
          e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT &&
          e.workflowTaskTimedOutEventAttributes?.timeoutType === temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
      );
      assert.equal(timedOut.length, 0, `no workflow task waited out a sticky queue (found ${timedOut.length} at events ${timedOut.map((e) => String(e.eventId)).join(', ')})`);

      // Back to training: the retried attempt's start, from the kill.
      const started = retried[0]!.eventTime!;
      const backSeconds = (Number(started.seconds) * 1000 + Math.round((started.nanos ?? 0) / 1e6) - killedAt) / 1000;
      t.diagnostic(`the retried attempt started ${backSeconds.toFixed(1)} s after the kill (heartbeat timeout ${HEARTBEAT_SECONDS} s)`);
      assert.ok(backSeconds <= HEARTBEAT_SECONDS + 5 + MARGIN_SECONDS, `retried within ${HEARTBEAT_SECONDS} + 5 s (+${MARGIN_SECONDS} s margin), got ${backSeconds.toFixed(1)} s`);
    } finally {
      await workers.killAll();
    }
  });

  test('a new worker process with DT_TRAINER_PRESTART=1 starts its trainer (TensorFlow loaded) before it is given any task', async () => {
    const timeline = path.join(tempDir('dt-timeline-'), 'timeline.jsonl');
    const idle = workers.start({ DT_TIMELINE_FILE: timeline, DT_TASK_QUEUE: uniqueId('idle'), DT_TRAINER_PRESTART: '1' });
    try {
      const loaded = await waitFor(async () => readTimeline(timeline).find((e) => e.event === 'tf-loaded'), 120_000, 'a trainer of the idle worker to load TensorFlow');
      const entries = readTimeline(timeline);
      assert.ok(entries.some((e) => e.event === 'worker-polling' && e.pid === idle.child.pid));
      assert.notEqual(loaded.pid, idle.child.pid, 'loaded in the trainer process, not the worker');
      assert.equal(entries.filter((e) => e.event === 'attempt-start').length, 0, 'no task reached this worker');
    } finally {
      await idle.kill();
    }
  });
});
