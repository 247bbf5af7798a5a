/**
 * The trainer process: a long-lived child of the worker that owns the TensorFlow device.
 * Synchronous native ops run here, never on the worker's event loop, and a native crash takes
 * down only this process (the activity sees it exit and is retried).
 */
import { execFileSync } from 'node:child_process';
import type { DatasetRegistry } from './datasets';
import type { ModelRegistry } from './models';
import { BackendUnavailableError, backendPreferenceFromEnv, selectBackend, type BackendInfo } from './backend';
import { builtInDatasets } from './datasets';
import { Engine } from './engine';
import { builtInModels } from './models';
import type { ChildMessage, DescribeResult, ParentMessage, SerializedError, TrainRequest } from './protocol';
import { NonRetryableTrainingError } from './protocol';
import { isInputErrorObject } from './input-errors';
import { markingStore, progressMarks } from './liveness';
import type { EngineFaults } from './step-loop';
import { releaseLease } from '../checkpoints/lease';
import { openAllowedStore } from '../checkpoints/open-store';
import { PermanentStoreError } from '../checkpoints/store';
import { UriRefusedError } from '../trust/allow-list';
import { shutdownSecondsFromEnv } from './trainer-client';

/** What a user's trainer module (`DT_TRAINER_MODULE`) exports to add models and datasets. */
export interface TrainerModule {
  register?(registries: { models: ModelRegistry; datasets: DatasetRegistry }): void | Promise<void>;
}

function send(message: ChildMessage): void {
  // After the worker went away there is no one to tell; the request still finishes its save.
  if (process.connected) process.send?.(message);
}

function serializeError(err: unknown): SerializedError {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    message: e.message,
    name: e.name,
    nonRetryable:
      e instanceof NonRetryableTrainingError || e instanceof PermanentStoreError || e instanceof BackendUnavailableError || e instanceof UriRefusedError ||
      // A shape mismatch or an allocation the input made too large fails every attempt the same way.
      isInputErrorObject(e),
    ...(e.stack !== undefined && { stack: e.stack }),
  };
}

/**
 * Stop signals are the worker's to act on, not ours. A terminal's Ctrl-C reaches the whole process
 * group and a `kill` of the group reaches us too; dying then could tear a checkpoint write and
 * leave the store's lock behind. The worker cancels the running request (it stops at its next
 * step and commits a checkpoint) and then closes the IPC channel, which ends this process.
 */
function deferStopSignals(log: (message: string) => void): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => log(`received ${signal}: the worker stops training and then this process`));
  }
}

/** Seconds the trainer may take to stop and save once its worker is gone (`DT_SHUTDOWN_SECONDS`, default 25). */
function shutdownBudgetMs(): number {
  try {
    return shutdownSecondsFromEnv() * 1000;
  } catch {
    // The worker refused the value before starting this process; only a hand-started trainer gets here.
    return 25_000;
  }
}

/** SIGKILLs this process's whole process group (the worker and its trainer), as a crash would. */
function killProcessGroup(): void {
  let pgid = process.ppid;
  try {
    pgid = Number(execFileSync('ps', ['-o', 'pgid=', '-p', String(process.pid)], { encoding: 'utf8' }).trim()) || pgid;
  } catch {
    // no ps: the worker that forked us leads the group when it was started detached
  }
  process.kill(-pgid, 'SIGKILL');
}

/**
 * Test-only fault injection: DT_FAULT_PAUSE_BEFORE_STEP (a global step, or several separated by
 * commas: the trainer holds before the first of them it reaches), DT_FAULT_KILL_DURING_CHECKPOINT,
 * DT_FAULT_HANG_BEFORE_STEP (global steps), DT_FAULT_STEP_DELAY_MS (milliseconds before every step);
 * DT_FAULT_KILL_IN_EVALUATION (a step: killed once its evaluation is computed) is read in main.
 */
function faultsFromEnv(env: NodeJS.ProcessEnv): EngineFaults | undefined {
  const step = (name: string, v = env[name]): number | undefined => {
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`Expected \`${name}\` to be a step from 1 and up, got ${JSON.stringify(v)}`);
    return n;
  };
  const pauses = env.DT_FAULT_PAUSE_BEFORE_STEP;
  const pauseBeforeSteps =
    pauses === undefined || pauses === ''
      ? undefined
      : new Set(
          pauses.split(',').map((one, i) => {
            if (!/^\s*\d+\s*$/.test(one)) throw new Error(`Expected \`DT_FAULT_PAUSE_BEFORE_STEP\` to be steps from 1 and up separated by commas, got ${JSON.stringify(pauses)} (item ${i + 1} is ${JSON.stringify(one)})`);
            return step('DT_FAULT_PAUSE_BEFORE_STEP', one)!;
          }),
        );
  const killDuringCheckpoint = step('DT_FAULT_KILL_DURING_CHECKPOINT');
  const hangBeforeStep = step('DT_FAULT_HANG_BEFORE_STEP');
  const stepDelayMs = step('DT_FAULT_STEP_DELAY_MS');
  if (pauseBeforeSteps === undefined && killDuringCheckpoint === undefined && hangBeforeStep === undefined && stepDelayMs === undefined) return undefined;
  return {
    ...(stepDelayMs !== undefined && { stepDelayMs }),
    ...(pauseBeforeSteps !== undefined && { pauseBeforeSteps }),
    ...(killDuringCheckpoint !== undefined && { killDuringCheckpoint }),
    ...(hangBeforeStep !== undefined && { hangBeforeStep }),
    kill: killProcessGroup,
  };
}

