/**
 * How every activity talks to the checkpoint store and the trainer process: store failures and
 * trainer failures become Temporal failures (permanent ones non-retryable from the first attempt,
 * faults retryable), every activity heartbeats while it works (the worker while it does the work,
 * the trainer's progress while the trainer does), run-folder files are written once,
 * and the epoch records under `metrics/` are read in one place.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { activityHold } from '../checkpoints/fault-hooks';
import { METRICS_PREFIX } from '../checkpoints/layout';
import type { CheckpointStore } from '../checkpoints/store';
import { asActivityFailures } from './failures';
import type { Progress, RequestBody } from '../training/protocol';
import { WorkerShuttingDownError, TrainerError, trainStoppedEarly } from '../training/trainer-client';
import type { Trainer } from '../training/trainer-pool';

/** `metrics/epoch-<n>.json`: what a run measured at the end of one epoch, written once by evaluateCheckpoint. */
export interface EpochRecord {
  readonly epoch: number;
  readonly step: number;
  readonly learningRate: number;
  /** Training metrics of the epoch (`loss`) and the eval metrics (`val_…`). */
  readonly metrics: Readonly<Record<string, number>>;
  /** Workflow time (ms since the Unix epoch) when the epoch was recorded: TensorBoard's wall time. */
  readonly recordedAt?: number;
  /** Seconds the epoch's training activity took. */
  readonly trainSeconds?: number;
  /** The attempt of the training activity that finished the epoch: above 1, it resumed after an interruption. */
  readonly trainAttempt?: number;
}

/**
 * Runs store calls; a PermanentStoreError (no permission, no bucket) fails the activity without
 * retries. The activity heartbeats meanwhile through withWorkerHeartbeat (below), which wraps every
 * activity. Each store call has its own deadline (retry.ts on gs://, DT_STORE_CALL_SECONDS on
 * file://), so a store that stops answering still fails the attempt.
 */
export function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  return asActivityFailures(fn);
}

/** Per running attempt: how many trainer requests are in flight for it, and the details it last heartbeated. */
interface HeartbeatState {
  trainerCalls: number;
  details: unknown;
}
const heartbeats = new WeakMap<Context, HeartbeatState>();

function heartbeatState(ctx: Context): HeartbeatState {
  let state = heartbeats.get(ctx);
  if (!state) heartbeats.set(ctx, (state = { trainerCalls: 0, details: ctx.info.heartbeatDetails }));
  return state;
}

/** Heartbeats what the attempt last reported (the trainer's progress), else what its previous attempt did. */
function beat(ctx: Context): void {
  ctx.heartbeat(heartbeatState(ctx).details);
}

/**
 * Runs an activity so that a dead worker's attempt of it is retried within its heartbeat timeout,
 * not its start-to-close: the worker heartbeats it every second from its own event loop while it
 * works (a SIGKILLed worker stops, the server times the attempt out and retries it on another),
 * except while the trainer works for it (callTrainer): then only the trainer's progress
 * heartbeats, so a trainer that stops moving still misses the timeout. Local activities have no
 * heartbeats (a dead worker's workflow task times out instead). Also where the test-only hold of
 * DT_FAULT_HOLD_DIR (src/checkpoints/fault-hooks.ts) holds an attempt, heartbeating.
 * A retried attempt also drops its workflow's sticky queue (forgetStickyWorker).
 */
export function withWorkerHeartbeat<F extends (...args: never[]) => Promise<unknown>>(fn: F): F {
  const wrapped = async (...args: Parameters<F>): Promise<unknown> => {
    const ctx = activityContext();
    if (!ctx) return fn(...args);
    const { info } = ctx;
    const attempt = { activityType: info.activityType, attempt: info.attempt, workflowId: info.workflowExecution?.workflowId ?? '', activityId: info.activityId };
    if (!info.isLocal && info.attempt > 1) forgetStickyWorker(ctx);
    const timer = info.isLocal
      ? undefined
      : setInterval(() => {
          if (heartbeatState(ctx).trainerCalls === 0) beat(ctx);
        }, 1000);
    try {
      await activityHold('start', attempt);
      const result = await fn(...args);
      await activityHold('end', attempt);
      return result;
    } finally {
      clearInterval(timer);
    }
  };
  return wrapped as unknown as F;
}

