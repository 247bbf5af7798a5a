/**
 * MLflow from the workflow. The MLflow run id lives in workflow state (continue-as-new and restarts
 * never fork the MLflow run), every call runs beside training and never in front of it (a tracking
 * server that is down delays metrics, never training), and the last sync sets the final status.
 * Only the end of a run waits for MLflow, and only for a bounded number of attempts.
 */
import type { Duration } from '@temporalio/common';
import { log, proxyActivities, sleep, workflowInfo, type RetryPolicy } from '@temporalio/workflow';
import type { TrackingActivities, TrackingRef } from '../activities/tracking';
import type { TrackingConfig } from '../config/tracking-config';
import { WORKER_HEARTBEAT_TIMEOUT } from './activity-proxies';

/**
 * Two quick attempts (about 11 s when the server never answers, 1 s when it refuses): a sync that
 * gives up is caught up by a later epoch's, since each logs every point MLflow does not have yet.
 * Short timeouts, so an attempt lost with its worker is retried soon.
 */
const RETRY: RetryPolicy = { initialInterval: 1000, backoffCoefficient: 2, maximumInterval: 5000, maximumAttempts: 2 };
// Each MLflow request gives up after 5 s (src/activities/tracking.ts): a server that accepts and
// never answers holds one of the worker's activity slots for seconds, not minutes.
const activities = proxyActivities<TrackingActivities>({ startToCloseTimeout: '15 seconds', heartbeatTimeout: WORKER_HEARTBEAT_TIMEOUT, retry: RETRY });
/** After a sync fails, the next ones are skipped for 1, 2, 4 … (at most 32) epochs. */
const MAX_SKIP = 32;

export type FinalTrackingStatus = 'FINISHED' | 'FAILED' | 'KILLED';

/** What the loop state keeps of tracking: whether the run tracks, and its MLflow run once known. */
export interface TrackingState {
  mlflowWanted?: boolean;
  tracking?: TrackingRef | null;
}

export class RunTracking {
  private running: Promise<void> | undefined;
  private again = false;
  /** Consecutive failed syncs, and epochs to skip before the next try (a server that is down costs little). */
  private failures = 0;
  private skip = 0;

  constructor(
    private readonly state: TrackingState,
    private readonly runUri: string,
    private readonly runName: string,
    private readonly tracking: TrackingConfig | undefined,
    /** Logged once, when the MLflow run is created. */
    private readonly params: Readonly<Record<string, string>>,
  ) {}

  /** The MLflow run id once known (a search hands it to its trials as their parent). */
  get runId(): string | undefined {
    return this.state.tracking?.mlflow.runId;
  }

  /**
   * Starts tracking in the background and waits for it at most `wait`: a search's first trials
   * should nest under it, but a tracking server that is down must not hold the search back.
   */
  async begin(wait: Duration): Promise<void> {
    if (!this.wanted || this.state.tracking) return;
    this.epochRecorded();
    await Promise.race([this.running, sleep(wait)]);
  }

  /** Resolves when no sync is in flight (before continue-as-new: the next run starts none while one runs). */
  async settled(): Promise<void> {
    await this.running;
  }

  private get wanted(): boolean {
    return this.state.mlflowWanted === true;
  }

  /** The MLflow run, found or created once (the activity finds it again by the run's URI). */
  private async ref(): Promise<TrackingRef | null> {
    if (this.state.tracking) return this.state.tracking;
    this.state.tracking = await activities.startTracking({
      runUri: this.runUri,
      runName: this.runName,
      ...(this.tracking && { tracking: this.tracking }),
      params: this.params,
      startTime: workflowInfo().startTime.getTime(),
      ...(this.tracking?.mlflow?.parentRunId && { parentRunId: this.tracking.mlflow.parentRunId }),
    });
    if (!this.state.tracking) this.state.mlflowWanted = false;
    return this.state.tracking;
  }

  /** After an epoch was recorded: sync in the background; one that arrives while a sync runs queues one more. */
  epochRecorded(): void {
    if (!this.wanted) return;
    if (this.skip > 0) {
      this.skip--;
      return;
    }
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          const tracking = await this.ref();
          if (tracking) await activities.syncTracking({ runUri: this.runUri, tracking });
          this.failures = 0;
        } catch (err) {
          this.skip = Math.min(MAX_SKIP, 2 ** this.failures++);
          log.warn('MLflow tracking is behind; a later epoch tries again', { error: (err as Error).message, skipEpochs: this.skip });
          break;
        }
      } while (this.again && this.wanted);
      this.running = undefined;
    })();
  }

  /**
   * The last sync, with the run's final status, after the background one (never two at once: two
   * first starts could create two MLflow runs). With the server down the end of a run waits for
   * the few attempts of each, about half a minute; a tracking failure is logged, never the run's.
   */
  async finish(status: FinalTrackingStatus): Promise<void> {
    if (!this.wanted) return;
    await this.running;
    try {
      const tracking = await this.ref();
      if (tracking) await activities.syncTracking({ runUri: this.runUri, tracking, final: { status, endTime: Date.now() } });
    } catch (err) {
      log.warn('MLflow tracking could not be finished; metrics are in the run folder', { error: (err as Error).message });
    }
  }
}

/** What a search logs as its MLflow params: its strategy and space, not a trial's values. */
export function searchParams(config: { readonly strategy: string; readonly metric: string; readonly mode: string; readonly maxParallel: number; readonly space: unknown }): Record<string, string> {
  const params: Record<string, string> = { strategy: config.strategy, metric: config.metric, mode: config.mode, maxParallel: String(config.maxParallel) };
  for (const [path, values] of Object.entries(config.space as Record<string, unknown>)) params[`space.${path}`] = JSON.stringify(values).slice(0, 6000);
  return params;
}

/** The `tracking` of a search's base input (validated with every trial's input). */
export function baseTracking(config: { readonly base: Readonly<Record<string, unknown>> }): TrackingConfig | undefined {
  return config.base.tracking as TrackingConfig | undefined;
}
