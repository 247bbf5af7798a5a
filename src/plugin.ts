/**
 * The worker plugin: adding durable training to an existing Temporal worker is one line,
 * `plugins: [new DurableTrainPlugin()]`.
 */
import { SimplePlugin } from '@temporalio/plugin';
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
   * worker `maxConcurrentActivityTaskExecutions: plugin.trainer.size`: more would queue behind a busy trainer.
   */
  readonly trainer: TrainerPool;

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

  /** Stops the trainer processes (call after the worker has shut down). */
  close(): Promise<void> {
    return this.trainer.close();
  }
}
