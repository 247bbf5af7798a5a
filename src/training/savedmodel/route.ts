/**
 * The savedmodel route: models of kind `{ "kind": "savedmodel", "uri": ... }`, trainable
 * SavedModels exported from Keras by tools/export_trainable_savedmodel.py (what they are:
 * metadata.ts; how they run: graph.ts). The variables live in ONE TensorFlow session per loaded
 * SavedModel, so the route holds one session at a time (`singleSession`) and keeps the loaded
 * SavedModel between activities and runs of the same URI.
 */
import * as tf from '@tensorflow/tfjs';
import type { LoadedCheckpoint, ObjectBytes } from '../../checkpoints/format';
import { MODEL_JSON, OPTIMIZER_BIN, STATE_JSON, WEIGHTS_BIN } from '../../checkpoints/layout';
import type { ModelSpec, TrainConfig } from '../../config/train-config';
import type { BatchAssembler } from '../batch';
import type { Dataset, DatasetShapes } from '../dataset';
import { NonRetryableTrainingError } from '../protocol';
import type { EvalData } from '../eval-data';
import type { ModelFiles, RouteDeps, RouteSession, SessionTarget, TrainingRoute } from '../route';
import { evaluateGraph, TrainableSavedModel } from './graph';
import { fail, isSavedModelSpec, METADATA_FILE, readMetadata } from './metadata';
import { localSavedModelDir, tfNode } from './mirror';
import { checkSavedModelOps } from './op-check';
import {
  isSavedModelWeightsJson,
  modelWordsFitting,
  weightsDescription,
  type SavedModelCheckpointState,
  type SavedModelWeightsDescription,
} from './serialization';
import { validateTrainableSavedModel } from './signatures';

export interface SavedModelSession extends RouteSession {
  readonly graph: TrainableSavedModel;
}

export class SavedModelRoute implements TrainingRoute<SavedModelSession> {
  readonly name = 'savedmodel';
  readonly singleSession = true;
  /** The loaded SavedModel, kept between activities and runs of the same URI. */
  private loaded: TrainableSavedModel | undefined;

  constructor(private readonly deps: Pick<RouteDeps, 'openStore' | 'backend' | 'log'>) {}

  handlesSpec(spec: ModelSpec): boolean {
    return isSavedModelSpec(spec);
  }

  handlesExport(description: Readonly<Record<string, unknown>>): boolean {
    return isSavedModelWeightsJson(description);
  }

  /**
   * The SavedModel at `uri`, validated against the data's shapes. `fresh`: with the exported
   * initial values (loaded again, since the variables live in the TF session).
   */
  private async graph(uri: string, shapes: DatasetShapes, fresh: boolean): Promise<TrainableSavedModel> {
    const tfn = tfNode(this.deps);
    const dir = await localSavedModelDir(uri, this.deps.openStore, this.deps.log);
    const { metadata, sha256: metaSha } = readMetadata(dir, uri);
    checkSavedModelOps(dir, uri); // before anything parses or loads it (again in TrainableSavedModel.load)
    await validateTrainableSavedModel(tfn, dir, uri, metadata, { train: shapes });
    if (this.loaded && (fresh || this.loaded.uri !== uri || this.loaded.metadataSha256 !== metaSha)) {
      this.loaded.dispose();
      this.loaded = undefined;
    }
    this.loaded ??= await TrainableSavedModel.load(tfn, uri, dir, metadata, metaSha);
    return this.loaded;
  }

  private session(target: SessionTarget, graph: TrainableSavedModel, from: { step: number; committedSha256: string | undefined; lossSum: number; lossSteps: number; learningRate: number }): SavedModelSession {
    return {
      runUri: target.runUri,
      graph,
      step: from.step,
      committedSha256: from.committedSha256,
      lossSum: tf.scalar(from.lossSum),
      lossSteps: from.lossSteps,
      learningRate: from.learningRate,
    };
  }

  async openFresh(target: SessionTarget, train: Dataset): Promise<SavedModelSession> {
    const spec = target.config.model as ModelSpec & { uri: string };
    const graph = await this.graph(spec.uri, train, true);
    graph.setLearningRate(target.learningRate);
    return this.session(target, graph, { step: 0, committedSha256: undefined, lossSum: 0, lossSteps: 0, learningRate: target.learningRate });
  }

  /** Model variables from a checkpoint or export of the same SavedModel; the optimizer stays as exported. */
  async warmStart(session: SavedModelSession, source: ModelFiles, warmStartFrom: string): Promise<void> {
    const { graph } = session;
    const weights = modelWordsFitting(source, graph.metadata, graph.uri, `warmStartFrom ${warmStartFrom}`);
    const { optimizer } = await graph.getState();
    graph.setState(weights, optimizer);
    graph.setLearningRate(session.learningRate);
  }

