/**
 * Training activities. Each one is a thin shell around the trainer process: it heartbeats
 * from the worker's own event loop, turns cancellation into a stop at the next step, and maps
 * trainer failures onto retryable or non-retryable Temporal failures.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TrainConfig } from '../config/train-config';
import { applyRetention, readCheckpoint, sha256 } from '../checkpoints/format';
import { checkpointKey } from '../checkpoints/layout';
import { PermanentStoreError, type CheckpointStore } from '../checkpoints/store';
import type { DescribeResult, EvaluateResult, Progress, RequestBody, TrainResult } from '../training/protocol';
import { TrainerError, type TrainerClient } from '../training/trainer-client';
import { learningCurveSvg, type EpochRecord } from './learning-curve';

export interface TrainingActivityDeps {
  readonly trainer: TrainerClient;
  readonly openStore: (uri: string) => CheckpointStore;
  /** Where runs go when their input names no `checkpoint.uri`. */
  readonly checkpointRoot: string;
}

export interface WorkerDescription extends DescribeResult {
  readonly checkpointRoot: string;
}

export interface TrainUntilStepInput {
  readonly runUri: string;
  readonly config: TrainConfig;
  readonly targetStep: number;
  readonly learningRate: number;
}

export interface EvaluateInput {
  readonly runUri: string;
  readonly config: TrainConfig;
  readonly epoch: number;
  readonly step: number;
  readonly learningRate: number;
  /** Training metrics of this epoch, recorded beside the eval metrics. */
  readonly trainMetrics: Readonly<Record<string, number>>;
  /** Checkpoint steps retention must keep besides the last K (the best so far). */
  readonly protectSteps: readonly number[];
}

export interface FinalizeInput {
  readonly runUri: string;
  readonly config: TrainConfig;
  /** The checkpoint to export as the final model (the best one with restoreBestWeights). */
  readonly modelStep: number;
  readonly protectSteps: readonly number[];
  readonly title: string;
}

export interface FinalizeResult {
  readonly modelUri: string;
  readonly metricsUri: string;
  readonly plotUri: string;
  readonly deletedSteps: readonly number[];
}

/** Runs a trainer request, heartbeating while it runs and mapping its failures for Temporal. */
async function viaTrainer<T>(deps: TrainingActivityDeps, body: RequestBody): Promise<T> {
  const ctx = Context.current();
  let last: Progress | undefined = ctx.info.heartbeatDetails as Progress | undefined;
  // Heartbeat on a timer too: loading a checkpoint or a dataset sends no progress for a while.
  const timer = setInterval(() => ctx.heartbeat(last), 1000);
  try {
    return await deps.trainer.request<T>(body, {
      onProgress: (p) => {
        last = p;
        ctx.heartbeat(p);
      },
      signal: ctx.cancellationSignal,
    });
  } catch (err) {
    if (err instanceof TrainerError && err.nonRetryable) {
      throw ApplicationFailure.nonRetryable(err.message, err.name);
    }
    throw err;
  } finally {
    clearInterval(timer);
  }
}

function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  return fn().catch((err: unknown) => {
    if (err instanceof PermanentStoreError) throw ApplicationFailure.nonRetryable(err.message, err.name);
    throw err;
  });
}

/** Appends nothing twice: writes `key` unless the same bytes are there; refuses to change saved data. */
async function writeOnce(store: CheckpointStore, key: string, data: Buffer): Promise<void> {
  const existing = await store.get(key);
  if (existing && sha256(existing) === sha256(data)) return;
  if (existing) {
    throw ApplicationFailure.nonRetryable(`Refusing to overwrite ${store.uriOf(key)}: it holds different data`, 'WouldOverwrite');
  }
  await store.put(key, data);
}

