/**
 * The trainer process: a long-lived child of the worker that owns the TensorFlow device.
 * Synchronous native ops run here, never on the worker's event loop, and a native crash takes
 * down only this process (the activity sees it exit and is retried).
 */
import type { DatasetRegistry } from './datasets';
import type { ModelRegistry } from './models';
import { backendPreferenceFromEnv, selectBackend, type BackendInfo } from './backend';
import { builtInDatasets } from './datasets';
import { Engine } from './engine';
import { builtInModels } from './models';
import type { ChildMessage, DescribeResult, ParentMessage, SerializedError } from './protocol';
import { NonRetryableTrainingError } from './protocol';
import { openStore } from '../checkpoints/open-store';
import { PermanentStoreError } from '../checkpoints/store';

/** What a user's trainer module (`DT_TRAINER_MODULE`) exports to add models and datasets. */
export interface TrainerModule {
  register?(registries: { models: ModelRegistry; datasets: DatasetRegistry }): void | Promise<void>;
}

function send(message: ChildMessage): void {
  process.send?.(message);
}

function serializeError(err: unknown): SerializedError {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    message: e.message,
    name: e.name,
    nonRetryable: e instanceof NonRetryableTrainingError || e instanceof PermanentStoreError,
    ...(e.stack !== undefined && { stack: e.stack }),
  };
}

async function main(): Promise<void> {
  const backend: BackendInfo = await selectBackend(backendPreferenceFromEnv());
  const models = builtInModels();
  const datasets = builtInDatasets();
  const userModule = process.env.DT_TRAINER_MODULE;
  if (userModule) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(userModule) as TrainerModule;
    await mod.register?.({ models, datasets });
  }
  const log = (message: string): void => send({ id: 0, type: 'log', message });
  const engine = new Engine({ models, datasets, openStore: (uri) => openStore(uri), backend, log });
  const cancelled = new Set<number>();

  // One request at a time: the device is this process's, and requests queue behind each other.
  let queue: Promise<void> = Promise.resolve();
  process.on('message', (msg: ParentMessage) => {
    if (msg.type === 'cancel') {
      cancelled.add(msg.id);
      return;
    }
    queue = queue.then(async () => {
      try {
        let result: unknown;
        switch (msg.type) {
          case 'train':
            result = await engine.train(
              msg.request,
              (progress) => send({ id: msg.id, type: 'progress', progress }),
              () => cancelled.has(msg.id),
            );
            break;
          case 'evaluate':
            result = await engine.evaluate(msg.request);
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
  process.on('disconnect', () => process.exit(0));
  send({ id: 0, type: 'log', message: `ready on backend ${backend.name} (${backend.package})` });
}

main().catch((err) => {
  console.error('[durable-train trainer] failed to start:', err);
  process.exit(1);
});
