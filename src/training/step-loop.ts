/**
 * The loop every training route shares (engine.ts drives it over a route.ts route): step until the
 * target, keep the epoch's running loss on the device, checkpoint on cadence, report progress,
 * stop at the next step when cancelled, and refuse to checkpoint a non-finite loss.
 *
 * Checkpoints are written in the background: training stands still only while the route copies
 * its state into host buffers (the snapshot); hashing and writing overlap the next steps. One
 * write at a time, in step order: a checkpoint due while one is being written is snapshotted and
 * waits its turn (two snapshots in memory at most, a third waits), a failed write fails the
 * request at the next step and nothing after it is committed, and the request returns only once
 * the checkpoint of its last step is committed, so what the workflow records is always durable.
 */
import * as tf from '@tensorflow/tfjs';
import { sha256 } from '../checkpoints/digest';
import { listCheckpointSteps, writeCheckpoint, type ObjectBytes } from '../checkpoints/format';
import { checkpointKey, checkpointObjectKey, MANIFEST, WEIGHTS_BIN } from '../checkpoints/layout';
import type { Lease } from '../checkpoints/lease';
import type { CheckpointStore } from '../checkpoints/store';
import { TimingRecorder } from '../checkpoints/timing';
import { markProgress } from './liveness';
import { NonRetryableTrainingError, type Progress, type TrainRequest, type TrainUntilStepResult } from './protocol';

/** Test-only fault injection (set by the trainer process from DT_FAULT_* variables). */
export interface EngineFaults {
  /** Hold (forever) before training any of these global steps: a test kills the process meanwhile. */
  readonly pauseBeforeSteps?: ReadonlySet<number>;
  /** While writing the checkpoint of this step, right after weights.bin and before the manifest, call `kill`. */
  readonly killDuringCheckpoint?: number;
  /** How to die (the trainer process SIGKILLs its whole process group). */
  readonly kill?: () => void;
  /** Before this global step, block the event loop for good, as a hung native op would. */
  readonly hangBeforeStep?: number;
  /** Wait this long (without blocking the event loop) before every step: a slow trainer, so a test can overlap two. */
  readonly stepDelayMs?: number;
}

/** The part of a route's session the loop reads and advances. */
export interface LoopSession {
  step: number;
  /** Sum of this epoch's step losses so far (float32, on the device). */
  lossSum: tf.Scalar;
  lossSteps: number;
  /** Manifest of the checkpoint the in-memory state equals; undefined once a step ran since. */
  committedSha256: string | undefined;
}

export interface StepLoopOptions {
  readonly req: TrainRequest;
  readonly store: CheckpointStore;
  readonly session: LoopSession;
  /** Trains global step `step` and returns its loss; the loop owns the returned scalar. */
  readonly trainStep: (step: number) => tf.Scalar;
  /** Awaited before `trainStep(step)` when given: a streamed dataset reads the step's examples (batch.ts ExampleSource). */
  readonly beforeStep?: (step: number) => Promise<void> | undefined;
  /** The checkpoint's objects at the session's current step, in host buffers that training cannot change. */
  readonly snapshot: () => Promise<Map<string, ObjectBytes>>;
  /** The run's lease, checked before each commit (none: unfenced writes, as tools and engine tests do). */
  readonly lease: Lease | undefined;
  /**
   * Work to overlap with the write of the target step's checkpoint (evaluating the state in
   * memory, say): called once that state is snapshotted; the result waits for both. Not called when
   * the request trains no step or stops early.
   */
  readonly whileCommitting?: () => Promise<void>;
  readonly onProgress: (p: Progress) => void;
  readonly isCancelled: () => boolean;
  readonly faults: EngineFaults | undefined;
  readonly log: (message: string) => void;
  readonly backend: string;
  /** Date.now() when the request arrived (for `seconds`). */
  readonly started: number;
}

/**
 * True when the in-memory session is exactly the newest checkpoint at or below `targetStep` of
 * `runUri` (same manifest): training can go on from memory instead of loading it.
 */
export async function sessionIsNewest(
  store: CheckpointStore,
  session: (LoopSession & { readonly runUri: string }) | undefined,
  runUri: string,
  targetStep: number,
): Promise<boolean> {
  if (!session?.committedSha256 || session.runUri !== runUri) return false;
  const steps = (await listCheckpointSteps(store)).filter((step) => step <= targetStep);
  if (session.step !== steps[steps.length - 1]) return false;
  const manifest = await store.get(checkpointObjectKey(session.step, MANIFEST));
  return manifest !== undefined && sha256(manifest) === session.committedSha256;
}

