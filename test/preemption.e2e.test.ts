/**
 * Issue #15 (1): preemption. Two worker processes on one task queue; a trainModel run; the worker
 * holding the training activity gets SIGTERM (to its pid only, as Kubernetes sends it) or SIGINT
 * (to its whole process group, as a terminal's Ctrl-C does) at a moment drawn from a printed seed.
 * The stopping worker must stop training at its next step, commit a checkpoint, fail the attempt
 * at once with a retryable WorkerShuttingDown failure and exit within its budget; the other,
 * already running worker must train again within seconds (not a heartbeat timeout: it is 30 s
 * here); no step is trained twice; the final weights equal an uninterrupted run's bit for bit; no
 * `.dt-lock-*` file is left.
 *
 *   node --import tsx --test test/preemption.e2e.test.ts      (DT_TEST_SEED=<n> replays a draw)
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { temporal } from '@temporalio/proto';
import type { TrainModelResult } from '../src/workflows';
import { mulberry32, testSeed } from './helpers/seed';
import { startStack, startWorkerProcess, tempCheckpointRoot, uniqueId, waitFor, type Stack, type WorkerProcess } from './helpers/temporal';
import { comparable, modelWeights, sha256, tinyInput } from './e2e-support';

const SUITE = 'preemption';
const SEED = testSeed(SUITE);
const STEPS_PER_EPOCH = 300;
const EPOCHS = 3;
/** Milliseconds before every step: an epoch takes 3 s or more, so a signal lands inside a training activity. */
const STEP_DELAY_MS = 10;
/** Seconds from the signal to training again on the other worker that the test accepts (the goal is 5 plus the save). */
const BOUND_S = 15;
const INPUT = tinyInput({
  stepsPerEpoch: STEPS_PER_EPOCH,
  maxEpochs: EPOCHS,
  checkpoint: { everySteps: 0, everySeconds: 0, keepLast: 1000 },
  // Long on purpose: a stop that was not reported would only be noticed after 30 s.
  timeouts: { heartbeatSeconds: 30 },
});

interface Row {
  signal: string;
  sentTo: string;
  stoppedAtStep: number;
  resumedAtStep: number;
  exitS: number;
  trainingAgainS: number;
}

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
/** The activities that train: one per epoch (trainEpoch), or trainUntilStep in histories from before it. */
const TRAINING = new Set(['trainEpoch', 'trainUntilStep']);

function decode(payload: temporal.api.common.v1.IPayload | null | undefined): unknown {
  return payload?.data ? JSON.parse(Buffer.from(payload.data).toString('utf8')) : undefined;
}

interface StepRange {
  readonly from: number;
  readonly to: number;
  readonly attempt: number;
}

/** The step range of every training attempt: completed ones from their results, stopped ones from their failure's details. */
function trainedRanges(events: readonly HistoryEvent[]): { ranges: StepRange[]; stopped: StepRange[]; shutdownFailures: temporal.api.failure.v1.IFailure[] } {
  const trainScheduled = new Set<number>();
  const ranges: StepRange[] = [];
  const stopped: StepRange[] = [];
  const shutdownFailures: temporal.api.failure.v1.IFailure[] = [];
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (TRAINING.has(scheduled?.activityType?.name ?? '')) trainScheduled.add(Number(e.eventId));
    const started = e.activityTaskStartedEventAttributes;
    if (started && trainScheduled.has(Number(started.scheduledEventId)) && started.lastFailure) {
      const failure = started.lastFailure;
      if (failure.applicationFailureInfo?.type === 'WorkerShuttingDown') {
        shutdownFailures.push(failure);
        const result = decode(failure.applicationFailureInfo.details?.payloads?.[0]) as { resumedFromStep: number; step: number };
        const range = { from: result.resumedFromStep, to: result.step, attempt: (started.attempt ?? 1) - 1 };
        ranges.push(range);
        stopped.push(range);
      }
    }
    const completed = e.activityTaskCompletedEventAttributes;
    if (completed && trainScheduled.has(Number(completed.scheduledEventId))) {
      type Trained = { resumedFromStep: number; step: number };
      const r = decode(completed.result?.payloads?.[0]) as (Trained | { trained: Trained | null }) & { attempt: number };
      const trained = 'trained' in r ? r.trained : r;
      if (trained) ranges.push({ from: trained.resumedFromStep, to: trained.step, attempt: r.attempt });
    }
  }
  return { ranges: ranges.sort((a, b) => a.from - b.from || a.to - b.to), stopped, shutdownFailures };
}

function lockFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.name.startsWith('.dt-lock-')) out.push(path.join(entry.parentPath, entry.name));
  }
  return out;
}

describe('preemption: SIGTERM / SIGINT hand a training over to another worker at once', () => {
  let stack: Stack;
  const workers: WorkerProcess[] = [];
  const taskQueue = uniqueId('tq-preempt');
  const checkpointRoot = tempCheckpointRoot();
  const rows: Row[] = [];
  let reference: TrainModelResult;
  const r = mulberry32(SEED);

  /** When each line of a worker's stdout/stderr arrived. */
  const lines = new Map<WorkerProcess, Array<{ at: number; line: string }>>();
  async function worker(): Promise<WorkerProcess> {
    const w = startWorkerProcess({
      TEMPORAL_ADDRESS: stack.address,
      TEMPORAL_NAMESPACE: 'default',
      DT_TASK_QUEUE: taskQueue,
      DT_CHECKPOINT_URI: checkpointRoot,
      DT_FAULT_STEP_DELAY_MS: String(STEP_DELAY_MS),
    });
    const seen: Array<{ at: number; line: string }> = [];
    lines.set(w, seen);
    for (const stream of [w.child.stdout!, w.child.stderr!]) {
      stream.on('data', (d: Buffer) => {
        for (const line of d.toString('utf8').split('\n')) if (line) seen.push({ at: Date.now(), line });
      });
    }
    workers.push(w);
    // Polling. Its trainer starts with its first task (src/worker.ts says why), so the time to train
    // again on the other worker includes loading TensorFlow there.
    await waitFor(async () => w.output().includes('[durable-train] worker on') || undefined, 120_000, 'a worker to start');
    return w;
  }

  before(async () => {
    stack = await startStack();
    await worker();
    await worker();
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: uniqueId('reference'), args: [{ ...INPUT, runId: uniqueId('ref') }] });
    reference = (await handle.result()) as TrainModelResult;
    assert.equal(reference.status, 'completed');
    assert.equal(reference.step, STEPS_PER_EPOCH * EPOCHS);
  });
  after(async () => {
    for (const w of workers) await w.stop();
    await stack?.close();
    if (rows.length > 0) {
      console.log(`[${SUITE}] seed ${SEED}; heartbeat timeout 30 s; budget DT_SHUTDOWN_SECONDS=25 (default)`);
      console.log(`[${SUITE}] | signal | sent to | stopped at step (checkpoint) | first step on the other worker | stopping worker exited (s) | training again on the other worker (s) |`);
      for (const x of rows) {
        console.log(`[${SUITE}] | ${x.signal} | ${x.sentTo} | ${x.stoppedAtStep} | ${x.resumedAtStep} | ${x.exitS.toFixed(1)} | ${x.trainingAgainS.toFixed(1)} |`);
      }
    }
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal} ${signal === 'SIGTERM' ? 'to the worker pid' : 'to the worker process group'}: the other worker trains on within seconds, nothing trained twice, same weights`, async (t) => {
      const live = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
      assert.equal(live.length, 2, 'two workers on the task queue');
      const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: uniqueId(`preempt-${signal}`), args: [{ ...INPUT, runId: uniqueId(signal) }] });
      // The training activity of a seeded epoch, started on one of the workers, then a seeded moment inside it.
      const epoch = 1 + Math.floor(r() * (EPOCHS - 1));
      const delayMs = 300 + Math.floor(r() * 1500);
      const holderPid = await waitFor(async () => {
        const pending = (await handle.describe()).raw.pendingActivities ?? [];
        const train = pending.find((a) => TRAINING.has(a.activityType?.name ?? '') && a.lastStartedTime && a.attempt === 1);
        if (!train?.lastWorkerIdentity) return undefined;
        const history = (await handle.fetchHistory()).events ?? [];
        const trainsScheduled = history.filter((e) => TRAINING.has(e.activityTaskScheduledEventAttributes?.activityType?.name ?? '')).length;
        return trainsScheduled === epoch ? Number(train.lastWorkerIdentity.split('@')[0]) : undefined;
      }, 120_000, `the training activity of epoch ${epoch}`);
      const holder = live.find((w) => w.child.pid === holderPid);
      const other = live.find((w) => w !== holder);
      assert.ok(holder && other, `the activity runs on one of our workers (pid ${holderPid})`);
      await new Promise((res) => setTimeout(res, delayMs));
      t.diagnostic(`seed ${SEED}: ${signal} ${delayMs} ms into epoch ${epoch}'s training on worker pid ${holderPid}`);
      const exited = new Promise<number>((res) => holder.child.once('exit', () => res(Date.now())));
      const sentAt = Date.now();
      process.kill(signal === 'SIGTERM' ? holderPid : -holderPid, signal);

      const again = await waitFor(async () => lines.get(other)!.find((l) => l.at >= sentAt && /(trainEpoch|trainUntilStep) attempt \d+ .* training again at step/.test(l.line)), 60_000, 'the other worker to train again');
      const againAt = again.at;
      const firstStepAgain = Number(/training again at step (\d+)/.exec(again.line)![1]);
      const exitedAt = await exited;
      assert.equal(holder.child.exitCode, 0, `the stopping worker exits cleanly:\n${holder.output().slice(-3000)}`);
      const result = (await handle.result()) as TrainModelResult;
      const trainingAgainS = (againAt - sentAt) / 1000;
      const exitS = (exitedAt - sentAt) / 1000;

      // Handed back at once with the failure that says why (not a heartbeat timeout).
      const events = (await handle.fetchHistory()).events ?? [];
      const { ranges, stopped, shutdownFailures } = trainedRanges(events);
      assert.equal(shutdownFailures.length, 1, 'one attempt failed with WorkerShuttingDown');
      assert.match(shutdownFailures[0]!.message ?? '', /worker is shutting down \(received SIG(TERM|INT)\): training stopped at step \d+ and committed checkpoint \d+/);
      assert.equal(shutdownFailures[0]!.applicationFailureInfo?.nonRetryable ?? false, false, 'retryable');
      // No step trained twice, none skipped: the attempts' step ranges tile 0..last.
      let at = 0;
      for (const range of ranges) {
        assert.equal(range.from, at, `attempts' step ranges ${JSON.stringify(ranges)}`);
        at = range.to;
      }
      assert.equal(at, STEPS_PER_EPOCH * EPOCHS);
      const stoppedAt = stopped[0]!.to;
      assert.equal(firstStepAgain, stoppedAt + 1, 'the other worker trains on from the step after the checkpoint the stopped attempt committed');
      // The same run as an uninterrupted one, bit for bit.
      assert.equal(result.status, 'completed');
      assert.deepEqual(comparable(result.history), comparable(reference.history), 'every epoch, metrics bit for bit');
      assert.equal(sha256(modelWeights(result)), sha256(modelWeights(reference)), 'exported weights.bin (SHA-256)');
      assert.deepEqual(lockFiles(fileURLToPath(checkpointRoot)), [], 'no .dt-lock-* file left');
      assert.doesNotMatch(holder.output(), /could not release the lease|was killed/, 'the save finished within the budget and released the lease');

      rows.push({ signal, sentTo: signal === 'SIGTERM' ? 'worker pid' : 'process group', stoppedAtStep: stoppedAt, resumedAtStep: firstStepAgain, exitS, trainingAgainS });
      t.diagnostic(`${signal}: stopped at step ${stoppedAt}; the stopping worker exited after ${exitS.toFixed(1)} s; training again on the other worker after ${trainingAgainS.toFixed(1)} s`);
      assert.ok(trainingAgainS < BOUND_S, `training again ${trainingAgainS.toFixed(1)} s after ${signal} (bound ${BOUND_S} s; a heartbeat timeout would be 30 s)`);
      assert.ok(exitS < 25, `the stopping worker exited ${exitS.toFixed(1)} s after ${signal} (budget 25 s)`);
      // The next case needs two workers again.
      await worker();
    });
  }
});
