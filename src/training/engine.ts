/**
 * The step loop. Runs inside the trainer process: it owns the device, keeps the current run's
 * model in memory between activities, and keeps every piece of training state in checkpoints
 * so that a resumed run is bitwise equal to an uninterrupted one.
 */
import * as tf from '@tensorflow/tfjs';
import type { LossName, OptimizerName, TrainConfig } from '../config/train-config';
import {
  listCheckpointSteps,
  loadLatestCheckpoint,
  readCheckpoint,
  type LoadedCheckpoint,
} from '../checkpoints/format';
import { checkpointKey } from '../checkpoints/layout';
import type { CheckpointStore } from '../checkpoints/store';
import type { BackendInfo } from './backend';
import { product, type Dataset, type DatasetRegistry } from './datasets';
import type { ModelRegistry } from './models';
import {
  NonRetryableTrainingError,
  type EvaluateModelsRequest,
  type EvaluateModelsResult,
  type EvaluateRequest,
  type EvaluateResult,
  type Progress,
  type TrainRequest,
  type TrainResult,
} from './protocol';
import { hash32 } from './rng';
import { BatchAssembler, optimizerStep, trainingLoss } from './train-step';
import { commitCheckpoint, runSteps, sessionIsNewest, type EngineFaults } from './step-loop';
import { isSavedModelSpec, SavedModelRoute } from './savedmodel';

export interface EngineDeps {
  readonly models: ModelRegistry;
  readonly datasets: DatasetRegistry;
  readonly openStore: (uri: string) => CheckpointStore;
  readonly backend: BackendInfo;
  readonly log: (message: string) => void;
  /** Fault injection for tests (from DT_FAULT_* in the trainer process); never set in production. */
  readonly faults?: EngineFaults;
}

export type { EngineFaults };

interface SlotSpec {
  readonly name: string;
  readonly shape: number[];
}

/** Everything in state.json: with the model and optimizer bytes, all that training needs to continue. */
export interface TrainingState {
  readonly format: 'durable-train/state@1';
  readonly step: number;
  readonly epoch: number;
  readonly learningRate: number;
  readonly optimizer: {
    readonly name: OptimizerName;
    readonly iterations: number;
    /** Adam's running beta powers: tfjs recomputes them with pow() on load, which drifts in float32. */
    readonly accBeta1?: number;
    readonly accBeta2?: number;
    readonly slots: readonly SlotSpec[];
  };
  /** The batch order is a pure function of (seed, step): the cursor is the step. */
  readonly dataCursor: { readonly scheme: 'permutation-stream@1'; readonly seed: number; readonly batchSize: number; readonly step: number };
  /** Dropout masks are drawn from hash32(seed, step, layer): nothing else to save. */
  readonly rng: { readonly scheme: 'hash32(seed,step,layer)@1'; readonly seed: number };
  /** Running sum of float32 losses since the epoch began, so the epoch's mean survives a resume. */
  readonly epochLoss: { readonly sum: number; readonly steps: number };
  readonly backend: string;
  readonly config: TrainConfig;
}

interface Session {
  readonly runUri: string;
  readonly model: tf.LayersModel;
  readonly optimizer: tf.Optimizer;
  readonly optimizerName: OptimizerName;
  step: number;
  /** The manifest of the checkpoint the in-memory state equals, if any. */
  committedSha256: string | undefined;
  lossSum: tf.Scalar;
  lossSteps: number;
  learningRate: number;
}

export function createOptimizer(name: OptimizerName, learningRate: number, momentum: number): tf.Optimizer {
  switch (name) {
    case 'adam':
      return tf.train.adam(learningRate);
    case 'sgd':
      return tf.train.sgd(learningRate);
    case 'momentum':
      return tf.train.momentum(learningRate, momentum);
    case 'rmsprop':
      return tf.train.rmsprop(learningRate);
  }
}

function setLearningRate(optimizer: tf.Optimizer, learningRate: number): void {
  const o = optimizer as any;
  // SGD and momentum cache -lr in a tensor; the others read the field on every step.
  if (typeof o.setLearningRate === 'function') o.setLearningRate(learningRate);
  else o.learningRate = learningRate;
}

