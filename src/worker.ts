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
 *   DT_SHUTDOWN_SECONDS  on SIGTERM/SIGINT, the budget to stop training, commit its checkpoint and hand
 *                      the attempt back (default 25; GCE gives 30 s of notice before a preemption)
 *   DT_WORKFLOW_BUNDLE_CACHE  0: bundle the workflows at every start (default: reuse the cached bundle, workflow-bundle.ts)
 *   DT_TRAINER_PRESTART  1: start the trainers at start, TensorFlow loaded before any task (default: on their first request)
 *   MLFLOW_TRACKING_URI  runs track to this MLflow server (credentials: MLFLOW_TRACKING_TOKEN or _USERNAME/_PASSWORD)
 *   DT_ALLOWED_TRACKING_URIS  other MLflow servers an input's tracking.mlflow.uri may name (comma-separated prefixes)
 */
import { DefaultLogger, NativeConnection, TransportError, Worker } from '@temporalio/worker';
import { connectionSettings, taskQueueFromEnv } from './connection';
import { DurableTrainPlugin, workflowsPath } from './plugin';
import { backendPreferenceFromEnv } from './training/backend';
import { shutdownSecondsFromEnv } from './training/trainer-client';
import { mark, processStart } from './training/timeline';
import { cachedWorkflowBundle } from './workflow-bundle';

export interface RunWorkerOptions {
  readonly taskQueue?: string;
  readonly checkpointRoot?: string;
  readonly backend?: string;
  readonly trainerModule?: string;
  /** Resolves when the worker should shut down (as SIGTERM does). */
  readonly shutdown?: Promise<void>;
  /** Budget for a shutdown to save and hand work back. @default `DT_SHUTDOWN_SECONDS`, else 25 */
  readonly shutdownSeconds?: number;
}

