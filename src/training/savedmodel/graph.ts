/**
 * A loaded trainable SavedModel. One whole training step (forward, gradients, optimizer update) is
 * one call of the `train_step` signature through tfjs-node's SavedModel runner, so it runs as a
 * TensorFlow graph where TensorFlow places it (CPU here, the GPU with tfjs-node-gpu).
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
 * is two words, exactly); set_state puts them back bit for bit.
 */
import { breathe } from '../liveness';
import * as tf from '@tensorflow/tfjs';
import { evalBatches, type EvalData } from '../eval-data';
import { fail, REQUIRED_ENDPOINTS, TAGS, type Endpoint, type SavedModelMetadata } from './metadata';
import type { Handle, TfNode } from './mirror';
import { checkSavedModelOps, savedModelPbSha256, UnsafeSavedModelError } from './op-check';

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
    // Its ops are checked before TensorFlow sees it (op-check.ts), and what was loaded is what was checked.
    const checked = checkSavedModelOps(dir, uri);
    const handles: Partial<Record<Endpoint, Handle>> = {};
    try {
      for (const ep of REQUIRED_ENDPOINTS) handles[ep] = await tfn.node.loadSavedModel(dir, TAGS, ep);
    } catch (err) {
      Object.values(handles).forEach((h) => h.dispose());
      fail(`Cannot load the SavedModel at ${uri}: ${(err as Error).message}`);
    }
    const h = handles as Record<Endpoint, Handle>;
    if (savedModelPbSha256(dir) !== checked) {
      Object.values(h).forEach((x) => x.dispose());
      throw new UnsafeSavedModelError(`The saved_model.pb of the SavedModel at ${uri} changed while it was being loaded; it is not run`);
    }
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

/** `val_<metric>` = sum of eval_step's per-batch sums / examples (in memory or streamed: the same batches, eval-data.ts). */
export async function evaluateGraph(graph: TrainableSavedModel, data: EvalData, batchSize = 512): Promise<Record<string, number>> {
  const sums: Record<string, number> = {};
  let examples = 0;
  for await (const batch of evalBatches(data, batchSize)) {
    const { n } = batch;
    examples += n;
    const x = tf.tensor(batch.x, [n, ...data.xShape]);
    const y = tf.tensor(batch.y, [n, ...data.yShape]);
    try {
      for (const [k, v] of Object.entries(await graph.evalStep(x, y))) sums[k] = (sums[k] ?? 0) + v;
    } finally {
      x.dispose();
      y.dispose();
    }
    // Keeps the trainer answering (and heartbeating) over a large eval set.
    await breathe();
  }
  const metrics: Record<string, number> = {};
  for (const name of graph.metadata.metrics) {
    const mean = (sums[name] ?? NaN) / examples;
    // `rmse` is exported as per-example squared errors (tools/export_trainable_savedmodel.py): the root of their mean.
    metrics[`val_${name}`] = name === 'rmse' ? Math.sqrt(mean) : mean;
  }
  return metrics;
}
