/**
 * The public API of durable-train: `import { DurableTrainPlugin } from 'durable-train'`.
 * Everything a worker, a client or a script needs is here; deeper paths are internal and may move.
 * Workflow code itself is at `durable-train/workflows` (for a workflows file of your own).
 */

// The worker side: the plugin, the activities it registers, and a ready-made worker.
export { DurableTrainPlugin, workflowsPath, type DurableTrainPluginOptions } from './plugin';
export { createActivities, defaultCheckpointRoot, type Activities, type ActivityDeps } from './activities';
export type { TrainerOptions } from './training/trainer-client';
export { TrainerPool, type TrainerPoolOptions } from './training/trainer-pool';
export type { TrainerModule } from './training/trainer-process';
export type { ModelRegistry, ModelFactory, ModelContext } from './training/models';
export type { DatasetRegistry, DatasetFactory, Dataset } from './training/dataset-registry';
export type { RecordSource, RecordSourceFactory } from './training/record-source';
export { runWorker, type RunWorkerOptions } from './worker';
export { connectionSettings, taskQueueFromEnv, DEFAULT_TASK_QUEUE, type ConnectionSettings } from './connection';

// Workflow names, their signals and queries, and their input and result types (for clients).
export {
  trainModel,
  hyperparameterSearch,
  retrainModel,
  stopSignal,
  pauseSignal,
  resumeSignal,
  progressQuery,
  leaderboardQuery,
  retrainProgressQuery,
} from './workflows';
export type {
  TrainProgress,
  TrainModelResult,
  TrainLoopState,
  EpochHistoryEntry,
  BestSoFar,
  RunStatus,
  Leaderboard,
  SearchResult,
  SearchState,
  SearchStatus,
  BestTrial,
  RetrainProgress,
  RetrainResult,
  RetrainPhase,
} from './workflows';

/** The workflow type names, as `temporal workflow start --type` and the client take them. */
export { WORKFLOW_TYPES } from './workflow-types';

// Config: the inputs' types and their validators (the workflows run the same ones).
export {
  parseTrainConfig,
  DEFAULTS as TRAIN_DEFAULTS,
  type TrainConfig,
  type TrainInput,
  type ModelSpec,
  type DatasetSpec,
  type Hyperparameters,
  type CheckpointPolicy,
  type EarlyStoppingConfig,
  type ReduceLrOnPlateauConfig,
  type Timeouts,
  type OptimizerName,
  type LossName,
  type Mode,
} from './config/train-config';
export { parseSearchConfig, SEARCH_DEFAULTS, type SearchConfig, type SearchInput, type SearchStrategy } from './config/search-config';
export { parseRetrainConfig, RETRAIN_DEFAULTS, type RetrainConfig, type RetrainInput } from './config/retrain-config';
export { ConfigError, type ConfigIssue } from './config/validate';

// Client helpers: retraining on a Temporal Schedule.
export {
  createRetrainSchedule,
  listRetrainSchedules,
  describeRetrainSchedule,
  pauseRetrainSchedule,
  unpauseRetrainSchedule,
  triggerRetrainSchedule,
  deleteRetrainSchedule,
  RETRAIN_WORKFLOW_TYPE,
  RETRAIN_OVERLAP_POLICY,
  type RetrainScheduleOptions,
  type RetrainScheduleRow,
} from './schedules';

// Checkpoint stores, for activities of your own or a custom `openStore`.
export { openStore, SUPPORTED_SCHEMES, type OpenStoreOptions } from './checkpoints/open-store';
export { PreconditionFailedError, PermanentStoreError, type CheckpointStore, type VersionedObject } from './checkpoints/store';

// The command line (`durable-train`) is callable from code through its own entry, `durable-train/cli`
// (`run`, `EXIT`): the CLI builds on this entry's pieces, so this entry does not re-export it.