/**
 * Writes the checkpoint of `step` under the request's lease (a writer that lost it throws
 * LeaseLostError before anything of this step is stored) and, while the session is still at that
 * step, records which manifest memory equals: none when another writer committed different bytes
 * for the step first.
 */
export async function commitCheckpoint(
  store: CheckpointStore,
  session: LoopSession,
  step: number,
  objects: ReadonlyMap<string, ObjectBytes>,
  lease: Lease | undefined,
  faults: EngineFaults | undefined,
  log: (message: string) => void,
): Promise<{ key: string }> {
  const afterObject =
    faults?.killDuringCheckpoint === step && faults.kill
      ? (name: string) => {
          if (name === WEIGHTS_BIN) {
            log(`fault injection: killing the process group while writing checkpoint ${step}`);
            faults.kill!();
          }
        }
      : undefined;
  const written = await writeCheckpoint(store, step, objects, { ...(afterObject && { afterObject }), ...(lease && { lease }) });
  if (session.step === step) session.committedSha256 = written.matches ? written.manifestSha256 : undefined;
  if (!written.matches) log(`checkpoint ${store.uriOf(written.key)} was committed by another writer with other bytes; memory is not that checkpoint`);
  return { key: written.key };
}

/** How often the loop lets IPC messages (cancellation) in: a stop lands within this plus one step. */
const YIELD_EVERY_MS = 20;

/**
 * Snapshots held at once: the one being written and one waiting for it, so a checkpoint due while
 * the previous one is still being written costs training only its host copy; a third waits.
 */
const MAX_SNAPSHOTS_IN_MEMORY = 2;

/**
 * The checkpoints of one request: when one is due, snapshotting the state and writing it in the
 * background (one write at a time, in step order: one due meanwhile is snapshotted and waits its
 * turn, MAX_SNAPSHOTS_IN_MEMORY at most; a failed write is thrown at the next step and nothing
 * after it is committed), and which step is committed.
 */
class BackgroundCheckpoints {
  /** Newest committed checkpoint; `snapshotStep` also counts the one in flight. */
  committedStep: number;
  snapshotStep: number;
  readonly timing = new TimingRecorder();
  private lastAt = Date.now();
  /** The write chain: each write starts once the one before it settled; never rejects (an error goes to `failure`, thrown at the next step). */
  private chain: Promise<void> = Promise.resolve();
  /** Writes not settled yet, oldest first. */
  private readonly pending: Array<Promise<void>> = [];
  private failure: { readonly error: unknown } | undefined;

  constructor(private readonly o: StepLoopOptions) {
    this.committedStep = o.session.committedSha256 ? o.session.step : -1;
    this.snapshotStep = this.committedStep;
  }

  /** A checkpoint is due every `checkpoint.everySteps` steps and `checkpoint.everySeconds` seconds. */
  isDue(step: number, now: number): boolean {
    const { everySteps, everySeconds } = this.o.req.config.checkpoint;
    return (everySteps > 0 && step % everySteps === 0) || (everySeconds > 0 && now - this.lastAt >= everySeconds * 1000);
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }

  /** The epoch's loss sum so far; a non-finite one fails the request before it is checkpointed. */
  async checkFinite(): Promise<number> {
    const s = this.o.session;
    const sum = (await s.lossSum.data())[0]!;
    if (!Number.isFinite(sum)) {
      const step = this.committedStep;
      throw new NonRetryableTrainingError(
        `Training loss became ${sum} by step ${s.step}; the last good checkpoint is step ${step} (${this.o.store.uriOf(checkpointKey(Math.max(step, 0)))})`,
      );
    }
    return sum;
  }

  /** Waits for every write queued and throws a failure. */
  async settle(): Promise<void> {
    await this.chain;
    this.throwIfFailed();
  }

  /** Waits for every write queued without throwing: no write outlives its request. */
  async drain(): Promise<void> {
    await this.chain;
  }