  async restore(checkpoint: LoadedCheckpoint, target: SessionTarget, shapes: DatasetShapes): Promise<SavedModelSession> {
    const state = JSON.parse(checkpoint.objects.get(STATE_JSON)!.toString('utf8')) as SavedModelCheckpointState;
    if (state.model?.kind !== 'savedmodel') {
      throw new NonRetryableTrainingError(`Checkpoint ${checkpoint.uri} was not written by a savedmodel run; it cannot resume one`);
    }
    const spec = target.config.model as ModelSpec & { uri: string };
    const graph = await this.graph(spec.uri, shapes, false);
    if (state.model.metadataSha256 !== graph.metadataSha256) {
      this.deps.log(`[durable-train] checkpoint ${checkpoint.uri} was written with a different ${METADATA_FILE}; restoring its state anyway (the sizes are checked)`);
    }
    graph.setState(checkpoint.objects.get(WEIGHTS_BIN)!, checkpoint.objects.get(OPTIMIZER_BIN)!);
    graph.setLearningRate(state.learningRate);
    return this.session(target, graph, {
      step: state.step,
      committedSha256: checkpoint.manifestSha256,
      lossSum: state.epochLoss.sum,
      lossSteps: state.epochLoss.steps,
      learningRate: state.learningRate,
    });
  }

  setLearningRate(session: SavedModelSession, learningRate: number): void {
    session.graph.setLearningRate(learningRate);
  }

  stepper(session: SavedModelSession): (step: number, batch: BatchAssembler) => tf.Scalar {
    return (_step, batch) => {
      const x = tf.tensor(batch.x, batch.xShape);
      const y = tf.tensor(batch.y, batch.yShape);
      try {
        return session.graph.trainStep(x, y);
      } finally {
        x.dispose();
        y.dispose();
      }
    };
  }

  async snapshot(s: SavedModelSession, config: TrainConfig): Promise<Map<string, ObjectBytes>> {
    const { metadata } = s.graph;
    const { model, optimizer } = await s.graph.getState();
    // Key order is part of the checkpoint bytes (exact-resume compares them): keep it.
    const state: SavedModelCheckpointState = {
      format: 'durable-train/state@1',
      step: s.step,
      epoch: Math.ceil(s.step / config.stepsPerEpoch),
      learningRate: s.learningRate,
      model: { kind: 'savedmodel', uri: s.graph.uri, metadataSha256: s.graph.metadataSha256 },
      optimizer: { class: metadata.optimizer.class, iterations: s.graph.iterationsOf(optimizer), learningRateVariable: metadata.optimizer.learningRateVariable },
      stateLayout: { encoding: 'raw-bytes-as-int32-words@1', modelWords: metadata.state.model.words, optimizerWords: metadata.state.optimizer.words },
      dataCursor: { scheme: 'permutation-stream@1', seed: config.seed, batchSize: config.hyperparameters.batchSize, step: s.step },
      rng: { scheme: 'in-graph-seed-variables@1', seed: config.seed },
      epochLoss: { sum: (await s.lossSum.data())[0]!, steps: s.lossSteps },
      backend: this.deps.backend.name,
      config,
    };
    return new Map<string, ObjectBytes>([
      [MODEL_JSON, Buffer.from(JSON.stringify(weightsDescription(s.graph.uri, metadata)))],
      [WEIGHTS_BIN, model],
      [OPTIMIZER_BIN, optimizer],
      [STATE_JSON, Buffer.from(JSON.stringify(state, null, 1))],
    ]);
  }

  async evaluate(session: SavedModelSession, data: EvalData): Promise<Record<string, number>> {
    const { graph } = session;
    await validateTrainableSavedModel(tfNode(this.deps), graph.dir, graph.uri, graph.metadata, { train: data });
    return evaluateGraph(graph, data);
  }

  /** Loads the exported weights into the SavedModel they name (the engine dropped any session on it first). */
  async evaluateExport(model: ModelFiles, data: EvalData): Promise<Record<string, number>> {
    const uri = (model.description as Partial<SavedModelWeightsDescription>).savedModel;
    if (typeof uri !== 'string' || uri === '') {
      fail(`Expected \`savedModel\` of the ${MODEL_JSON} at ${model.uri} to name the SavedModel its weights belong to, got ${JSON.stringify(uri)}`);
    }
    const graph = await this.graph(uri, data, false);
    const weights = modelWordsFitting(model, graph.metadata, uri, `Cannot evaluate ${model.uri}`);
    // Evaluation reads only the model variables; the optimizer's are put back as they are.
    const { optimizer } = await graph.getState();
    graph.setState(weights, optimizer);
    return evaluateGraph(graph, data);
  }

  closeSession(session: SavedModelSession): void {
    session.lossSum.dispose();
  }

  dispose(): void {
    this.loaded?.dispose();
    this.loaded = undefined;
  }
}
