/** createActivities(deps): every activity of durable-train, closed over its dependencies. */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { openStore as defaultOpenStore } from '../checkpoints/open-store';
import type { CheckpointStore } from '../checkpoints/store';
import { TrainerClient, type TrainerOptions } from '../training/trainer-client';
import { createChampionActivities } from './champion';
import { createTrackingActivities } from './tracking';
import { createTrainingActivities } from './training';
import { createSearchResultActivities } from './search-results';

export interface ActivityDeps {
  /** The trainer process client, or options to create one. */
  readonly trainer?: TrainerClient | TrainerOptions;
  /** Default checkpoint root for runs whose input names none. @default `file://<cwd>/runs` */
  readonly checkpointRoot?: string;
  /** Opens a store for a URI. @default the built-in file:// and gs:// stores */
  readonly openStore?: (uri: string) => CheckpointStore;
  /** The MLflow server runs track to unless their input names another (the worker passes MLFLOW_TRACKING_URI). @default none */
  readonly mlflowTrackingUri?: string;
  /** Further MLflow servers an input may name, as URI prefixes (DT_ALLOWED_TRACKING_URIS). @default none */
  readonly allowedTrackingUris?: readonly string[];
}

export function defaultCheckpointRoot(): string {
  return pathToFileURL(path.resolve('runs')).href;
}

export function createActivities(deps: ActivityDeps = {}) {
  const trainer = deps.trainer instanceof TrainerClient ? deps.trainer : new TrainerClient(deps.trainer ?? {});
  const resolved = {
    trainer,
    openStore: deps.openStore ?? ((uri: string) => defaultOpenStore(uri)),
    checkpointRoot: deps.checkpointRoot ?? defaultCheckpointRoot(),
    ...(deps.mlflowTrackingUri && { mlflowTrackingUri: deps.mlflowTrackingUri }),
  };
  const tracking = createTrackingActivities({
    openStore: resolved.openStore,
    ...(deps.mlflowTrackingUri && { mlflowTrackingUri: deps.mlflowTrackingUri }),
    ...(deps.allowedTrackingUris && { allowedTrackingUris: deps.allowedTrackingUris }),
  });
  return { ...createTrainingActivities(resolved), ...createChampionActivities(resolved), ...createSearchResultActivities(resolved), ...tracking };
}

export type Activities = ReturnType<typeof createActivities>;
export type { TrainingActivities } from './training';
export type { ChampionActivities } from './champion';
export type { TrackingActivities } from './tracking';
