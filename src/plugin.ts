/**
 * The worker plugin: adding durable training to an existing Temporal worker is one line,
 * `plugins: [new DurableTrainPlugin()]`.
 */
import { SimplePlugin } from '@temporalio/plugin';
import type { Worker, WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from './activities';
import { toTrainerPool, type TrainerPool } from './training/trainer-pool';

export type DurableTrainPluginOptions = ActivityDeps;

/** Path of the module that exports every durable-train workflow (for your own workflows file or bundle). */
export const workflowsPath = require.resolve('./workflows');

export class DurableTrainPlugin extends SimplePlugin {
  /** The activities this plugin registered (they share the trainer slots). */
  readonly activities: ReturnType<typeof createActivities>;
  /**
   * The trainer processes behind the activities (`trainer.slots`, DT_TRAINER_SLOTS). Give the
   * worker `maxConcurrentActivityTaskExecutions: plugin.trainer.size + 1` (as src/worker.ts does): one
   * training per trainer, and one slot more so the store-only activities (finalize, results, copies)
   * never wait behind training; more trainings would only queue behind a busy trainer.
   */
  readonly trainer: TrainerPool;
  /** The workers running with this plugin now (runWorker). */
  private readonly running = new Set<Worker>();

  constructor(options: DurableTrainPluginOptions = {}) {
    const trainer = toTrainerPool(options.trainer);
    const activities = createActivities({ ...options, trainer });
    super({
      name: 'durable-train',
      activities,
      // A worker that already has workflows keeps them: re-export ours from that file
      // (`export * from 'durable-train/workflows'`) and they are registered too.
      workflowsPath: (existing) => existing ?? workflowsPath,
    });
    this.activities = activities;
    this.trainer = trainer;
  }

  /** A worker given a prebuilt `workflowBundle` (src/worker.ts's cached one) needs no workflowsPath: the SDK would warn that it ignores it. */
  override configureWorker(options: WorkerOptions): WorkerOptions {
    const configured = super.configureWorker(options);
    if (configured.workflowBundle === undefined) return configured;
    const rest: WorkerOptions = { ...configured };
    delete rest.workflowsPath;
    return rest;
  }

  /**
   * Runs the worker with its trainers' lifecycle tied to it: once the worker starts shutting down
   * (`worker.shutdown()`, or the SIGTERM/SIGINT that Temporal's Runtime turns into it) training
   * stops at its next step and commits (the attempt fails retryably as WorkerShuttingDown and the
   * run continues on another worker), and when `worker.run()` ends the trainer processes exit. A
   * worker built with the plugin needs no other call. One plugin given to several workers drains
   * when all of them are shutting down and closes when the last one ends (later requests are
   * refused); a worker that starts meanwhile waits for the drain to end, and a worker run after
   * that starts new trainers.
   */
  override async runWorker(worker: Worker, next: (w: Worker) => Promise<void>): Promise<void> {
    this.running.add(worker);
    this.trainer.refuseRequests(undefined);
    const watch = setInterval(() => {
      const states = [...this.running].map((w) => w.getState());
      if (states.every((state) => state !== 'INITIALIZED' && state !== 'RUNNING')) void this.trainer.shutdown(`worker ${states[0]!.toLowerCase()}`);
    }, SHUTDOWN_POLL_MS);
    watch.unref();
    try {
      // A drain of the workers before this one (a rolling restart on one plugin) ends before this
      // worker takes work: its trainers would refuse every request.
      if (this.trainer.shutdownReason !== undefined) {
        await this.trainer.shutdown();
        await this.trainer.close();
      }
      await super.runWorker(worker, next);
    } finally {
      clearInterval(watch);
      this.running.delete(worker);
      if (this.running.size === 0) {
        this.trainer.refuseRequests('the worker has stopped');
        await this.trainer.close();
      }
    }
  }

  /** Stops the trainer processes. `worker.run()` does this itself when it ends; idempotent. */
  close(): Promise<void> {
    return this.trainer.close();
  }
}

/** How often runWorker looks at the worker's state (the SDK has no event for the start of its shutdown). */
const SHUTDOWN_POLL_MS = 100;
