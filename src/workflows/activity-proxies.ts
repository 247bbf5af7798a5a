/**
 * What every workflow shares about calling activities: one retry policy for faults, the local
 * activity that describes the worker, and the check of registry names against that description.
 */
import { ActivityFailure, ApplicationFailure, patched, proxyLocalActivities, type RetryPolicy } from '@temporalio/workflow';
import type { WorkerDescription, TrainingActivities } from '../activities/training';
import type { TrainConfig } from '../config/train-config';
import type { Checker } from '../config/validate';
import type { TrustActivities, UriField } from '../trust/activities';
import { URI_CHECK_PATCH } from './patches';

/** Faults (I/O, crashes, timeouts) retry with backoff; input errors are non-retryable at their source. */
export const FAULT_RETRY: RetryPolicy = { initialInterval: 1000, backoffCoefficient: 2, maximumInterval: 30_000, maximumAttempts: 20 };

/**
 * Heartbeat timeout of the activities that only the worker heartbeats (store work: finalizing,
 * search results, archives, checkpoint copies, champions). The worker heartbeats every activity
 * every second while it works (src/activities/store-and-trainer.ts, withWorkerHeartbeat), and the
 * SDK sends one at least every 0.8 × this: a worker that dies holding such an attempt is noticed
 * within this, and the attempt is retried on another worker 1 s later (FAULT_RETRY), not when its
 * start-to-close (minutes, sized for a slow store) runs out. Training and evaluation keep the
 * run's `timeouts.heartbeatSeconds`: their heartbeats are the trainer's progress.
 */
export const WORKER_HEARTBEAT_TIMEOUT = '5 seconds';

/**
 * Registry names and the default checkpoint root are known only on the worker: one local activity
 * (a marker in history). Local activities have no heartbeats and need none: they run inside a
 * workflow task, and a dead worker's workflow task times out (10 s) and runs again, local activity
 * included, on another worker; their start-to-close only bounds a live worker's trainer start.
 */
export const { describeWorker: describeWorkerActivity, checkUris } = proxyLocalActivities<TrainingActivities & TrustActivities>({
  startToCloseTimeout: '5 minutes',
  // A worker shutting down does not become able to answer by being asked again: see describeWorker.
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['WorkerShuttingDown'] },
});

/**
 * The describeWorker local activity. When it fails because this worker is shutting down (it had
 * started no trainer), the workflow task fails instead of the run: Temporal gives the task to
 * another worker (history keeps a WorkflowTaskFailed event, not the marker). (Histories where this
 * local activity failed ended failed, so no run in flight replays this path differently.)
 */
export async function describeWorker(): Promise<WorkerDescription> {
  try {
    return await describeWorkerActivity();
  } catch (err) {
    // A local activity's failure reaches the workflow as the ApplicationFailure itself (SDK 1.24), or wrapped.
    const failure = err instanceof ActivityFailure ? err.cause : err;
    if (failure instanceof ApplicationFailure && failure.type === 'WorkerShuttingDown') {
      throw new Error(`${failure.message}: this workflow task is retried on another worker`);
    }
    throw err;
  }
}

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


/** Every URI a trainModel input makes the worker read or write, with its field (`runUri`: the run's folder). */
export function trainConfigUris(config: TrainConfig, runUri: string | undefined, prefix = ''): UriField[] {
  const out: UriField[] = [];
  if (runUri !== undefined) out.push({ field: `${prefix}checkpoint.uri`, uri: runUri });
  if ('kind' in config.model) out.push({ field: `${prefix}model.uri`, uri: config.model.uri });
  for (const [field, spec] of [['data.train', config.data.train], ['data.eval', config.data.eval]] as const) {
    const { uri, uris } = (spec.params as { uri?: unknown; uris?: unknown } | undefined) ?? {};
    // A resolved data window (workflows/data-window.ts): each of its globs, not the template.
    const listed = Array.isArray(uris) ? uris.filter((u): u is string => typeof u === 'string') : typeof uri === 'string' ? [uri] : [];
    for (const u of listed) out.push({ field: `${prefix}${field}.params.uri`, uri: u });
  }
  if (config.warmStartFrom !== undefined) out.push({ field: `${prefix}warmStartFrom`, uri: config.warmStartFrom });
  // An MLflow server the input names is refused here, at the start, like a store URI (not by the
  // tracking activity later, with the run already training untracked).
  const tracking = config.tracking?.mlflow?.uri;
  if (tracking !== undefined) out.push({ field: `${prefix}tracking.mlflow.uri`, uri: tracking, kind: 'tracking' });
  return out;
}

/**
 * Checks URIs against the worker's allow-list (a local activity: normal form, symlinks resolved
 * on the worker) and adds one issue per refused URI, so the caller fails with InvalidConfig
 * before any activity task. A URI named by several fields is checked once, under the first.
 */
export async function checkInputUris(c: Checker, uris: readonly UriField[]): Promise<void> {
  if (!patched(URI_CHECK_PATCH)) return;
  const seen = new Set<string>();
  const unique = uris.filter((u) => !seen.has(u.uri) && seen.add(u.uri));
  if (unique.length === 0) return;
  const { issues } = await checkUris({ uris: unique });
  c.issues.push(...issues);
}