export function lossFunction(name: LossName): (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor {
  switch (name) {
    case 'categoricalCrossentropy':
      return (t, p) => tf.metrics.categoricalCrossentropy(t, p);
    case 'meanSquaredError':
      return (t, p) => tf.metrics.meanSquaredError(t, p);
  }
}

async function tensorBytes(tensors: readonly tf.Tensor[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const t of tensors) {
    const data = await t.data();
    parts.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }
  return Buffer.concat(parts);
}

function float32View(buf: Buffer): Float32Array {
  // Copy into an aligned buffer: a Buffer slice may start at any byte offset.
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  return new Float32Array(copy.buffer);
}

function toArrayBuffer(data: tf.io.WeightData): ArrayBuffer {
  return Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : (data as ArrayBuffer);
}

/** model.json + weights.bin in the standard tfjs-layers format: every checkpoint is a loadable model. */
export async function serializeModel(model: tf.LayersModel): Promise<{ modelJson: Buffer; weights: Buffer }> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifacts?.weightData || !artifacts.weightSpecs) throw new Error('tfjs returned no weights when saving the model');
  const modelJson = {
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
    convertedBy: 'durable-train',
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
  };
  return { modelJson: Buffer.from(JSON.stringify(modelJson)), weights: Buffer.from(toArrayBuffer(artifacts.weightData)) };
}

export async function deserializeModel(modelJsonBytes: Buffer, weights: Buffer): Promise<tf.LayersModel> {
  const json = JSON.parse(modelJsonBytes.toString('utf8')) as {
    modelTopology: object;
    weightsManifest: Array<{ weights: tf.io.WeightsManifestEntry[] }>;
  };
  const weightSpecs = json.weightsManifest.flatMap((g) => g.weights);
  const weightData = new Uint8Array(weights).buffer;
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
}

export class Engine {
  private session: Session | undefined;
  /** The graph route: models of kind `savedmodel` (src/training/savedmodel.ts). */
  private readonly graphRoute: SavedModelRoute;

  constructor(private readonly deps: EngineDeps) {
    this.graphRoute = new SavedModelRoute(deps);
  }

  private async dataset(spec: TrainConfig['data']['train']): Promise<Dataset> {
    return this.deps.datasets.load(spec);
  }

  private dropSession(): void {
    if (!this.session) return;
    this.session.model.dispose();
    this.session.optimizer.dispose();
    this.session.lossSum.dispose();
    this.session = undefined;
  }

  /** Drops everything the engine holds (used by the memory check and at shutdown). */
  dispose(): void {
    this.dropSession();
    this.graphRoute.dispose();
  }

  private async buildFresh(req: TrainRequest, train: Dataset): Promise<tf.LayersModel> {
    const { config } = req;
    let model: tf.LayersModel;
    try {
      model = this.deps.models.build(config.model, {
        inputShape: train.xShape,
        outputUnits: train.yShape[train.yShape.length - 1] ?? 1,
        seed: config.seed,
      });
    } catch (err) {
      throw new NonRetryableTrainingError(`Could not build model: ${(err as Error).message}`);
    }
    if (config.warmStartFrom) await this.warmStart(model, config.warmStartFrom);
    return model;
  }

  /** Copies weights from a checkpoint, a run (its latest checkpoint) or an exported model. */
  private async warmStart(model: tf.LayersModel, uri: string): Promise<void> {
    const store = this.deps.openStore(uri);
    let modelJson: Buffer | undefined;
    let weights: Buffer | undefined;
    if (await store.get('manifest.json')) {
      const steps = /checkpoints\/(\d{12})$/.exec(uri);
      const parent = this.deps.openStore(uri.replace(/\/checkpoints\/\d{12}$/, ''));
      const read = steps ? await readCheckpoint(parent, Number(steps[1])) : undefined;
      if (!read?.ok) throw new NonRetryableTrainingError(`warmStartFrom ${uri}: not a valid checkpoint`);
      modelJson = read.checkpoint.objects.get('model.json');
      weights = read.checkpoint.objects.get('weights.bin');
    } else if ((await listCheckpointSteps(store)).length > 0) {
      const latest = await loadLatestCheckpoint(store, Number.MAX_SAFE_INTEGER, this.deps.log);
      modelJson = latest?.objects.get('model.json');
      weights = latest?.objects.get('weights.bin');
    } else {
      modelJson = await store.get('model.json');
      weights = await store.get('weights.bin');
    }
    if (!modelJson || !weights) {
      throw new NonRetryableTrainingError(`warmStartFrom ${uri}: found no checkpoint or model there`);
    }
    const source = await deserializeModel(modelJson, weights);
    try {
      const from = source.getWeights();
      const to = model.getWeights();
      const mismatch = from.length !== to.length || from.some((w, i) => !tf.util.arraysEqual(w.shape, to[i]!.shape));
      if (mismatch) {
        throw new NonRetryableTrainingError(
          `warmStartFrom ${uri}: its weights (${from.map((w) => `[${w.shape}]`).join(' ')}) do not fit this model (${to.map((w) => `[${w.shape}]`).join(' ')})`,
        );
      }
      model.setWeights(from);
    } finally {
      source.dispose();
    }
  }

