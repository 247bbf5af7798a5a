/**
 * MLflow tracking activities. The workflow keeps the MLflow run id in its state (so continue-as-new
 * and restarts never fork the MLflow run) and calls `syncTracking` after each epoch without waiting
 * for it: a tracking server that is down delays metrics, never training. Metrics come from the
 * epoch records the run stored, so a sync that runs twice, or after a resume, logs each step once.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { TrackingConfig } from '../config/tracking-config';
import type { CheckpointStore } from '../checkpoints/store';
import { MlflowClient, MlflowError, type MlflowMetric, type MlflowRunStatus } from '../observability/mlflow';
import { trackingUriProblem } from '../trust/tracking-uris';
import { readEpochRecords, storeCall } from './store-and-trainer';

/** One MLflow request: tracking must not hold a worker's activity slot for long (workflows/run-tracking.ts). */
const REQUEST_TIMEOUT_MS = 5000;

export interface TrackingActivityDeps {
  readonly openStore: (uri: string) => CheckpointStore;
  /** The worker's MLflow server (MLFLOW_TRACKING_URI): runs track there unless their input names another. */
  readonly mlflowTrackingUri?: string;
  /** Tracking URIs an input may name besides the worker's own (prefixes). @default none */
  readonly allowedTrackingUris?: readonly string[];
}

/** The tracking a run does, as the workflow keeps it in its state. */
export interface TrackingRef {
  readonly mlflow: { readonly uri: string; readonly runId: string; readonly experimentId: string };
}

export interface StartTrackingInput {
  readonly runUri: string;
  readonly runName: string;
  /** The input's `tracking` (which server and experiment). */
  readonly tracking?: TrackingConfig;
  /** Logged once, when the MLflow run is created (src/config/flatten-params.ts). */
  readonly params: Readonly<Record<string, string>>;
  /** Workflow time of the run's start (ms). */
  readonly startTime: number;
  /** A search's MLflow run: trials nest under it. */
  readonly parentRunId?: string;
}

export interface SyncTrackingInput {
  readonly runUri: string;
  readonly tracking: TrackingRef;
  /** Set on the last sync: the MLflow run's final status. */
  readonly final?: { readonly status: MlflowRunStatus; readonly endTime: number };
}


function failure(err: unknown): never {
  if (err instanceof MlflowError && !err.retryable) throw ApplicationFailure.nonRetryable(err.message, 'MlflowRejected');
  throw err;
}

export function createTrackingActivities(deps: TrackingActivityDeps) {
  /** The input's URI only when the worker allows it: an input must not make the worker call any URL. */
  const trackingUri = (requested: string | undefined): string | undefined => {
    if (requested === undefined) return deps.mlflowTrackingUri;
    const problem = trackingUriProblem(requested, deps);
    if (problem) throw ApplicationFailure.nonRetryable(`Expected \`tracking.mlflow.uri\` to be ${problem.expected}, got ${problem.received}`, 'TrackingUriRefused');
    return requested;
  };

  /**
   * The worker's credentials go only to the worker's own server (MLFLOW_TRACKING_URI's origin):
   * another server an input names may be allowed to receive metrics, never the worker's token.
   */
  const client = (uri: string): MlflowClient => new MlflowClient(uri, { timeoutMs: REQUEST_TIMEOUT_MS, credentialsFor: deps.mlflowTrackingUri ?? null });

  return {
    /** Finds or creates the run's MLflow run (params logged once); null when the run has no tracking. */
    async startTracking(input: StartTrackingInput): Promise<TrackingRef | null> {
      const settings = input.tracking?.mlflow;
      const uri = trackingUri(settings?.uri);
      if (!uri) return null;
      try {
        const mlflow = client(uri);
        const experimentId = await mlflow.experimentId(settings?.experiment ?? 'durable-train');
        const { runId } = await mlflow.ensureRun({
          experimentId,
          runKey: input.runUri,
          runName: input.runName,
          startTime: input.startTime,
          params: input.params,
          tags: { 'durable_train.run_uri': input.runUri },
          ...(input.parentRunId && { parentRunId: input.parentRunId }),
        });
        return { mlflow: { uri, runId, experimentId } };
      } catch (err) {
        failure(err);
      }
    },

    /** Logs every recorded epoch MLflow does not have yet (step = epoch, as Keras's autolog does). */
    async syncTracking(input: SyncTrackingInput): Promise<{ logged: number }> {
      const records = await storeCall(() => readEpochRecords(deps.openStore(input.runUri)));
      const metrics: MlflowMetric[] = records.flatMap((r) => {
        const timestamp = r.recordedAt ?? 0;
        const points = Object.entries(r.metrics).map(([key, value]) => ({ key, value, step: r.epoch, timestamp }));
        points.push({ key: 'learning_rate', value: r.learningRate, step: r.epoch, timestamp });
        if (r.trainSeconds !== undefined) points.push({ key: 'epoch_seconds', value: r.trainSeconds, step: r.epoch, timestamp });
        return points;
      });
      try {
        const mlflow = client(trackingUri(input.tracking.mlflow.uri)!);
        const logged = await mlflow.logMissing(input.tracking.mlflow.runId, metrics);
        if (input.final) await mlflow.setStatus(input.tracking.mlflow.runId, input.final.status, input.final.endTime);
        return { logged };
      } catch (err) {
        failure(err);
      }
    },
  };
}

export type TrackingActivities = ReturnType<typeof createTrackingActivities>;