/**
 * A retried attempt (its first may have died with its worker) tells the server to forget which
 * worker holds the workflow in its cache (ResetStickyTaskQueue): the workflow task that follows this
 * attempt then goes to the task queue at once, where any live worker takes it, instead of waiting
 * `stickyQueueScheduleToStartTimeout` in a dead worker's sticky queue first (3 s per kill, measured
 * with bench/restart.ts). A live sticky worker only loses its cached copy of the workflow and
 * replays its history once. Best effort: a failure here costs only that wait.
 */
function forgetStickyWorker(ctx: Context): void {
  const execution = ctx.info.workflowExecution;
  if (!execution) return;
  let client: Context['client'];
  try {
    client = ctx.client;
  } catch {
    return; // an activity environment without a client (tests)
  }
  client.workflowService.resetStickyTaskQueue({ namespace: ctx.info.workflowNamespace, execution: { workflowId: execution.workflowId, runId: execution.runId } }).catch(() => undefined);
}

/** The running activity's context; undefined when an activity function is called directly (tests, scripts). */
function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Temporal cancelled the activity because its worker is shutting down (after `shutdownGraceTime`). */
function cancelledByWorkerShutdown(ctx: Context): boolean {
  const why: unknown = ctx.cancellationSignal.reason;
  return why instanceof CancelledFailure && why.message === 'WORKER_SHUTDOWN';
}

/**
 * The failure that hands a stopped attempt back at once: retryable, so the server schedules the
 * next attempt (on another worker) after the retry interval instead of a heartbeat timeout later.
 * Its details carry what the stopped training reached (TrainUntilStepResult), when it got that far.
 */
export function workerShuttingDown(err: WorkerShuttingDownError): ApplicationFailure {
  return ApplicationFailure.create({
    type: err.name,
    message: `${err.message}; another worker continues`,
    nonRetryable: false,
    ...(err.stopped && { details: [err.stopped] }),
  });
}

/**
 * Sends one request to the trainer from inside an activity: heartbeats only what the trainer
 * reports (its progress messages, and its once-a-second "my work moved forward" while it loads
 * data, reads or writes checkpoints or evaluates), so a trainer that stops making progress misses
 * the heartbeat timeout and the attempt is retried; turns activity cancellation into a stop at the
 * trainer's next step; makes a trainer error that retrying cannot fix non-retryable. When the
 * worker is shutting down, a training the trainer stopped (its checkpoint committed, its lease
 * released) fails the attempt with a retryable `WorkerShuttingDown` failure, not a cancellation.
 */
export async function callTrainer<T>(trainer: Trainer, body: RequestBody): Promise<T> {
  const ctx = Context.current();
  const hb = heartbeatState(ctx);
  let last = hb.details as Progress | undefined;
  let announced = ctx.info.attempt === 1;
  let result: T;
  hb.trainerCalls++;
  try {
    result = await trainer.request<T>(body, {
      onProgress: (p) => {
        hb.details = last = p;
        ctx.heartbeat(p);
        if (!announced) {
          // A retried attempt training again: the moment a moved run is back at work, for the operator.
          announced = true;
          console.log(`[durable-train] ${ctx.info.activityType} attempt ${ctx.info.attempt} of ${ctx.info.workflowExecution?.workflowId ?? '(no workflow)'} training again at step ${p.step}`);
        }
      },
      onWorking: () => ctx.heartbeat(last),
      signal: ctx.cancellationSignal,
    });
  } catch (err) {
    if (err instanceof TrainerError && err.nonRetryable) throw ApplicationFailure.nonRetryable(err.message, err.name);
    // A trainer that lost the run's lease fails this attempt only (fencing.ts: a live attempt takes it back).
    if (err instanceof TrainerError && err.name === 'LeaseLostError') throw ApplicationFailure.retryable(err.message, err.name);
    if (err instanceof WorkerShuttingDownError) throw workerShuttingDown(err);
    throw err;
  } finally {
    hb.trainerCalls--;
  }
  // A worker that did not start the trainers' drain itself (a plugin user's): Temporal's cancellation says why.
  const stopped = trainStoppedEarly(body, result);
  if (stopped && cancelledByWorkerShutdown(ctx)) throw workerShuttingDown(WorkerShuttingDownError.stoppedAt('Temporal worker shutdown', stopped));
  return result;
}

/** Every `metrics/epoch-<n>.json` of the run in `store`, oldest epoch first. */
export async function readEpochRecords(store: CheckpointStore): Promise<EpochRecord[]> {
  const records: EpochRecord[] = [];
  for (const key of await store.list(METRICS_PREFIX)) {
    const data = await store.get(key);
    if (data) records.push(JSON.parse(data.toString('utf8')) as EpochRecord);
  }
  return records.sort((a, b) => a.epoch - b.epoch);
}
