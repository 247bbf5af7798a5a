/**
 * The runnable worker (`npm run worker`). Configuration comes from the environment:
 * Temporal's own variables (see connection.ts), plus
 *   DT_TASK_QUEUE      task queue                      (default durable-train)
 *   DT_CHECKPOINT_URI  default checkpoint root          (default file://<cwd>/runs)
 *   DT_ALLOWED_URIS    URI prefixes inputs may name besides the checkpoint root (comma-separated)
 *   DT_BACKEND         auto|tensorflow-gpu|tensorflow|wasm|cpu (default auto)
 *   DT_TRAINER_MODULE  module registering your own models and datasets in the trainer
 *   DT_TRAINER_STALL_SECONDS  kill a trainer silent for this long (default 300)
 *   DT_TRAINER_SLOTS   trainer processes, i.e. runs trained at once (default: one per GPU in
 *                      CUDA_VISIBLE_DEVICES or `nvidia-smi -L`, else 1); each gets its own GPU, or
 *                      without GPUs cores/slots threads (TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS)
 *   MLFLOW_TRACKING_URI  runs track to this MLflow server (credentials: MLFLOW_TRACKING_TOKEN or _USERNAME/_PASSWORD)
 *   DT_ALLOWED_TRACKING_URIS  other MLflow servers an input's tracking.mlflow.uri may name (comma-separated prefixes)
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import { connectionSettings, taskQueueFromEnv } from './connection';
import { DurableTrainPlugin } from './plugin';
import { backendPreferenceFromEnv } from './training/backend';

export interface RunWorkerOptions {
  readonly taskQueue?: string;
  readonly checkpointRoot?: string;
  readonly backend?: string;
  readonly trainerModule?: string;
  /** Resolves when the worker should shut down. */
  readonly shutdown?: Promise<void>;
}

export async function runWorker(options: RunWorkerOptions = {}): Promise<void> {
  const settings = connectionSettings();
  const backend = options.backend ?? backendPreferenceFromEnv();
  const plugin = new DurableTrainPlugin({
    trainer: {
      backend,
      ...((options.trainerModule ?? process.env.DT_TRAINER_MODULE) && { trainerModule: options.trainerModule ?? process.env.DT_TRAINER_MODULE }),
    },
    ...((options.checkpointRoot ?? process.env.DT_CHECKPOINT_URI) && { checkpointRoot: options.checkpointRoot ?? process.env.DT_CHECKPOINT_URI }),
    ...(process.env.MLFLOW_TRACKING_URI && { mlflowTrackingUri: process.env.MLFLOW_TRACKING_URI }),
    ...(process.env.DT_ALLOWED_TRACKING_URIS && { allowedTrackingUris: process.env.DT_ALLOWED_TRACKING_URIS.split(',').map((u) => u.trim()).filter(Boolean) }),
  });
  const connection = await NativeConnection.connect(settings.connectionOptions);
  const taskQueue = options.taskQueue ?? taskQueueFromEnv();
  const worker = await Worker.create({
    connection,
    namespace: settings.namespace,
    taskQueue,
    plugins: [plugin],
    // Each trainer runs one request at a time: one activity per trainer slot, more would only queue.
    maxConcurrentActivityTaskExecutions: plugin.trainer.size,
    maxConcurrentLocalActivityExecutions: 2,
  });
  console.log(`[durable-train] worker on ${settings.address} namespace=${settings.namespace} taskQueue=${taskQueue} backend=${backend}`);
  options.shutdown?.then(() => worker.shutdown()).catch(() => undefined);
  try {
    await worker.run();
  } finally {
    await plugin.close();
    await connection.close();
  }
}

if (require.main === module) {
  runWorker().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
