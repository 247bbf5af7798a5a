/** createActivities(deps): every activity of durable-train, closed over its dependencies. */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { openStore as defaultOpenStore, guardedOpenStore } from '../checkpoints/open-store';
import type { CheckpointStore } from '../checkpoints/store';
import type { TrainerClient } from '../training/trainer-client';
import { toTrainerPool, type TrainerPool, type TrainerPoolOptions } from '../training/trainer-pool';
import { workerAllowList } from '../trust/allow-list';
import { createTrustActivities } from '../trust/activities';
import { createChampionActivities } from './champion';
import { createTrackingActivities } from './tracking';
import { createTrainingActivities } from './training';
import { createSearchResultActivities } from './search-results';
import { createSearchLogActivities } from './search-log';
import { createRunViewActivities } from './run-views';
import { createCheckpointCopyActivities } from './checkpoint-copy';
import { createTrialOutcomeActivities } from './trial-outcome';
import { withWorkerHeartbeat } from './store-and-trainer';
import { activityOpener } from './failures';
import { datasetIdentityOf } from '../data/identity';
import { naming } from '../data/streamed';
import type { TrainConfig } from '../config/train-config';


export interface ActivityDeps {
  /** The worker's trainer processes (a pool, or one client), or options to create a pool (`slots`: how many). */
  readonly trainer?: TrainerPool | TrainerClient | TrainerPoolOptions;
  /** Default checkpoint root for runs whose input names none. @default `file://<cwd>/runs` */
  readonly checkpointRoot?: string;
  /** Opens a store for a URI. @default the built-in file:// and gs:// stores */
  readonly openStore?: (uri: string) => CheckpointStore;
  /** The MLflow server runs track to unless their input names another (the worker passes MLFLOW_TRACKING_URI). @default none */
  readonly mlflowTrackingUri?: string;
  /** Further MLflow servers an input may name, as URI prefixes (DT_ALLOWED_TRACKING_URIS). @default none */
  readonly allowedTrackingUris?: readonly string[];
  /**
   * URI prefixes (file:/// or gs://) the worker may read and write besides `checkpointRoot`:
   * data, models, warm starts. Every URI of an input is checked against them before anything runs.
   * @default `DT_ALLOWED_URIS` (comma-separated), else none
   */
  readonly allowedUris?: readonly string[];
}

export function defaultCheckpointRoot(): string {
  return pathToFileURL(path.resolve('runs')).href;
}

export function createActivities(deps: ActivityDeps = {}) {
  const trainer = toTrainerPool(deps.trainer);
  const checkpointRoot = deps.checkpointRoot ?? defaultCheckpointRoot();
  const allow = workerAllowList({ checkpointRoot, allowedUris: deps.allowedUris });
  trainer.allowUris(allow.prefixes);
  const resolved = {
    trainer,
    openStore: activityOpener(guardedOpenStore(allow, deps.openStore ?? ((uri: string) => defaultOpenStore(uri)))),
    checkpointRoot,
    datasetIdentity: (config: TrainConfig) => naming('data.train', () => datasetIdentityOf(config.data.train, { assertAllowed: (field, uri) => allow.assert(field, uri) })),
    ...(deps.mlflowTrackingUri && { mlflowTrackingUri: deps.mlflowTrackingUri }),
  };
  const trackingAllow = {
    ...(deps.mlflowTrackingUri && { mlflowTrackingUri: deps.mlflowTrackingUri }),
    ...(deps.allowedTrackingUris && { allowedTrackingUris: deps.allowedTrackingUris }),
  };
  const tracking = createTrackingActivities({ openStore: resolved.openStore, ...trackingAllow });
  return heartbeating({
    ...createTrainingActivities(resolved),
    ...createChampionActivities(resolved),
    ...createSearchResultActivities(resolved),
    ...createSearchLogActivities(resolved),
    ...createRunViewActivities(resolved),
    ...createCheckpointCopyActivities(resolved),
    ...createTrialOutcomeActivities(),
    ...tracking,
    ...createTrustActivities({ allow, tracking: trackingAllow }),
  });
}

/** Every activity heartbeats while it works (withWorkerHeartbeat), so a dead worker holds none for longer than its heartbeat timeout. */
function heartbeating<A extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: A): A {
  return Object.fromEntries(Object.entries(activities).map(([name, fn]) => [name, withWorkerHeartbeat(fn)])) as A;
}

export type Activities = ReturnType<typeof createActivities>;
export type { TrainingActivities } from './training';
export type { ChampionActivities } from './champion';
export type { SearchLogActivities } from './search-log';
export type { TrackingActivities } from './tracking';
export type { TrialOutcomeActivities } from './trial-outcome';
export type { TrustActivities } from '../trust/activities';