  private async restore(req: TrainRequest, ckpt: LoadedCheckpoint): Promise<Session> {
    const state = JSON.parse(ckpt.objects.get('state.json')!.toString('utf8')) as TrainingState;
    const model = await deserializeModel(ckpt.objects.get('model.json')!, ckpt.objects.get('weights.bin')!);
    const { optimizer: o } = state;
    const optimizer = createOptimizer(o.name, state.learningRate, req.config.hyperparameters.momentum);
    const values = float32View(ckpt.objects.get('optimizer.bin')!);
    const named: Array<{ name: string; tensor: tf.Tensor }> = [{ name: 'iter', tensor: tf.scalar(o.iterations, 'int32') }];
    let offset = 0;
    for (const slot of o.slots) {
      const size = product(slot.shape);
      named.push({ name: slot.name, tensor: tf.tensor(values.subarray(offset, offset + size), slot.shape) });
      offset += size;
    }
    await optimizer.setWeights(named);
    named.forEach((n) => n.tensor.dispose());
    const adam = optimizer as any;
    if (o.accBeta1 !== undefined && adam.accBeta1) {
      tf.tidy(() => {
        adam.accBeta1.assign(tf.scalar(o.accBeta1!));
        adam.accBeta2.assign(tf.scalar(o.accBeta2!));
      });
    }
    return {
      runUri: req.runUri,
      model,
      optimizer,
      optimizerName: o.name,
      step: state.step,
      committedSha256: ckpt.manifestSha256,
      lossSum: tf.scalar(state.epochLoss.sum),
      lossSteps: state.epochLoss.steps,
      learningRate: state.learningRate,
    };
  }

  /** The session to continue from: memory if it equals the newest good checkpoint, else that checkpoint. */
  private async resume(req: TrainRequest, store: CheckpointStore, train: Dataset): Promise<Session> {
    if (this.session && (await sessionIsNewest(store, this.session, req.runUri, req.targetStep))) return this.session;
    this.dropSession();
    const ckpt = await loadLatestCheckpoint(store, req.targetStep, this.deps.log);
    if (ckpt) {
      this.session = await this.restore(req, ckpt);
    } else {
      const { config } = req;
      const model = await this.buildFresh(req, train);
      this.session = {
        runUri: req.runUri,
        model,
        optimizer: createOptimizer(config.hyperparameters.optimizer, req.learningRate, config.hyperparameters.momentum),
        optimizerName: config.hyperparameters.optimizer,
        step: 0,
        committedSha256: undefined,
        lossSum: tf.scalar(0),
        lossSteps: 0,
        learningRate: req.learningRate,
      };
    }
    return this.session;
  }

  private async save(req: TrainRequest, store: CheckpointStore, s: Session): Promise<{ key: string }> {
    const { config } = req;
    const { modelJson, weights } = await serializeModel(s.model);
    const slots = await s.optimizer.getWeights();
    const iter = slots.shift();
    const iterations = iter ? (await iter.tensor.data())[0]! : 0;
    // getWeights() makes a fresh `iter` scalar on every call: dispose it, or each save leaks one tensor.
    iter?.tensor.dispose();
    const adam = s.optimizer as any;
    const lossSum = (await s.lossSum.data())[0]!;
    const state: TrainingState = {
      format: 'durable-train/state@1',
      step: s.step,
      epoch: Math.ceil(s.step / config.stepsPerEpoch),
      learningRate: s.learningRate,
      optimizer: {
        name: s.optimizerName,
        iterations,
        ...(adam.accBeta1 && { accBeta1: (await adam.accBeta1.data())[0], accBeta2: (await adam.accBeta2.data())[0] }),
        slots: slots.map((n) => ({ name: n.name, shape: n.tensor.shape })),
      },
      dataCursor: { scheme: 'permutation-stream@1', seed: config.seed, batchSize: config.hyperparameters.batchSize, step: s.step },
      rng: { scheme: 'hash32(seed,step,layer)@1', seed: config.seed },
      epochLoss: { sum: lossSum, steps: s.lossSteps },
      backend: this.deps.backend.name,
      config,
    };
    const objects = new Map<string, Buffer>([
      ['model.json', modelJson],
      ['weights.bin', weights],
      ['optimizer.bin', await tensorBytes(slots.map((n) => n.tensor))],
      ['state.json', Buffer.from(JSON.stringify(state, null, 1))],
    ]);
    return commitCheckpoint(store, s, objects, this.deps.faults, this.deps.log);
  }

