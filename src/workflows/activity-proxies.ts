/**
 * What every workflow shares about calling activities: one retry policy for faults, the local
 * activity that describes the worker, and the check of registry names against that description.
 */
import { proxyLocalActivities, type RetryPolicy } from '@temporalio/workflow';
import type { WorkerDescription, TrainingActivities } from '../activities/training';
import type { TrainConfig } from '../config/train-config';
import type { Checker } from '../config/validate';

/** Faults (I/O, crashes, timeouts) retry with backoff; input errors are non-retryable at their source. */
export const FAULT_RETRY: RetryPolicy = { initialInterval: 1000, backoffCoefficient: 2, maximumInterval: 30_000, maximumAttempts: 20 };

/** Registry names and the default checkpoint root are known only on the worker: one local activity (a marker in history). */
export const { describeWorker } = proxyLocalActivities<TrainingActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 5 },
});

/**
 * Reports every model or dataset name in `config` that the worker does not offer, as
 * `<prefix>model.name` / `<prefix>data.train.name` / `<prefix>data.eval.name`. A `savedmodel`
 * spec names no registry entry: its route checks it when training starts.
 */
export function checkRegistryNames(c: Checker, worker: Pick<WorkerDescription, 'models' | 'datasets'>, config: TrainConfig, prefix = ''): void {
  if ('name' in config.model && !worker.models.includes(config.model.name)) {
    c.fail(`${prefix}model.name`, `one of the worker's models (${worker.models.join(', ')})`, config.model.name);
  }
  for (const [field, spec] of [['data.train', config.data.train], ['data.eval', config.data.eval]] as const) {
    if (!worker.datasets.includes(spec.name)) c.fail(`${prefix}${field}.name`, `one of the worker's datasets (${worker.datasets.join(', ')})`, spec.name);
  }
}
