/**
 * The eager route: tfjs-layers models from the model registry (`{ name, params }`) or a topology
 * (`{ topology }`), stepped op by op by tfjs, so that a resumed run is bitwise equal to an
 * uninterrupted one: weights and optimizer slots go into checkpoints, dropout masks are drawn from
 * hash32(seed, step, layer), the batch order from (seed, step).
 */
import * as tf from '@tensorflow/tfjs';
import type { LoadedCheckpoint, ObjectBytes } from '../../checkpoints/format';
import { MODEL_JSON, OPTIMIZER_BIN, STATE_JSON, WEIGHTS_BIN } from '../../checkpoints/layout';
import type { LossName, ModelSpec, OptimizerName, TrainConfig } from '../../config/train-config';
import type { BatchAssembler } from '../batch';
import type { Dataset } from '../dataset';
import { checkModelFits } from '../model-size';
import { NonRetryableTrainingError } from '../protocol';
import { hash32 } from '../rng';
import type { EvalData } from '../eval-data';
import type { ModelFiles, RouteDeps, RouteSession, SessionTarget, TrainingRoute } from '../route';
import { evaluateModel } from './evaluate';
import { createOptimizer, restoreOptimizer, setOptimizerLearningRate, snapshotOptimizer } from './optimizers';
import { deserializeModel, isLayersModelJson, serializeModel, type EagerCheckpointState } from './serialization';
import { lossFunction, optimizerStep, trainingLoss } from './step';
import { copyWeightsInto } from './warm-start';

export interface EagerSession extends RouteSession {
  readonly model: tf.LayersModel;
  readonly optimizer: tf.Optimizer;
  readonly optimizerName: OptimizerName;
}

export class EagerRoute implements TrainingRoute<EagerSession> {
  readonly name = 'eager';
  readonly singleSession = false;

  constructor(private readonly deps: Pick<RouteDeps, 'models' | 'backend'>) {}

  handlesSpec(spec: ModelSpec): boolean {
    return 'name' in spec || 'topology' in spec;
  }

  handlesExport(description: Readonly<Record<string, unknown>>): boolean {
    return isLayersModelJson(description);
  }

  async openFresh(target: SessionTarget, train: Dataset): Promise<EagerSession> {
    const { config } = target;
    let model: tf.LayersModel;
    const outputUnits = train.yShape[train.yShape.length - 1] ?? 1;
    checkModelFits(config, { inputShape: train.xShape, outputUnits });
    try {
      model = await this.deps.models.build(config.model, { inputShape: train.xShape, outputUnits, seed: config.seed });
    } catch (err) {
      throw new NonRetryableTrainingError(`Could not build model: ${(err as Error).message}`);
    }
    const { optimizer: name, momentum } = config.hyperparameters;
    return {
      runUri: target.runUri,
      model,
      optimizer: createOptimizer(name, target.learningRate, momentum),
      optimizerName: name,
      step: 0,
      committedSha256: undefined,
      lossSum: tf.scalar(0),
      lossSteps: 0,
      learningRate: target.learningRate,
    };
  }

  async warmStart(session: EagerSession, source: ModelFiles, warmStartFrom: string): Promise<void> {
    await copyWeightsInto(session.model, source, warmStartFrom);
  }

  async restore(checkpoint: LoadedCheckpoint, target: SessionTarget): Promise<EagerSession> {
    const state = JSON.parse(checkpoint.objects.get(STATE_JSON)!.toString('utf8')) as EagerCheckpointState & { model?: { kind?: string } };
    if (state.model?.kind !== undefined) {
      throw new NonRetryableTrainingError(
        `Checkpoint ${checkpoint.uri} was written by a \`${state.model.kind}\` run; it cannot resume a tfjs-layers run`,
      );
    }
    const model = await deserializeModel(checkpoint.objects.get(MODEL_JSON)!, checkpoint.objects.get(WEIGHTS_BIN)!, checkpoint.uri);
    const optimizer = await restoreOptimizer(state.optimizer, checkpoint.objects.get(OPTIMIZER_BIN)!, state.learningRate, target.config.hyperparameters.momentum);
    return {
      runUri: target.runUri,
      model,
      optimizer,
      optimizerName: state.optimizer.name,
      step: state.step,
      committedSha256: checkpoint.manifestSha256,
      lossSum: tf.scalar(state.epochLoss.sum),
      lossSteps: state.epochLoss.steps,
      learningRate: state.learningRate,
    };
  }

  setLearningRate(session: EagerSession, learningRate: number): void {
    setOptimizerLearningRate(session.optimizer, learningRate);
  }

  stepper(session: EagerSession, config: TrainConfig): (step: number, batch: BatchAssembler) => tf.Scalar {
    const lossOf = trainingLoss(session.model, config.loss, lossFunction(config.loss));
    const dropouts = session.model.layers.filter((l) => l.getClassName() === 'Dropout');
    const variables = session.model.trainableWeights.map((w) => w.read() as tf.Variable);
    return (step, batch) => {
      // A fresh mask each step, reproducible from (seed, step): tfjs reuses one mask per seed.
      dropouts.forEach((layer, li) => {
        (layer as any).seed = hash32(config.seed, step, li);
      });
      return optimizerStep(session.optimizer, variables, lossOf, batch);
    };
  }

  async snapshot(s: EagerSession, config: TrainConfig): Promise<Map<string, ObjectBytes>> {
    const { modelJson, weights } = await serializeModel(s.model);
    const optimizer = await snapshotOptimizer(s.optimizer, s.optimizerName);
    const lossSum = (await s.lossSum.data())[0]!;
    // Key order is part of the checkpoint bytes (exact-resume compares them): keep it.
    const state: EagerCheckpointState = {
      format: 'durable-train/state@1',
      step: s.step,
      epoch: Math.ceil(s.step / config.stepsPerEpoch),
      learningRate: s.learningRate,
      optimizer: optimizer.state,
      dataCursor: { scheme: 'permutation-stream@1', seed: config.seed, batchSize: config.hyperparameters.batchSize, step: s.step },
      rng: { scheme: 'hash32(seed,step,layer)@1', seed: config.seed },
      epochLoss: { sum: lossSum, steps: s.lossSteps },
      backend: this.deps.backend.name,
      config,
    };
    return new Map<string, ObjectBytes>([
      [MODEL_JSON, modelJson],
      [WEIGHTS_BIN, weights],
      [OPTIMIZER_BIN, optimizer.bytes],
      [STATE_JSON, Buffer.from(JSON.stringify(state, null, 1))],
    ]);
  }

  async evaluate(session: EagerSession, data: EvalData, loss: LossName): Promise<Record<string, number>> {
    return evaluateModel(session.model, data, loss);
  }

  async evaluateExport(model: ModelFiles, data: EvalData, loss: LossName): Promise<Record<string, number>> {
    const loaded = await deserializeModel(model.modelJson, model.weights, model.uri);
    try {
      return await evaluateModel(loaded, data, loss);
    } finally {
      loaded.dispose();
    }
  }

  closeSession(session: EagerSession): void {
    session.model.dispose();
    session.optimizer.dispose();
    session.lossSum.dispose();
  }

  dispose(): void {
    // Nothing is cached across sessions.
  }
}