  async train(
    req: TrainRequest,
    onProgress: (p: Progress) => void,
    isCancelled: () => boolean,
  ): Promise<TrainResult> {
    if (isSavedModelSpec(req.config.model)) {
      this.dropSession();
      return this.graphRoute.train(req, onProgress, isCancelled);
    }
    const started = Date.now();
    const { config } = req;
    const store = this.deps.openStore(req.runUri);
    const train = await this.dataset(config.data.train);
    let s: Session;
    try {
      s = await this.resume(req, store, train);
    } catch (err) {
      this.dropSession();
      throw err;
    }
    try {
      if (s.learningRate !== req.learningRate) {
        setLearningRate(s.optimizer, req.learningRate);
        s.learningRate = req.learningRate;
      }
      const batch = new BatchAssembler(train, config.hyperparameters.batchSize, config.seed);
      const lossOf = trainingLoss(s.model, config.loss, lossFunction(config.loss));
      const dropouts = s.model.layers.filter((l) => l.getClassName() === 'Dropout');
      const variables = s.model.trainableWeights.map((w) => w.read() as tf.Variable);
      const session = s;
      return await runSteps({
        req,
        store,
        session,
        trainStep: (step) => {
          batch.fill(step);
          // A fresh mask each step, reproducible from (seed, step): tfjs reuses one mask per seed.
          dropouts.forEach((layer, li) => {
            (layer as any).seed = hash32(config.seed, step, li);
          });
          return optimizerStep(session.optimizer, variables, lossOf, batch);
        },
        save: async () => {
          await this.save(req, store, session);
        },
        onProgress,
        isCancelled,
        faults: this.deps.faults,
        log: this.deps.log,
        backend: this.deps.backend.name,
        started,
      });
    } catch (err) {
      // Memory no longer matches any checkpoint we can vouch for.
      this.dropSession();
      throw err;
    }
  }

  async evaluate(req: EvaluateRequest): Promise<EvaluateResult> {
    if (isSavedModelSpec(req.config.model)) return this.graphRoute.evaluate(req);
    const started = Date.now();
    const store = this.deps.openStore(req.runUri);
    const data = await this.dataset(req.config.data.eval);
    const s = this.session;
    let model: tf.LayersModel;
    let owned = false;
    if (s && s.runUri === req.runUri && s.step === req.step && s.committedSha256) {
      model = s.model;
    } else {
      const read = await readCheckpoint(store, req.step);
      if (!read.ok) {
        throw new Error(`Cannot evaluate ${store.uriOf(checkpointKey(req.step))}: ${read.reason}`);
      }
      model = await deserializeModel(read.checkpoint.objects.get('model.json')!, read.checkpoint.objects.get('weights.bin')!);
      owned = true;
    }
    try {
      const metrics = evaluateModel(model, data, req.config.loss);
      return { step: req.step, metrics, examples: data.size, seconds: (Date.now() - started) / 1000 };
    } finally {
      if (owned) model.dispose();
    }
  }

  /** Evaluates exported models (champion and challenger) on the same dataset, one after the other. */
  async evaluateModels(req: EvaluateModelsRequest): Promise<EvaluateModelsResult> {
    const started = Date.now();
    const data = await this.dataset(req.data);
    const metrics: Array<Record<string, number>> = [];
    for (const uri of req.modelUris) {
      const store = this.deps.openStore(uri.replace(/\/model\.json$/, ''));
      const [modelJson, weights] = await Promise.all([store.get('model.json'), store.get('weights.bin')]);
      if (!modelJson || !weights) throw new NonRetryableTrainingError(`Cannot evaluate ${uri}: no model.json and weights.bin there`);
      const model = await deserializeModel(modelJson, weights);
      try {
        metrics.push(evaluateModel(model, data, req.loss));
      } finally {
        model.dispose();
      }
    }
    return { metrics, examples: data.size, seconds: (Date.now() - started) / 1000 };
  }
}

/** Mean loss and (for classification) accuracy over a whole dataset, in batches. */
export function evaluateModel(model: tf.LayersModel, data: Dataset, loss: LossName, batchSize = 512): Record<string, number> {
  const xw = product(data.xShape);
  const yw = product(data.yShape);
  const lossFn = lossFunction(loss);
  const classification = loss !== 'meanSquaredError';
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < data.size; start += batchSize) {
    const n = Math.min(batchSize, data.size - start);
    const [l, c] = tf.tidy(() => {
      const x = tf.tensor(data.x.subarray(start * xw, (start + n) * xw), [n, ...data.xShape]);
      const y = tf.tensor(data.y.subarray(start * yw, (start + n) * yw), [n, ...data.yShape]);
      // One forward pass per batch: predict() would split it again into batches of 32.
      const p = model.apply(x, { training: false }) as tf.Tensor;
      const batchLoss = tf.sum(lossFn(y, p));
      const hits = classification
        ? tf.sum(tf.cast(tf.equal(tf.argMax(p, -1), tf.argMax(y, -1)), 'float32'))
        : tf.scalar(0);
      return [batchLoss.dataSync()[0]!, hits.dataSync()[0]!];
    });
    lossSum += l;
    correct += c;
  }
  const metrics: Record<string, number> = { val_loss: lossSum / data.size };
  if (classification) metrics.val_accuracy = correct / data.size;
  return metrics;
}
