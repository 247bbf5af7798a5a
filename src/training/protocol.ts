/**
 * Messages between an activity (in the worker) and its trainer process. Small and plain:
 * weights never travel here, only through the checkpoint store.
 */
import type { LeaseHolder } from '../checkpoints/lease';
import type { CheckpointTiming } from '../checkpoints/timing';
import type { TrainConfig } from '../config/train-config';

export interface TrainRequest {
  /** The run's root URI: `<checkpoint root>/<runId>`. */
  readonly runUri: string;
  readonly config: TrainConfig;
  /** Train until this global step (absolute, so a retried request is idempotent). */
  readonly targetStep: number;
  /** Learning rate to train with from now on (the workflow may have reduced it). */
  readonly learningRate: number;
  /**
   * The activity attempt this request trains for: the trainer takes the run's lease for it before
   * it opens the session and checks it before every checkpoint it commits. Without one (tools,
   * engine-level tests) checkpoints are written unfenced.
   */
  readonly holder?: LeaseHolder;
}

/** What one `train` request did: trained (or found) the run up to a step. Not the workflow's TrainResult. */
export interface TrainUntilStepResult {
  readonly step: number;
  readonly checkpointStep: number;
  readonly checkpointUri: string;
  /** Mean training loss over the epoch that ends at `step` (exact across resumes). */
  readonly loss: number;
  /** Steps actually computed by this call (0 when the target was already checkpointed). */
  readonly stepsRun: number;
  /** Step this call started from (the checkpoint it resumed, or 0). */
  readonly resumedFromStep: number;
  readonly seconds: number;
  readonly backend: string;
  readonly cancelled: boolean;
  /** Where this call's checkpoint time went, per part (absent from trainers that predate it). */
  readonly checkpointTiming?: CheckpointTiming;
  /** Milliseconds from the request's arrival to its first step, and in the steps themselves (batches included). */
  readonly loopTiming?: { readonly setupMs: number; readonly stepsMs: number };
}

export interface EvaluateRequest {
  readonly runUri: string;
  readonly config: TrainConfig;
  /** Evaluate the checkpoint at this step. */
  readonly step: number;
  /**
   * The evaluation attempt, which took the run's lease before asking: a request whose holder no
   * longer holds it is refused before it evaluates (the activity checks again before retention).
   */
  readonly holder?: LeaseHolder;
}

export interface EvaluateResult {
  readonly step: number;
  readonly metrics: Readonly<Record<string, number>>;
  readonly examples: number;
  readonly seconds: number;
}

/**
 * What one `trainEpoch` request did: trained to the step (the same TrainRequest as `train`), then
 * evaluated the state there. `evaluated` is null when training was cancelled before the step.
 */
export interface TrainEpochTrainerResult {
  readonly trained: TrainUntilStepResult;
  readonly evaluated: EvaluateResult | null;
}

/** Evaluates exported models (`…/model/model.json` or its folder) on one dataset: champion vs challenger. */
export interface EvaluateModelsRequest {
  readonly modelUris: readonly string[];
  readonly data: TrainConfig['data']['eval'];
  readonly loss: TrainConfig['loss'];
}

export interface EvaluateModelsResult {
  /** Metrics per model, in the order of `modelUris`. */
  readonly metrics: ReadonlyArray<Readonly<Record<string, number>>>;
  readonly examples: number;
  readonly seconds: number;
}

export interface DescribeResult {
  readonly models: readonly string[];
  readonly datasets: readonly string[];
  readonly backend: { readonly name: string; readonly package: string; readonly gpu: boolean; readonly notes: readonly string[] };
  readonly pid: number;
}

export interface Progress {
  readonly step: number;
  readonly checkpointStep: number;
  readonly targetStep: number;
  readonly loss?: number;
}

export type RequestBody =
  | { readonly type: 'train'; readonly request: TrainRequest }
  /** `train`, then `evaluate` at the step reached, in one round trip (the epoch activity). */
  | { readonly type: 'trainEpoch'; readonly request: TrainRequest }
  | { readonly type: 'evaluate'; readonly request: EvaluateRequest }
  | { readonly type: 'evaluateModels'; readonly request: EvaluateModelsRequest }
  | { readonly type: 'describe' }
  | { readonly type: 'memory' }
  /** tf.memory() without dropping anything (the memory check). */
  | { readonly type: 'numTensors' };

export type ParentMessage =
  | ({ readonly id: number } & RequestBody)
  | { readonly id: number; readonly type: 'cancel' };

export interface SerializedError {
  readonly message: string;
  readonly name: string;
  /** Retrying cannot help (bad input, NaN loss, missing endpoint, permission denied). */
  readonly nonRetryable: boolean;
  readonly stack?: string;
}

export type ChildMessage =
  | { readonly id: number; readonly type: 'progress'; readonly progress: Progress }
  | { readonly id: number; readonly type: 'result'; readonly result: unknown }
  | { readonly id: number; readonly type: 'error'; readonly error: SerializedError }
  | { readonly id: 0; readonly type: 'log'; readonly message: string }
  /**
   * Sent every second while the trainer's event loop runs: the worker's watchdog listens for it.
   * `progressing`: the trainer's work moved forward since the last one (liveness.ts); only then
   * does the activity heartbeat.
   */
  | { readonly id: 0; readonly type: 'alive'; readonly progressing?: boolean };

/** An error the trainer raises when retrying would give the same failure. */
export class NonRetryableTrainingError extends Error {
  override readonly name = 'NonRetryableTrainingError';
}
