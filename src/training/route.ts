/**
 * The contract every training route implements (today: `eager` tfjs-layers in eager/, trainable
 * SavedModel in savedmodel/). A route knows how to build, step, snapshot, restore and evaluate
 * ITS kind of model; everything routes share is written once, against this interface, in
 * engine.ts: which session to continue from (memory or the newest good checkpoint at or below the
 * target, else fresh or warm-started), the step loop with progress and cancellation
 * (step-loop.ts), committing a checkpoint, evaluating a checkpoint, and routing exported models.
 *
 * An operation a route cannot do is either absent here (the optional methods) or refused by the
 * route itself, always with NonRetryableTrainingError from the first attempt (`unsupported`).
 */
import type * as tf from '@tensorflow/tfjs';
import type { LoadedCheckpoint, ObjectBytes } from '../checkpoints/format';
import type { CheckpointStore } from '../checkpoints/store';
import type { LossName, ModelSpec, TrainConfig } from '../config/train-config';
import type { BackendInfo } from './backend';
import type { BatchAssembler } from './batch';
import type { Dataset, DatasetShapes } from './dataset';
import type { EvalData } from './eval-data';
import type { DatasetRegistry } from './dataset-registry';
import type { ModelRegistry } from './models';
import { NonRetryableTrainingError } from './protocol';
import type { EngineFaults, LoopSession } from './step-loop';

/** What routes (and the engine over them) are given by the trainer process. */
export interface RouteDeps {
  readonly models: ModelRegistry;
  readonly datasets: DatasetRegistry;
  readonly openStore: (uri: string) => CheckpointStore;
  readonly backend: BackendInfo;
  readonly log: (message: string) => void;
  /** Fault injection for tests (from DT_FAULT_* in the trainer process); never set in production. */
  readonly faults?: EngineFaults;
}

/** One run's training state in memory on a route, at `step`. Routes extend it with their model. */
export interface RouteSession extends LoopSession {
  readonly runUri: string;
  learningRate: number;
}

/** Which run a session belongs to and how it is configured. */
export interface SessionTarget {
  readonly runUri: string;
  readonly config: TrainConfig;
  /** For a fresh session; a restored one takes the learning rate its checkpoint recorded. */
  readonly learningRate: number;
}

/** A model.json and its weights.bin: an exported model, or the model part of a checkpoint. */
export interface ModelFiles {
  /** Where they were read from (for messages). */
  readonly uri: string;
  readonly modelJson: Buffer;
  readonly weights: Buffer;
  /** model.json, parsed. */
  readonly description: Readonly<Record<string, unknown>>;
}

export interface TrainingRoute<S extends RouteSession = RouteSession> {
  /** Named in messages: `eager`, `savedmodel`. */
  readonly name: string;
  /**
   * True when the route holds one set of variables at a time (a SavedModel's TF session):
   * evaluating another checkpoint or an exported model moves them, so the engine drops (or
   * replaces) the current session first instead of keeping it beside a second one.
   */
  readonly singleSession: boolean;
  /** Whether this route trains models of this spec (the router asks each route in turn). */
  handlesSpec(spec: ModelSpec): boolean;
  /** Whether this route evaluates and warm-starts from a model.json of this description. */
  handlesExport(description: Readonly<Record<string, unknown>>): boolean;

  /** A session at step 0 with freshly initialised weights and optimizer. */
  openFresh(target: SessionTarget, train: Dataset): Promise<S>;
  /** Copies the weights of `source` (read from `warmStartFrom`) into a fresh session; sizes are checked. */
  warmStart?(session: S, source: ModelFiles, warmStartFrom: string): Promise<void>;
  /** A session equal to a checkpoint this route wrote; `shapes` are the data it will see. */
  restore(checkpoint: LoadedCheckpoint, target: SessionTarget, shapes: DatasetShapes): Promise<S>;
  setLearningRate(session: S, learningRate: number): void;
  /** The function that trains global step `step` on its (already filled) batch and returns the loss. */
  stepper(session: S, config: TrainConfig): (step: number, batch: BatchAssembler) => tf.Scalar;
  /**
   * The checkpoint objects (model.json, weights.bin, optimizer.bin, state.json) of the session's
   * state, in host memory that training cannot change: a buffer per object, or chunks (one per
   * tensor) that the store writes with writev. Training waits for this copy only.
   */
  snapshot(session: S, config: TrainConfig): Promise<Map<string, ObjectBytes>>;
  /** `val_*` metrics of the session's model over a whole dataset (in memory or streamed: eval-data.ts). */
  evaluate(session: S, data: EvalData, loss: LossName): Promise<Record<string, number>>;
  /** `val_*` metrics of an exported model (one this route's `handlesExport` accepted). */
  evaluateExport?(model: ModelFiles, data: EvalData, loss: LossName): Promise<Record<string, number>>;
  /** Releases what the session holds (not what the route caches across sessions). */
  closeSession(session: S): void;
  /** Releases everything (the memory check and shutdown). */
  dispose(): void;
}

/** The error for an operation a route does not offer: retrying cannot help. */
export function unsupported(route: Pick<TrainingRoute, 'name'>, operation: string): NonRetryableTrainingError {
  return new NonRetryableTrainingError(`The \`${route.name}\` training route does not support ${operation}`);
}