export function createTrainingActivities(deps: TrainingActivityDeps) {
  return {
    /** What this worker offers (models, datasets, backend) and its default checkpoint root. */
    async describeWorker(): Promise<WorkerDescription> {
      const description = await deps.trainer.request<DescribeResult>({ type: 'describe' });
      return { ...description, checkpointRoot: deps.checkpointRoot };
    },

    /** Trains until global step `targetStep` (absolute: a retry resumes, a repeat returns at once). */
    async trainUntilStep(input: TrainUntilStepInput): Promise<TrainResult> {
      const result = await viaTrainer<TrainResult>(deps, { type: 'train', request: input });
      if (result.cancelled) {
        throw new CancelledFailure(`Training cancelled at step ${result.step}; checkpoint ${result.checkpointUri}`);
      }
      return result;
    },

    /** Evaluates the checkpoint at `step` on the eval set and records the epoch beside the checkpoints. */
    async evaluateCheckpoint(input: EvaluateInput): Promise<EvaluateResult> {
      const result = await viaTrainer<EvaluateResult>(deps, {
        type: 'evaluate',
        request: { runUri: input.runUri, config: input.config, step: input.step },
      });
      const store = deps.openStore(input.runUri);
      const record: EpochRecord = {
        epoch: input.epoch,
        step: input.step,
        learningRate: input.learningRate,
        metrics: { ...input.trainMetrics, ...result.metrics },
      };
      await storeCall(async () => {
        await writeOnce(store, `metrics/epoch-${String(input.epoch).padStart(8, '0')}.json`, Buffer.from(JSON.stringify(record)));
        await applyRetention(store, input.config.checkpoint.keepLast, [...input.protectSteps, input.step]);
      });
      return result;
    },

    /** The epochs a run already recorded (`metrics/epoch-*.json`), oldest first: what `resume` continues from. */
    async readRunRecords(input: { readonly runUri: string }): Promise<EpochRecord[]> {
      const store = deps.openStore(input.runUri);
      return storeCall(async () => {
        const records: EpochRecord[] = [];
        for (const key of await store.list('metrics/')) {
          const data = await store.get(key);
          if (data) records.push(JSON.parse(data.toString('utf8')) as EpochRecord);
        }
        return records.sort((a, b) => a.epoch - b.epoch);
      });
    },

    /** Exports the final model in tfjs format, writes metrics.jsonl and the learning curve, applies retention. */
    async finalizeRun(input: FinalizeInput): Promise<FinalizeResult> {
      const store = deps.openStore(input.runUri);
      return storeCall(async () => {
        const read = await readCheckpoint(store, input.modelStep);
        if (!read.ok) {
          throw ApplicationFailure.nonRetryable(
            `Cannot export ${store.uriOf(checkpointKey(input.modelStep))}: ${read.reason}`,
            'CheckpointUnusable',
          );
        }
        const modelDir = `model`;
        // A resumed run (`resume`) exports again over the earlier export; otherwise an export never changes.
        const write = input.config.resume ? (key: string, data: Buffer) => store.put(key, data) : (key: string, data: Buffer) => writeOnce(store, key, data);
        await write(`${modelDir}/model.json`, read.checkpoint.objects.get('model.json')!);
        await write(`${modelDir}/weights.bin`, read.checkpoint.objects.get('weights.bin')!);
        const records: EpochRecord[] = [];
        for (const key of await store.list('metrics/')) {
          const data = await store.get(key);
          if (data) records.push(JSON.parse(data.toString('utf8')) as EpochRecord);
        }
        records.sort((a, b) => a.epoch - b.epoch);
        await store.put('metrics.jsonl', Buffer.from(records.map((r) => JSON.stringify(r)).join('\n') + '\n'));
        await store.put('learning-curve.svg', Buffer.from(learningCurveSvg(records, input.title)));
        const deletedSteps = await applyRetention(store, input.config.checkpoint.keepLast, [...input.protectSteps, input.modelStep]);
        return {
          modelUri: store.uriOf(`${modelDir}/model.json`),
          metricsUri: store.uriOf('metrics.jsonl'),
          plotUri: store.uriOf('learning-curve.svg'),
          deletedSteps,
        };
      });
    },
  };
}

export type TrainingActivities = ReturnType<typeof createTrainingActivities>;
