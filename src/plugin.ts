/**
 * The worker plugin: adding durable training to an existing Temporal worker is one line,
 * `plugins: [new DurableTrainPlugin()]`.
 */
import { SimplePlugin } from '@temporalio/plugin';
import { createActivities, type ActivityDeps } from './activities';
import { TrainerClient } from './training/trainer-client';

export type DurableTrainPluginOptions = ActivityDeps;

/** Path of the module that exports every durable-train workflow (for your own workflows file or bundle). */
export const workflowsPath = require.resolve('./workflows');

export class DurableTrainPlugin extends SimplePlugin {
  /** The activities this plugin registered (they share one trainer process). */
  readonly activities: ReturnType<typeof createActivities>;
  /** The trainer process behind the activities. */
  readonly trainer: TrainerClient;

  constructor(options: DurableTrainPluginOptions = {}) {
    const trainer = options.trainer instanceof TrainerClient ? options.trainer : new TrainerClient(options.trainer ?? {});
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

  /** Stops the trainer process (call after the worker has shut down). */
  close(): Promise<void> {
    return this.trainer.close();
  }
}
