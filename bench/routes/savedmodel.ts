/**
 * The bare graph route: a trainable SavedModel's `train_step` signature called once per step
 * through tfjs-node's SavedModel runner (src/training/savedmodel/), in this process, with the
 * same batches as the engine (BatchSampler over the MNIST training digits). No trainer process, no
 * checkpoints, no Temporal: the counterpart of a bare eager tfjs loop.
 *
 * The SavedModels (MLP 784-256-256-10 and the small CNN, Adam 1e-3, categorical cross-entropy) are
 * exported at bench time into .cache/bench-savedmodels/ with tools/export_trainable_savedmodel.py,
 * which needs Python with TensorFlow >= 2.16 and Keras 3 (bench/python.ts). Without it the route
 * reports itself unavailable.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type * as TfNodeModule from '@tensorflow/tfjs-node';
import { builtInDatasets } from '../../src/training/dataset-registry';
import { BatchAssembler } from '../../src/training/batch';
import { TrainableSavedModel } from '../../src/training/savedmodel/graph';
import { readMetadata } from '../../src/training/savedmodel/metadata';
import { validateTrainableSavedModel } from '../../src/training/savedmodel/signatures';
import { LEARNING_RATE, SEED } from '../models';
import { referencePython } from '../python';
import type { BenchModel, BenchRoute } from '../route';

const ROOT = path.resolve(__dirname, '../..');
const CACHE = path.join(ROOT, '.cache', 'bench-savedmodels');
const WARMUP_STEPS = 10;

const FACTORY: Record<BenchModel, { fn: string; kwargs: Record<string, unknown> }> = {
  mlp: { fn: 'tools.example_models:mlp', kwargs: { input_dim: 784, hidden: [256, 256], classes: 10 } },
  cnn: { fn: 'tools.example_models:cnn', kwargs: { input_dim: 784, image: [28, 28, 1], filters: [8, 16], dense: 64, classes: 10 } },
};

let python: string | undefined;
function findPython(): string {
  const found = referencePython();
  if ('reason' in found) throw new Error(`cannot export the SavedModels: ${found.reason}`);
  return found.python;
}

/** Exports (once, cached) the bench SavedModel for `model`; returns its directory. */
export function exported(model: BenchModel): string {
  const f = FACTORY[model];
  const key = `${model}-${Buffer.from(JSON.stringify(f)).toString('base64url').slice(0, 16)}`;
  const dir = path.join(CACHE, key);
  if (fs.existsSync(path.join(dir, 'durable-train.json'))) return dir;
  python ??= findPython();
  fs.mkdirSync(CACHE, { recursive: true });
  execFileSync(
    python,
    [
      'tools/export_trainable_savedmodel.py', '--model', f.fn, '--factory-kwargs', JSON.stringify(f.kwargs), '--out', dir,
      '--optimizer', 'adam', '--learning-rate', String(LEARNING_RATE), '--loss', 'categorical_crossentropy', '--seed', String(SEED),
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' }, timeout: 600_000 },
  );
  return dir;
}

type TfNode = typeof TfNodeModule;
function tfNode(): TfNode {
  // Before TensorFlow loads: keep its C++ info logs ("Reading SavedModel from ...") out of the table.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('@tensorflow/tfjs-node') as TfNode;
}

const route: BenchRoute = {
  name: 'graph: trainable SavedModel train_step (bare, tfjs-node)',
  async available() {
    try {
      tfNode();
    } catch (err) {
      return `@tensorflow/tfjs-node is not usable: ${(err as Error).message.split('\n')[0]}`;
    }
    try {
      if (!fs.existsSync(path.join(CACHE)) || fs.readdirSync(CACHE).length < 2) python ??= findPython();
    } catch (err) {
      return (err as Error).message;
    }
    return true;
  },
  async measure({ model, batchSize, steps }) {
    const tfn = tfNode();
    const previous = tf.getBackend();
    await tf.setBackend('tensorflow');
    const dir = exported(model);
    const uri = `file://${dir}`;
    const { metadata, sha256 } = readMetadata(dir, uri);
    const data = await builtInDatasets().load({ name: 'mnist', split: 'train' });
    await validateTrainableSavedModel(tfn, dir, uri, metadata, { train: data });
    const graph = await TrainableSavedModel.load(tfn, uri, dir, metadata, sha256);
    try {
      graph.setLearningRate(LEARNING_RATE);
      const batch = new BatchAssembler(data, batchSize, SEED);
      let last = NaN;
      const run = async (from: number, count: number): Promise<void> => {
        for (let step = from; step < from + count; step++) {
          batch.fill(step + 1);
          const x = tf.tensor(batch.x, batch.xShape);
          const y = tf.tensor(batch.y, batch.yShape);
          const loss = graph.trainStep(x, y);
          x.dispose();
          y.dispose();
          if (step === from + count - 1) last = (await loss.data())[0]!;
          loss.dispose();
        }
      };
      await run(0, WARMUP_STEPS);
      const started = process.hrtime.bigint();
      await run(WARMUP_STEPS, steps);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (!Number.isFinite(last)) throw new Error(`loss became ${last}`);
      return {
        msPerStep: ms / steps,
        note: 'tfjs-node SavedModel runner in the bench process; includes batch assembly; SavedModels exported by tools/export_trainable_savedmodel.py into .cache/bench-savedmodels',
      };
    } finally {
      graph.dispose();
      await tf.setBackend(previous);
    }
  },
};
export default route;