async function main(): Promise<void> {
  deferStopSignals((message) => send({ id: 0, type: 'log', message }));
  const backend: BackendInfo = await selectBackend(backendPreferenceFromEnv());
  const models = builtInModels();
  const datasets = builtInDatasets();
  const userModule = process.env.DT_TRAINER_MODULE;
  if (userModule) {
    let mod: TrainerModule;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require(userModule) as TrainerModule;
    } catch (err) {
      throw new Error(`The trainer module ${userModule} (DT_TRAINER_MODULE) failed to load: ${err instanceof Error ? err.message : String(err)}`);
    }
    await mod.register?.({ models, datasets });
  }
  const log = (message: string): void => send({ id: 0, type: 'log', message });
  const faults = faultsFromEnv(process.env);
  const engine = new Engine({ models, datasets, openStore: (uri) => markingStore(openAllowedStore(uri)), backend, log, ...(faults && { faults }) });
  const cancelled = new Set<number>();
  /** The worker is gone (its IPC channel closed): stop the running request at its next step, start no other. */
  let draining = false;
  /** A training stopped on purpose (cancelled, or the worker stopping): this attempt writes nothing more, so the next one takes the run over cleanly. */
  const stoppedOnPurpose = async (req: TrainRequest): Promise<void> => {
    if (!req.holder) return;
    await releaseLease(markingStore(openAllowedStore(req.runUri)), req.holder).catch((err: unknown) =>
      log(`could not release the lease of ${req.runUri} (the next attempt takes it over anyway): ${err instanceof Error ? err.message : String(err)}`),
    );
  };
  // Signs of life for the worker's watchdog (they stop when native code blocks this event loop),
  // and whether the work moved forward since the last one (what the activity heartbeats on).
  let lastMarks = progressMarks();
  setInterval(() => {
    const now = progressMarks();
    send({ id: 0, type: 'alive', progressing: now !== lastMarks });
    lastMarks = now;
  }, 1000).unref();

  // One request at a time: the device is this process's, and requests queue behind each other.
  let queue: Promise<void> = Promise.resolve();
  process.on('message', (msg: ParentMessage) => {
    if (msg.type === 'cancel') {
      cancelled.add(msg.id);
      return;
    }
    queue = queue.then(async () => {
      if (draining) return;
      try {
        let result: unknown;
        switch (msg.type) {
          case 'train': {
            const trained = await engine.train(
              msg.request,
              (progress) => send({ id: msg.id, type: 'progress', progress }),
              () => draining || cancelled.has(msg.id),
            );
            if (trained.cancelled) await stoppedOnPurpose(msg.request);
            result = trained;
            break;
          }
          case 'trainEpoch': {
            const epoch = await engine.trainEpoch(
              msg.request,
              (progress) => send({ id: msg.id, type: 'progress', progress }),
              () => draining || cancelled.has(msg.id),
            );
            if (epoch.trained.cancelled) await stoppedOnPurpose(msg.request);
            // Test-only, as for `evaluate`: the epoch is evaluated, the answer (and its record) not yet sent.
            if (process.env.DT_FAULT_KILL_IN_EVALUATION === String(msg.request.targetStep)) killProcessGroup();
            result = epoch;
            break;
          }
          case 'evaluate':
            result = await engine.evaluate(msg.request);
            // Test-only: the evaluation is done, its answer (and the epoch record after it) not yet sent.
            if (process.env.DT_FAULT_KILL_IN_EVALUATION === String(msg.request.step)) killProcessGroup();
            break;
          case 'evaluateModels':
            result = await engine.evaluateModels(msg.request);
            break;
          case 'describe':
            result = { models: models.names(), datasets: datasets.names(), backend, pid: process.pid } satisfies DescribeResult;
            break;
          case 'memory': {
            engine.dispose();
            const tf = await import('@tensorflow/tfjs');
            result = tf.memory();
            break;
          }
          case 'numTensors': {
            // Non-destructive variant of `memory` (the engine and its session stay as they are).
            const tf = await import('@tensorflow/tfjs');
            result = tf.memory();
            break;
          }
          default:
            throw new Error(`Unknown request ${(msg as { type: string }).type}`);
        }
        send({ id: msg.id, type: 'result', result });
      } catch (err) {
        send({ id: msg.id, type: 'error', error: serializeError(err) });
      } finally {
        cancelled.delete(msg.id);
      }
    });
  });
  process.on('disconnect', () => {
    // The worker closed us (or died): the running step finishes, its checkpoint commits, locks are released.
    draining = true;
    setTimeout(() => process.exit(0), shutdownBudgetMs()).unref();
    void queue.finally(() => process.exit(0));
  });
  send({ id: 0, type: 'log', message: `ready on backend ${backend.name} (${backend.package})` });
}

main().catch((err) => {
  console.error(`[durable-train trainer] failed to start: ${err instanceof Error ? err.message : String(err)}`);
  // Answer what was asked with the reason (a bad DT_BACKEND, a missing backend), so the caller
  // sees it rather than only "the trainer exited"; then exit.
  const error = serializeError(err);
  process.on('message', (msg: ParentMessage) => {
    if (msg.type !== 'cancel') send({ id: msg.id, type: 'error', error });
  });
  process.on('disconnect', () => process.exit(1));
  setTimeout(() => process.exit(1), 2000).unref();
});