  /**
   * Snapshots the state now and queues its write behind the ones before it; waits for the writes
   * only when `durable` asks (the target step), or for the oldest when memory holds
   * MAX_SNAPSHOTS_IN_MEMORY snapshots already.
   */
  async write(durable: boolean, overlap?: () => Promise<void>): Promise<void> {
    const { o, timing, pending } = this;
    const blockedFrom = performance.now();
    await this.checkFinite();
    while (pending.length >= MAX_SNAPSHOTS_IN_MEMORY) await pending[0];
    this.throwIfFailed();
    const step = o.session.step;
    const snapshotFrom = performance.now();
    const objects = await o.snapshot();
    timing.add('snapshotMs', performance.now() - snapshotFrom);
    this.snapshotStep = step;
    this.lastAt = Date.now();
    const write = this.chain.then(async () => {
      if (this.failure) return; // nothing after a failed write is committed
      try {
        await timing.run(() => commitCheckpoint(o.store, o.session, step, objects, o.lease, o.faults, o.log));
        this.committedStep = step;
        timing.committed();
      } catch (error) {
        this.failure ??= { error };
      }
    });
    this.chain = write;
    pending.push(write);
    void write.then(() => pending.splice(pending.indexOf(write), 1));
    if (durable) await Promise.all([this.settle(), overlap?.()]);
    timing.add('blockedMs', performance.now() - blockedFrom);
  }
}

/** Test-only faults due before `step` (EngineFaults). */
async function injectFaultsBefore(o: StepLoopOptions, step: number): Promise<void> {
  if (o.faults?.pauseBeforeSteps?.has(step)) {
    o.log(`fault injection: paused before step ${step}`);
    await new Promise<never>(() => setInterval(() => undefined, 60_000));
  }
  if (o.faults?.hangBeforeStep === step) {
    o.log(`fault injection: hanging before step ${step}`);
    for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  }
  if (o.faults?.stepDelayMs) await new Promise((resolve) => setTimeout(resolve, o.faults!.stepDelayMs));
}

/** Trains global step `step` and adds its loss to the epoch's running sum; returns the milliseconds the step itself took. */
async function trainOneStep(o: StepLoopOptions, step: number): Promise<number> {
  const s = o.session;
  if (o.beforeStep) await o.beforeStep(step);
  const epochStart = (step - 1) % o.req.config.stepsPerEpoch === 0;
  const stepFrom = performance.now();
  const cost = o.trainStep(step);
  const stepMs = performance.now() - stepFrom;
  // The running sum stays on the device: it is read only when a checkpoint or the result needs it.
  const next = epochStart ? cost : (tf.tidy(() => tf.add(s.lossSum, cost)) as tf.Scalar);
  if (!epochStart) cost.dispose();
  s.lossSum.dispose();
  s.lossSum = next;
  s.lossSteps = epochStart ? 1 : s.lossSteps + 1;
  s.step = step;
  s.committedSha256 = undefined;
  markProgress();
  return stepMs;
}

export async function runSteps(o: StepLoopOptions): Promise<TrainUntilStepResult> {
  const { req, store, session: s } = o;
  const resumedFromStep = s.step;
  const checkpoints = new BackgroundCheckpoints(o);
  const setupMs = Date.now() - o.started;
  let stepsMs = 0;
  let lastProgressAt = 0;
  let lastYieldAt = Date.now();
  let cancelled = false;

  try {
    while (s.step < req.targetStep) {
      checkpoints.throwIfFailed();
      if (o.isCancelled()) {
        cancelled = true;
        break;
      }
      const step = s.step + 1;
      await injectFaultsBefore(o, step);
      stepsMs += await trainOneStep(o, step);

      const now = Date.now();
      const last = step === req.targetStep;
      const due = last || checkpoints.isDue(step, now);
      // The target's checkpoint is waited for: the result says it is committed.
      if (due) await checkpoints.write(last, last ? o.whileCommitting : undefined);
      if (due || now - lastProgressAt >= 1000) {
        lastProgressAt = now;
        o.onProgress({ step, checkpointStep: checkpoints.committedStep, targetStep: req.targetStep });
      }
      if (Date.now() - lastYieldAt >= YIELD_EVERY_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYieldAt = Date.now();
      }
    }
    if (cancelled && s.step !== checkpoints.snapshotStep) await checkpoints.write(true);
    await checkpoints.settle();
  } finally {
    // No write outlives its request (the next request may be another writer's).
    await checkpoints.drain();
  }
  const lossSum = await checkpoints.checkFinite();
  const checkpointStep = checkpoints.committedStep;
  return {
    step: s.step,
    checkpointStep,
    checkpointUri: store.uriOf(checkpointKey(checkpointStep)),
    loss: s.lossSteps > 0 ? lossSum / s.lossSteps : NaN,
    stepsRun: s.step - resumedFromStep,
    resumedFromStep,
    seconds: (Date.now() - o.started) / 1000,
    backend: o.backend,
    cancelled,
    checkpointTiming: checkpoints.timing.result(),
    loopTiming: { setupMs, stepsMs: Math.round(stepsMs) },
  };
}
