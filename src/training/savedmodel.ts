/**
 * The graph route: models of kind `{ "kind": "savedmodel", "uri": ... }`, "trainable SavedModels"
 * exported from Keras by tools/export_trainable_savedmodel.py. One whole training step (forward,
 * gradients, optimizer update) is one call of the `train_step` signature through tfjs-node's
 * SavedModel runner, so it runs as a TensorFlow graph where TensorFlow places it (CPU here, the
 * GPU with tfjs-node-gpu).
 *
 * Endpoints and sessions: tfjs-node's loadSavedModel(dir, tags, signature) returns one handle per
 * signature, but it keys the native TF session by (dir, tags): every handle loaded for the same
 * directory while another is alive shares that ONE session, hence one set of variables. So we load
 * each endpoint once (train_step, eval_step, get_state, set_state, set_learning_rate), and they all
 * read and write the same model and optimizer variables, which persist between calls. A fresh
 * start disposes every handle (the session goes) and loads again, which restores the exported
 * initial values.
 *
 * State: get_state returns every model variable and every optimizer variable as the raw bytes of
 * the variables, bit-cast to int32 words (tfjs has no int64: the optimizer's int64 `iterations`
 * is two words, exactly). Those bytes go into the checkpoint as weights.bin and optimizer.bin
 * beside state.json, through the same store, format and manifest as tfjs-layers runs; set_state
 * puts them back bit for bit. The batch order and the epoch-loss sum work exactly as in the eager
 * route, so a resumed run's state bytes equal an uninterrupted run's.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type * as TfNodeModule from '@tensorflow/tfjs-node';
import type { ModelSpec, TrainConfig } from '../config/train-config';
import {
  loadLatestCheckpoint,
  readCheckpoint,
  sha256,
  type LoadedCheckpoint,
} from '../checkpoints/format';
import { checkpointKey } from '../checkpoints/layout';
import type { CheckpointStore } from '../checkpoints/store';
import type { EngineDeps } from './engine';
import { product, type Dataset } from './datasets';
import {
  NonRetryableTrainingError,
  type EvaluateRequest,
  type EvaluateResult,
  type Progress,
  type TrainRequest,
  type TrainResult,
} from './protocol';
import { commitCheckpoint, runSteps, sessionIsNewest } from './step-loop';
import { BatchAssembler } from './train-step';

export const SAVEDMODEL_FORMAT = 'durable-train/trainable-savedmodel@1';
export const METADATA_FILE = 'durable-train.json';
export const REQUIRED_ENDPOINTS = ['train_step', 'eval_step', 'get_state', 'set_state', 'set_learning_rate'] as const;
type Endpoint = (typeof REQUIRED_ENDPOINTS)[number];
const TAGS = ['serve'];
const EXPORTER = 'tools/export_trainable_savedmodel.py';

export interface SavedModelSpec {
  readonly kind: 'savedmodel';
  /** `file:///abs/dir` or `gs://bucket/prefix` of the SavedModel directory (saved_model.pb, variables/, durable-train.json). */
  readonly uri: string;
}

export function isSavedModelSpec(spec: ModelSpec | undefined): spec is ModelSpec & SavedModelSpec {
  return !!spec && (spec as { kind?: unknown }).kind === 'savedmodel';
}

export interface StateVariable {
  readonly name: string;
  readonly shape: number[];
  readonly dtype: string;
  readonly offset: number;
  readonly words: number;
}

/** durable-train.json, written by the exporter beside saved_model.pb. */
export interface SavedModelMetadata {
  readonly format: typeof SAVEDMODEL_FORMAT;
  readonly endpoints: string[];
  readonly inputs: { readonly x: { shape: (number | null)[] }; readonly y: { shape: (number | null)[] } };
  readonly loss: string;
  /** Names of eval_step's outputs (per-batch sums), `loss` first. */
  readonly metrics: string[];
  readonly optimizer: {
    readonly class: string;
    readonly config: Record<string, unknown>;
    readonly learningRateVariable: string;
    /** The optimizer's step counter (int64 in Keras: two words of the state). */
    readonly iterationsVariable?: string;
  };
  readonly state: {
    readonly model: { readonly words: number; readonly variables: StateVariable[] };
    readonly optimizer: { readonly words: number; readonly variables: StateVariable[] };
  };
  readonly exportedWith?: Record<string, string>;
}

