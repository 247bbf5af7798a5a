/**
 * The trainer process: a long-lived child of the worker that owns the TensorFlow device.
 * Synchronous native ops run here, never on the worker's event loop, and a native crash takes
 * down only this process (the activity sees it exit and is retried).
 */
import type { DatasetRegistry } from './dataset-registry';
import type { ModelRegistry } from './models';
import { backendPreferenceFromEnv, selectBackend, type BackendInfo } from './backend';
import { builtInDatasets } from './dataset-registry';
import { Engine } from './engine';
import { builtInModels } from './models';
import type { ChildMessage, DescribeResult, ParentMessage, Progress, RequestBody, TrainRequest } from './protocol';
import { markingStore, progressMarks } from './liveness';
import { releaseLease } from '../checkpoints/lease';
import { openAllowedStore } from '../checkpoints/open-store';
import { shutdownSecondsFromEnv } from './shutdown-budget';
import { serializeError } from './trainer-errors';
import { mark, processStart } from './timeline';
import { faultsFromEnv, killIfEvaluationFault, memoryAfterDispose, memoryNow } from './trainer-test-hooks';

/** What a user's trainer module (`DT_TRAINER_MODULE`) exports to add models and datasets. */
export interface TrainerModule {
  register?(registries: { models: ModelRegistry; datasets: DatasetRegistry }): void | Promise<void>;
}

function send(message: ChildMessage): void {
  // After the worker went away there is no one to tell; the request still finishes its save.
  if (process.connected) process.send?.(message);
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

/** What a request handler gets besides the request: where its progress goes and whether to stop. */
interface RequestContext {
  readonly progress: (progress: Progress) => void;
  readonly shouldStop: () => boolean;
}

type Handler<T extends RequestBody['type']> = (body: Extract<RequestBody, { type: T }>, ctx: RequestContext) => Promise<unknown>;
type Handlers = { readonly [T in RequestBody['type']]: Handler<T> };

/** One handler per request type (protocol.ts RequestBody). */
function requestHandlers(engine: Engine, describe: () => DescribeResult, stoppedOnPurpose: (req: TrainRequest) => Promise<void>): Handlers {
  return {
    async train({ request }, ctx) {
      const trained = await engine.train(request, ctx.progress, ctx.shouldStop);
      if (trained.cancelled) await stoppedOnPurpose(request);
      return trained;
    },
    async trainEpoch({ request }, ctx) {
      const epoch = await engine.trainEpoch(request, ctx.progress, ctx.shouldStop);
      if (epoch.trained.cancelled) await stoppedOnPurpose(request);
      killIfEvaluationFault(request.targetStep);
      return epoch;
    },
    async evaluate({ request }) {
      const result = await engine.evaluate(request);
      killIfEvaluationFault(request.step);
      return result;
    },
    evaluateModels: ({ request }) => engine.evaluateModels(request),
    describe: () => Promise.resolve(describe()),
    memory: () => memoryAfterDispose(engine),
    numTensors: () => memoryNow(),
  };
}

function handle(handlers: Handlers, body: RequestBody, ctx: RequestContext): Promise<unknown> {
  const handler = handlers[body.type] as Handler<RequestBody['type']> | undefined;
  if (!handler) throw new Error(`Unknown request ${(body as { type: string }).type}`);
  return handler(body, ctx);
}

async function main(): Promise<void> {
  mark('trainer-process', {}, processStart());
  deferStopSignals((message) => send({ id: 0, type: 'log', message }));
  mark('tf-load-start');
  const backend: BackendInfo = await selectBackend(backendPreferenceFromEnv());
  mark('tf-loaded', { backend: backend.name });
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
  const handlers = requestHandlers(engine, () => ({ models: models.names(), datasets: datasets.names(), backend, pid: process.pid }), stoppedOnPurpose);
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
        const result = await handle(handlers, msg, {
          progress: (progress) => send({ id: msg.id, type: 'progress', progress }),
          shouldStop: () => draining || cancelled.has(msg.id),
        });
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