export async function runWorker(options: RunWorkerOptions = {}): Promise<void> {
  mark('worker-process', {}, processStart());
  const settings = connectionSettings();
  const backend = options.backend ?? backendPreferenceFromEnv();
  const shutdownSeconds = options.shutdownSeconds ?? shutdownSecondsFromEnv();
  const plugin = new DurableTrainPlugin({
    trainer: {
      backend,
      shutdownSeconds,
      ...((options.trainerModule ?? process.env.DT_TRAINER_MODULE) && { trainerModule: options.trainerModule ?? process.env.DT_TRAINER_MODULE }),
    },
    ...((options.checkpointRoot ?? process.env.DT_CHECKPOINT_URI) && { checkpointRoot: options.checkpointRoot ?? process.env.DT_CHECKPOINT_URI }),
    ...(process.env.MLFLOW_TRACKING_URI && { mlflowTrackingUri: process.env.MLFLOW_TRACKING_URI }),
    ...(process.env.DT_ALLOWED_TRACKING_URIS && { allowedTrackingUris: process.env.DT_ALLOWED_TRACKING_URIS.split(',').map((u) => u.trim()).filter(Boolean) }),
  });
  // The trainers load TensorFlow while the worker itself starts (modules, bundle, connection): a
  // run that moves here from a killed worker trains again without waiting seconds for it
  // (bench/restart.ts, cold worker). A start that fails below closes them.
  // (On 2026-12-02 this was undone: a describeWorker answered within a millisecond had split its
  // marker and the run's patch markers over two workflow tasks. describeWorker has since answered
  // every run after a worker's first from memory, as fast; but on 2026-12-08 the fresh-clone suite's
  // test/durability.e2e.test.ts, which replays a run on another worker, hung again on the same
  // nondeterminism error ("patch marker for dt-check-uris, but no corresponding change command")
  // with the trainers started here. Off by default until the cause in the SDK is understood.)
  if (process.env.DT_TRAINER_PRESTART === '1') {
    for (let i = 0; i < plugin.trainer.size; i++) {
      plugin.trainer.request({ type: 'describe' }).catch((err: unknown) => console.warn(`[durable-train] a trainer did not start: ${err instanceof Error ? err.message : String(err)}`));
    }
  }
  // The bundle (cached across starts: workflow-bundle.ts) is built while the connection is made.
  const bundling = cachedWorkflowBundle({ workflowsPath, logger: new DefaultLogger('WARN') }).then((b) => {
    mark('worker-bundled', { reused: b.reused });
    if (!b.reused) console.log(`[durable-train] workflow bundle built (${b.why}); cached in ${b.file || 'nowhere (DT_WORKFLOW_BUNDLE_CACHE=0 or no usable cache folder)'}`);
    return b.bundle;
  });
  let connection: NativeConnection | undefined;
  let worker: Worker;
  const taskQueue = options.taskQueue ?? taskQueueFromEnv();
  try {
    const [connected, workflowBundle] = await Promise.all([connectWhenReachable(settings.connectionOptions, settings.address), bundling]);
    connection = connected;
    mark('worker-connected');
    worker = await createWorker(connected, workflowBundle);
  } catch (err) {
    // No worker to run: the trainers started above end here, not with the process.
    await plugin.close();
    await connection?.close().catch(() => undefined);
    throw err;
  }
  async function createWorker(connection: NativeConnection, workflowBundle: { readonly code: string }): Promise<Worker> {
    return Worker.create({
      connection,
      namespace: settings.namespace,
      taskQueue,
      workflowBundle,
      plugins: [plugin],
      // Each trainer runs one request at a time: one activity per trainer slot, plus one so that an
      // activity that only reads and writes the store (an export, a search's results) overlaps training
      // instead of holding a slot's turn; a training activity taking it waits in a trainer's queue.
      maxConcurrentActivityTaskExecutions: plugin.trainer.size + 1,
      maxConcurrentLocalActivityExecutions: 2,
      // A run's next workflow task goes first to the sticky queue of the worker that ran the last one;
      // if that worker died, the task waits this long before any worker takes it (the SDK's default
      // is 10 s, seen in full after every activity retried off a killed worker).
      stickyQueueScheduleToStartTimeout: '3 seconds',
      // The trainer's drain (below) stops training at once; other activities (an evaluation, an
      // export) get the budget to finish before Temporal cancels them with WORKER_SHUTDOWN.
      shutdownGraceTime: shutdownSeconds * 1000,
      shutdownForceTime: (shutdownSeconds + 5) * 1000,
    });
  }
  mark('worker-created');
  console.log(`[durable-train] worker on ${settings.address} namespace=${settings.namespace} taskQueue=${taskQueue} backend=${backend} trainers=${plugin.trainer.size}`);

  let stopping: number | undefined;
  const stop = (why: string): void => {
    if (stopping !== undefined) return;
    stopping = Date.now();
    console.log(`[durable-train] ${why}: taking no new work, stopping training at its next step and saving (budget ${shutdownSeconds} s, DT_SHUTDOWN_SECONDS)`);
    // Both at once: Temporal stops polling, the trainer stops the running training and commits.
    void plugin.trainer.shutdown(why);
    if (worker.getState() === 'RUNNING') worker.shutdown();
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping === undefined) return stop(`received ${signal}`);
    // A second signal (Ctrl-C twice): the user does not want to wait for the save.
    console.log(`[durable-train] received ${signal} again: exiting without waiting for the save`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  // Temporal's Runtime also shuts the worker down on these signals; ours starts the trainer's drain with it.
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  options.shutdown?.then(() => stop('shutdown requested')).catch(() => undefined);
  try {
    mark('worker-polling');
    await worker.run();
  } finally {
    // worker.run() has closed the trainers (DurableTrainPlugin.runWorker).
    await connection.close();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    if (stopping !== undefined) console.log(`[durable-train] worker stopped ${((Date.now() - stopping) / 1000).toFixed(1)} s after the shutdown began`);
  }
}

/**
 * Connects to Temporal, waiting for a server that is not up yet (a worker started beside a server
 * that is restarting, or before it, should wait for it, not exit): a refused or timed-out TCP
 * connection and a name that does not resolve yet are retried with backoff up to 30 s apart, the
 * cause printed each time; anything else (a TLS mismatch, a refused API key, a bad address) fails at once.
 */
async function connectWhenReachable(options: Parameters<typeof NativeConnection.connect>[0], address: string): Promise<NativeConnection> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await NativeConnection.connect(options);
    } catch (err) {
      const why = unreachable(err);
      if (why === undefined) throw err;
      const delayMs = Math.min(30_000, 250 * 2 ** Math.min(attempt - 1, 7));
      console.warn(`[durable-train] Temporal at ${address} is not reachable yet (${why}; attempt ${attempt}); trying again in ${(delayMs / 1000).toFixed(1)} s`);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** Why a connection failed when the server may just not be up yet; undefined for any other error. */
export function unreachable(err: unknown): string | undefined {
  if (!(err instanceof TransportError)) return undefined;
  const message = err.message;
  // The TLS handshake failed: the server is there and speaks something else (plaintext, another CA).
  if (/tls|certificate|handshake|InvalidContentType|InvalidMessage|AlertReceived/i.test(message)) return undefined;
  if (/dns error|failed to lookup address|Name or service not known/i.test(message)) return 'the name does not resolve';
  if (/ConnectionRefused|Connection refused/i.test(message)) return 'connection refused';
  if (/timed out|TimedOut/i.test(message)) return 'connection timed out';
  if (/ConnectError|tcp connect error|Connection reset|ConnectionReset|No route to host|Network is unreachable/i.test(message)) return 'cannot connect';
  return undefined;
}

if (require.main === module) {
  runWorker().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