/** state.json of a savedmodel checkpoint (the fields the two routes share have the same names and meaning). */
export interface SavedModelTrainingState {
  readonly format: 'durable-train/state@1';
  readonly step: number;
  readonly epoch: number;
  readonly learningRate: number;
  readonly model: { readonly kind: 'savedmodel'; readonly uri: string; readonly metadataSha256: string };
  readonly optimizer: { readonly class: string; readonly iterations: number; readonly learningRateVariable: string };
  /** weights.bin holds model.variables, optimizer.bin optimizer.variables, as described here. */
  readonly stateLayout: { readonly encoding: 'raw-bytes-as-int32-words@1'; readonly modelWords: number; readonly optimizerWords: number };
  readonly dataCursor: { readonly scheme: 'permutation-stream@1'; readonly seed: number; readonly batchSize: number; readonly step: number };
  /** Randomness inside the graph (dropout) comes from Keras seed-generator variables, which are in weights.bin. */
  readonly rng: { readonly scheme: 'in-graph-seed-variables@1'; readonly seed: number };
  readonly epochLoss: { readonly sum: number; readonly steps: number };
  readonly backend: string;
  readonly config: TrainConfig;
}

type TfNode = typeof TfNodeModule;
type Handle = Awaited<ReturnType<TfNode['node']['loadSavedModel']>>;
type SignatureDefs = Awaited<ReturnType<TfNode['node']['getMetaGraphsFromSavedModel']>>[number]['signatureDefs'];

function fail(message: string): never {
  throw new NonRetryableTrainingError(message);
}

/** Dims of a signature tensor (-1 = any); undefined for unknown rank. */
function dims(info: { shape?: unknown }): number[] {
  const shape = (info.shape ?? []) as Array<{ getSize?: () => number; size?: number } | number>;
  return shape.map((d) => (typeof d === 'number' ? d : typeof d.getSize === 'function' ? d.getSize() : Number(d.size ?? -1)));
}

function shapeFits(sig: number[], example: readonly number[]): boolean {
  return sig.length === example.length + 1 && example.every((n, i) => sig[i + 1] === -1 || sig[i + 1] === n);
}

const fmt = (shape: readonly number[]): string => `[${shape.map((d) => (d === -1 ? 'None' : d)).join(', ')}]`;

/** The tfjs-node module of the active backend (tfjs-node or tfjs-node-gpu), or a clear error. */
function tfNode(deps: Pick<EngineDeps, 'backend'>): TfNode {
  if (deps.backend.name !== 'tensorflow') {
    fail(
      `Models of kind \`savedmodel\` run through TensorFlow's SavedModel runner, which needs the tensorflow backend ` +
        `(@tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu); this worker runs on \`${deps.backend.name}\``,
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(deps.backend.package) as TfNode;
}

/** A local directory holding the SavedModel: file:// as is, other stores mirrored once into a cache. */
export async function localSavedModelDir(uri: string, openStore: EngineDeps['openStore']): Promise<string> {
  if (uri.startsWith('file://')) return fileURLToPath(uri).replace(/\/+$/, '');
  const dir = path.join(os.tmpdir(), 'durable-train-savedmodels', createHash('sha256').update(uri).digest('hex').slice(0, 24));
  const done = path.join(dir, '.complete');
  if (fs.existsSync(done)) return dir;
  const store = openStore(uri);
  const keys = await store.list('');
  if (!keys.includes('saved_model.pb')) fail(`No SavedModel at ${uri}: there is no saved_model.pb`);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  for (const key of keys) {
    const data = await store.get(key);
    if (!data) continue;
    fs.mkdirSync(path.dirname(path.join(tmp, key)), { recursive: true });
    fs.writeFileSync(path.join(tmp, key), data);
  }
  fs.writeFileSync(path.join(tmp, '.complete'), uri);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return dir;
}

export function readMetadata(dir: string, uri: string): { metadata: SavedModelMetadata; sha256: string } {
  const file = path.join(dir, METADATA_FILE);
  if (!fs.existsSync(path.join(dir, 'saved_model.pb'))) fail(`No SavedModel at ${uri}: there is no saved_model.pb`);
  if (!fs.existsSync(file)) {
    fail(`The SavedModel at ${uri} has no ${METADATA_FILE}: it is not a trainable SavedModel (export it with ${EXPORTER})`);
  }
  const bytes = fs.readFileSync(file);
  let metadata: SavedModelMetadata;
  try {
    metadata = JSON.parse(bytes.toString('utf8')) as SavedModelMetadata;
  } catch (err) {
    fail(`${METADATA_FILE} of the SavedModel at ${uri} is not valid JSON: ${(err as Error).message}`);
  }
  if (metadata.format !== SAVEDMODEL_FORMAT) {
    fail(`${METADATA_FILE} of the SavedModel at ${uri} has format ${JSON.stringify(metadata.format)}, expected ${SAVEDMODEL_FORMAT}`);
  }
  return { metadata, sha256: sha256(bytes) };
}

/**
 * Checks a trainable SavedModel against its metadata and the run's datasets, before anything is
 * trained: every endpoint is there with the inputs and outputs we call it with, x and y fit the
 * dataset, the loss is a scalar, the state vectors have the metadata's sizes. Throws
 * NonRetryableTrainingError naming the first problem.
 */
export async function validateTrainableSavedModel(
  tfn: TfNode,
  dir: string,
  uri: string,
  metadata: SavedModelMetadata,
  data: { readonly train: Pick<Dataset, 'xShape' | 'yShape'>; readonly eval?: Pick<Dataset, 'xShape' | 'yShape'> },
): Promise<SignatureDefs> {
  let metaGraphs: Awaited<ReturnType<TfNode['node']['getMetaGraphsFromSavedModel']>>;
  try {
    metaGraphs = await tfn.node.getMetaGraphsFromSavedModel(dir);
  } catch (err) {
    fail(`Cannot read the SavedModel at ${uri}: ${(err as Error).message}`);
  }
  const graph = metaGraphs.find((m) => m.tags.length === 1 && m.tags[0] === 'serve');
  if (!graph) fail(`The SavedModel at ${uri} has no meta graph tagged \`serve\` (tags: ${metaGraphs.map((m) => m.tags.join(',')).join('; ')})`);
  const sigs = graph.signatureDefs;
  const have = Object.keys(sigs).sort();
  for (const name of REQUIRED_ENDPOINTS) {
    if (!sigs[name]) {
      fail(`The SavedModel at ${uri} has no \`${name}\` endpoint (it has: ${have.join(', ') || 'none'}); a trainable SavedModel needs ${REQUIRED_ENDPOINTS.join(', ')}: export it with ${EXPORTER}`);
    }
  }
  const input = (ep: Endpoint, name: string) => {
    const info = sigs[ep]!.inputs[name];
    if (!info) fail(`Endpoint \`${ep}\` of the SavedModel at ${uri} has no input \`${name}\` (inputs: ${Object.keys(sigs[ep]!.inputs).join(', ')})`);
    return info;
  };
  const output = (ep: Endpoint, name: string) => {
    const info = sigs[ep]!.outputs[name];
    if (!info) fail(`Endpoint \`${ep}\` of the SavedModel at ${uri} has no output \`${name}\` (outputs: ${Object.keys(sigs[ep]!.outputs).join(', ')})`);
    return info;
  };
  const sets: Array<[string, Pick<Dataset, 'xShape' | 'yShape'> | undefined]> = [['data.train', data.train], ['data.eval', data.eval]];
  for (const ep of ['train_step', 'eval_step'] as const) {
    const names = Object.keys(sigs[ep]!.inputs).sort();
    if (names.join() !== 'x,y') fail(`Endpoint \`${ep}\` of the SavedModel at ${uri} must take inputs x and y, it takes ${names.join(', ')}`);
    for (const [field, d] of sets) {
      if (!d) continue;
      const x = dims(input(ep, 'x'));
      const y = dims(input(ep, 'y'));
      if (!shapeFits(x, d.xShape)) {
        fail(`Input x of \`${ep}\` in the SavedModel at ${uri} has shape ${fmt(x)}, but ${field} has examples of shape ${fmt(d.xShape as number[])} (batches ${fmt([-1, ...d.xShape])})`);
      }
      if (!shapeFits(y, d.yShape)) {
        fail(`Input y of \`${ep}\` in the SavedModel at ${uri} has shape ${fmt(y)}, but ${field} has targets of shape ${fmt(d.yShape as number[])} (batches ${fmt([-1, ...d.yShape])})`);
      }
    }
    if (input(ep, 'x').dtype !== 'float32' || input(ep, 'y').dtype !== 'float32') fail(`Inputs x and y of \`${ep}\` in the SavedModel at ${uri} must be float32`);
  }
  const loss = output('train_step', 'loss');
  const lossDims = dims(loss);
  if (lossDims.length !== 0 || loss.dtype !== 'float32') {
    fail(`Output loss of \`train_step\` in the SavedModel at ${uri} must be a float32 scalar (the batch's mean loss), it is ${loss.dtype} of shape ${fmt(lossDims)}`);
  }
  for (const m of metadata.metrics) {
    const out = output('eval_step', m);
    if (dims(out).length !== 0) fail(`Output ${m} of \`eval_step\` in the SavedModel at ${uri} must be a scalar (a per-batch sum), it has shape ${fmt(dims(out))}`);
  }
  for (const part of ['model', 'optimizer'] as const) {
    const words = metadata.state[part].words;
    const got = output('get_state', part);
    const put = input('set_state', part);
    for (const [what, info] of [['output of get_state', got], ['input of set_state', put]] as const) {
      const d = dims(info);
      if (info.dtype !== 'int32' || d.length !== 1 || d[0] !== words) {
        fail(`The ${part} ${what} in the SavedModel at ${uri} is ${info.dtype} ${fmt(d)}, but ${METADATA_FILE} describes int32 [${words}]: re-export it with ${EXPORTER}`);
      }
    }
  }
  const lr = input('set_learning_rate', 'learning_rate');
  if (dims(lr).length !== 0) fail(`Input learning_rate of \`set_learning_rate\` in the SavedModel at ${uri} must be a scalar`);
  return sigs;
}

/** A loaded trainable SavedModel: one handle per endpoint, all on one TF session (one set of variables). */
export class TrainableSavedModel {
  private constructor(
    readonly uri: string,
    readonly dir: string,
    readonly metadata: SavedModelMetadata,
    readonly metadataSha256: string,
    private readonly handles: Record<Endpoint, Handle>,
  ) {}

  static async load(tfn: TfNode, uri: string, dir: string, metadata: SavedModelMetadata, metadataSha256: string): Promise<TrainableSavedModel> {
    const handles: Partial<Record<Endpoint, Handle>> = {};
    try {
      for (const ep of REQUIRED_ENDPOINTS) handles[ep] = await tfn.node.loadSavedModel(dir, TAGS, ep);
    } catch (err) {
      Object.values(handles).forEach((h) => h.dispose());
      fail(`Cannot load the SavedModel at ${uri}: ${(err as Error).message}`);
    }
    const h = handles as Record<Endpoint, Handle>;
    const sessions = new Set(Object.values(h).map((x) => (x as unknown as { sessionId: number }).sessionId));
    if (sessions.size !== 1) {
      Object.values(h).forEach((x) => x.dispose());
      throw new Error(`tfjs-node loaded the endpoints of ${uri} into ${sessions.size} sessions; they must share one (one set of variables)`);
    }
    return new TrainableSavedModel(uri, dir, metadata, metadataSha256, h);
  }

  private run(ep: Endpoint, inputs: tf.NamedTensorMap): tf.NamedTensorMap {
    return this.handles[ep].predict(inputs) as tf.NamedTensorMap;
  }

  /** One optimizer step; returns the batch's loss (the caller owns it). */
  trainStep(x: tf.Tensor, y: tf.Tensor): tf.Scalar {
    const out = this.run('train_step', { x, y });
    for (const [k, t] of Object.entries(out)) if (k !== 'loss') t.dispose();
    const loss = out.loss!;
    if (loss.rank !== 0) {
      loss.dispose();
      fail(`train_step of the SavedModel at ${this.uri} returned a loss of shape [${loss.shape}]; it must be a scalar`);
    }
    return loss as tf.Scalar;
  }

  /** eval_step's per-batch sums, read back. */
  async evalStep(x: tf.Tensor, y: tf.Tensor): Promise<Record<string, number>> {
    const out = this.run('eval_step', { x, y });
    const values: Record<string, number> = {};
    for (const [k, t] of Object.entries(out)) {
      values[k] = (await t.data())[0]!;
      t.dispose();
    }
    return values;
  }

  /** Every variable's raw bytes: [model, optimizer]. */
  async getState(): Promise<{ model: Buffer; optimizer: Buffer }> {
    const out = this.run('get_state', {});
    try {
      const bytes = async (t: tf.Tensor): Promise<Buffer> => {
        const d = (await t.data()) as Int32Array;
        return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
      };
      return { model: await bytes(out.model!), optimizer: await bytes(out.optimizer!) };
    } finally {
      Object.values(out).forEach((t) => t.dispose());
    }
  }

  /** Puts every variable back, bit for bit; returns the optimizer's iterations. */
  setState(model: Buffer, optimizer: Buffer): number {
    const words = (buf: Buffer, part: 'model' | 'optimizer'): tf.Tensor => {
      const n = this.metadata.state[part].words;
      if (buf.length !== n * 4) fail(`Checkpoint ${part} state has ${buf.length} bytes, the SavedModel at ${this.uri} needs ${n * 4}: it was written for another model`);
      const aligned = new Int32Array(n);
      new Uint8Array(aligned.buffer).set(buf);
      return tf.tensor1d(aligned, 'int32');
    };
    const m = words(model, 'model');
    const o = words(optimizer, 'optimizer');
    try {
      const out = this.run('set_state', { model: m, optimizer: o });
      const iterations = out.iterations ? out.iterations.dataSync()[0]! : NaN;
      Object.values(out).forEach((t) => t.dispose());
      return iterations;
    } finally {
      m.dispose();
      o.dispose();
    }
  }

  setLearningRate(learningRate: number): void {
    const lr = tf.scalar(learningRate, 'float32');
    try {
      const out = this.run('set_learning_rate', { learning_rate: lr });
      Object.values(out).forEach((t) => t.dispose());
    } finally {
      lr.dispose();
    }
  }

  /** The optimizer's step counter, read from the optimizer state bytes (int64 = two words). */
  iterationsOf(optimizer: Buffer): number {
    const name = this.metadata.optimizer.iterationsVariable;
    const v = this.metadata.state.optimizer.variables.find((x) => (name ? x.name === name : /(^|\/)iterations?$/.test(x.name)));
    if (!v) return NaN;
    const at = v.offset * 4;
    return v.dtype === 'int64' ? Number(optimizer.readBigInt64LE(at)) : optimizer.readInt32LE(at);
  }

  dispose(): void {
    for (const h of Object.values(this.handles)) {
      try {
        h.dispose();
      } catch {
        // already disposed
      }
    }
  }
}

interface GraphSession {
  readonly runUri: string;
  readonly graph: TrainableSavedModel;
  step: number;
  committedSha256: string | undefined;
  lossSum: tf.Scalar;
  lossSteps: number;
  learningRate: number;
}

/** The engine's graph route: train / evaluate / checkpoint for savedmodel specs. */
export class SavedModelRoute {
  private session: GraphSession | undefined;
  /** The loaded SavedModel, kept between activities and runs of the same URI. */
  private loaded: TrainableSavedModel | undefined;

  constructor(private readonly deps: EngineDeps) {}

  dispose(): void {
    this.dropSession();
    this.loaded?.dispose();
    this.loaded = undefined;
  }

  private dropSession(): void {
    if (!this.session) return;
    this.session.lossSum.dispose();
    this.session = undefined;
  }

  /**
   * The SavedModel for `spec`, validated against the datasets. `fresh`: with the exported initial
   * values (the session is dropped and loaded again, since the variables live in it).
   */
  private async graph(config: TrainConfig, data: { train: Dataset; eval?: Dataset }, fresh: boolean): Promise<TrainableSavedModel> {
    const spec = config.model as SavedModelSpec;
    const tfn = tfNode(this.deps);
    const dir = await localSavedModelDir(spec.uri, this.deps.openStore);
    const { metadata, sha256: metaSha } = readMetadata(dir, spec.uri);
    await validateTrainableSavedModel(tfn, dir, spec.uri, metadata, data);
    if (this.loaded && (fresh || this.loaded.uri !== spec.uri || this.loaded.metadataSha256 !== metaSha)) {
      this.dropSession();
      this.loaded.dispose();
      this.loaded = undefined;
    }
    this.loaded ??= await TrainableSavedModel.load(tfn, spec.uri, dir, metadata, metaSha);
    return this.loaded;
  }

  private async restore(req: TrainRequest, ckpt: LoadedCheckpoint, train: Dataset): Promise<GraphSession> {
    const state = JSON.parse(ckpt.objects.get('state.json')!.toString('utf8')) as SavedModelTrainingState;
    if (state.model?.kind !== 'savedmodel') {
      throw new NonRetryableTrainingError(`Checkpoint ${ckpt.uri} was not written by a savedmodel run; it cannot resume one`);
    }
    const graph = await this.graph(req.config, { train }, false);
    if (state.model.metadataSha256 !== graph.metadataSha256) {
      this.deps.log(`[durable-train] checkpoint ${ckpt.uri} was written with a different ${METADATA_FILE}; restoring its state anyway (the sizes are checked)`);
    }
    graph.setState(ckpt.objects.get('weights.bin')!, ckpt.objects.get('optimizer.bin')!);
    graph.setLearningRate(state.learningRate);
    return {
      runUri: req.runUri,
      graph,
      step: state.step,
      committedSha256: ckpt.manifestSha256,
      lossSum: tf.scalar(state.epochLoss.sum),
      lossSteps: state.epochLoss.steps,
      learningRate: state.learningRate,
    };
  }

  private async resume(req: TrainRequest, store: CheckpointStore, train: Dataset): Promise<GraphSession> {
    const s = this.session;
    if (s && this.loaded === s.graph && (await sessionIsNewest(store, s, req.runUri, req.targetStep))) return s;
    this.dropSession();
    const ckpt = await loadLatestCheckpoint(store, req.targetStep, this.deps.log);
    if (ckpt) {
      this.session = await this.restore(req, ckpt, train);
    } else {
      if (req.config.warmStartFrom) {
        throw new NonRetryableTrainingError('warmStartFrom is not supported for models of kind `savedmodel` yet');
      }
      const graph = await this.graph(req.config, { train }, true);
      graph.setLearningRate(req.learningRate);
      this.session = {
        runUri: req.runUri,
        graph,
        step: 0,
        committedSha256: undefined,
        lossSum: tf.scalar(0),
        lossSteps: 0,
        learningRate: req.learningRate,
      };
    }
    return this.session;
  }

  private async save(req: TrainRequest, store: CheckpointStore, s: GraphSession): Promise<void> {
    const { config } = req;
    const { metadata } = s.graph;
    const { model, optimizer } = await s.graph.getState();
    const state: SavedModelTrainingState = {
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
    // model.json describes weights.bin (finalizeRun exports the pair as the run's model).
    const modelJson = {
      format: 'durable-train/savedmodel-weights@1',
      savedModel: s.graph.uri,
      encoding: 'raw little-endian bytes of each variable, in this order',
      variables: metadata.state.model.variables,
    };
    const objects = new Map<string, Buffer>([
      ['model.json', Buffer.from(JSON.stringify(modelJson))],
      ['weights.bin', model],
      ['optimizer.bin', optimizer],
      ['state.json', Buffer.from(JSON.stringify(state, null, 1))],
    ]);
    await commitCheckpoint(store, s, objects, this.deps.faults, this.deps.log);
  }

  async train(req: TrainRequest, onProgress: (p: Progress) => void, isCancelled: () => boolean): Promise<TrainResult> {
    const started = Date.now();
    const { config } = req;
    const store = this.deps.openStore(req.runUri);
    const train = await this.deps.datasets.load(config.data.train);
    let s: GraphSession;
    try {
      s = await this.resume(req, store, train);
    } catch (err) {
      this.dropSession();
      throw err;
    }
    try {
      if (s.learningRate !== req.learningRate) {
        s.graph.setLearningRate(req.learningRate);
        s.learningRate = req.learningRate;
      }
      const batch = new BatchAssembler(train, config.hyperparameters.batchSize, config.seed);
      const session = s;
      return await runSteps({
        req,
        store,
        session,
        trainStep: (step) => {
          batch.fill(step);
          const x = tf.tensor(batch.x, batch.xShape);
          const y = tf.tensor(batch.y, batch.yShape);
          try {
            return session.graph.trainStep(x, y);
          } finally {
            x.dispose();
            y.dispose();
          }
        },
        save: () => this.save(req, store, session),
        onProgress,
        isCancelled,
        faults: this.deps.faults,
        log: this.deps.log,
        backend: this.deps.backend.name,
        started,
      });
    } catch (err) {
      this.dropSession();
      throw err;
    }
  }

  async evaluate(req: EvaluateRequest): Promise<EvaluateResult> {
    const started = Date.now();
    const store = this.deps.openStore(req.runUri);
    const data = await this.deps.datasets.load(req.config.data.eval);
    const s = this.session;
    let graph: TrainableSavedModel;
    if (s && s.runUri === req.runUri && s.step === req.step && s.committedSha256 && this.loaded === s.graph) {
      graph = s.graph;
    } else {
      // The variables live in the one session: evaluating another checkpoint moves the session to it.
      const read = await readCheckpoint(store, req.step);
      if (!read.ok) throw new Error(`Cannot evaluate ${store.uriOf(checkpointKey(req.step))}: ${read.reason}`);
      const train = await this.deps.datasets.load(req.config.data.train);
      this.dropSession();
      this.session = await this.restore(
        { runUri: req.runUri, config: req.config, targetStep: req.step, learningRate: req.config.hyperparameters.learningRate },
        read.checkpoint,
        train,
      );
      graph = this.session.graph;
    }
    await validateTrainableSavedModel(tfNode(this.deps), graph.dir, graph.uri, graph.metadata, { train: data });
    const metrics = await evaluateGraph(graph, data);
    return { step: req.step, metrics, examples: data.size, seconds: (Date.now() - started) / 1000 };
  }
}

/** `val_<metric>` = sum of eval_step's per-batch sums / examples. */
export async function evaluateGraph(graph: TrainableSavedModel, data: Dataset, batchSize = 512): Promise<Record<string, number>> {
  const xw = product(data.xShape);
  const yw = product(data.yShape);
  const sums: Record<string, number> = {};
  for (let start = 0; start < data.size; start += batchSize) {
    const n = Math.min(batchSize, data.size - start);
    const x = tf.tensor(data.x.subarray(start * xw, (start + n) * xw), [n, ...data.xShape]);
    const y = tf.tensor(data.y.subarray(start * yw, (start + n) * yw), [n, ...data.yShape]);
    try {
      for (const [k, v] of Object.entries(await graph.evalStep(x, y))) sums[k] = (sums[k] ?? 0) + v;
    } finally {
      x.dispose();
      y.dispose();
    }
  }
  const metrics: Record<string, number> = {};
  for (const name of graph.metadata.metrics) metrics[`val_${name}`] = (sums[name] ?? NaN) / data.size;
  return metrics;
}
