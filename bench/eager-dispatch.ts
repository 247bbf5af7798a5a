/**
 * The eager step's dispatch, old path against new, side by side in one process: TensorFlow calls
 * per step (tfjs kernels, and the native ops and tensor handles tfjs-node hands to TensorFlow) and
 * steps/s of the bare loop (bench/routes/tfjs-bare.ts's loop), with the two paths alternated in
 * rounds so that load on a shared machine weighs on both alike.
 *
 *   npx tsx bench/eager-dispatch.ts [--models mlp,cnn] [--batches 128,1024] [--rounds 3] [--seconds 2]
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { BatchAssembler } from '../src/training/batch';
import { backendPreferenceFromEnv, selectBackend } from '../src/training/backend';
import { builtInDatasets } from '../src/training/datasets';
import type { Dataset } from '../src/training/dataset';
import { lossFunction, optimizerStep, trainingLoss } from '../src/training/eager/step';
import { builtInModels } from '../src/training/models';
import type { BenchModel } from './route';
import { LEARNING_RATE, modelSpec, SEED } from './models';

type Mode = 'old' | 'new';

interface Loop {
  step(step: number): tf.Scalar;
}

async function makeLoop(model: BenchModel, batchSize: number, train: Dataset, mode: Mode): Promise<Loop> {
  process.env.DT_EAGER_FUSED = mode === 'old' ? '0' : '1';
  const m = await builtInModels().build(modelSpec(model), { inputShape: train.xShape, outputUnits: 10, seed: SEED });
  const optimizer = tf.train.adam(LEARNING_RATE);
  const variables = m.trainableWeights.map((w) => w.read() as tf.Variable);
  const lossOf = trainingLoss(m, 'categoricalCrossentropy', lossFunction('categoricalCrossentropy'));
  const batch = new BatchAssembler(train, batchSize, SEED);
  return {
    step(step) {
      batch.fill(step);
      return optimizerStep(optimizer, variables, lossOf, batch);
    },
  };
}

/**
 * Counts what one step hands to TensorFlow: tfjs kernels (tf.profile, nested ones included), the
 * native ops tfjs-node executes, and the tensors made from JS values (each one a tensor handle
 * created in TensorFlow).
 */
async function countCalls(loop: Loop, step: number): Promise<{ kernels: number; nativeOps: number; uploads: number }> {
  const backend = tf.backend() as unknown as Record<string, (...a: unknown[]) => unknown>;
  const counts = { nativeOps: 0, uploads: 0 };
  const patched = [
    ['executeSingleOutput', 'nativeOps'],
    ['executeMultipleOutputs', 'nativeOps'],
    ['write', 'uploads'],
  ] as const;
  const hasNative = typeof backend.executeSingleOutput === 'function';
  for (const [method, counter] of patched) {
    const original = backend[method];
    if (!original) continue;
    backend[method] = (...a: unknown[]) => {
      counts[counter]++;
      return original.apply(backend, a);
    };
  }
  try {
    const info = await tf.profile(() => loop.step(step).dispose());
    return { kernels: info.kernels.length, nativeOps: hasNative ? counts.nativeOps : NaN, uploads: counts.uploads };
  } finally {
    for (const [method] of patched) delete backend[method];
  }
}

function timeSteps(loop: Loop, from: number, seconds: number): { steps: number; ms: number } {
  const started = process.hrtime.bigint();
  let last: tf.Scalar | undefined;
  let step = from;
  let ms = 0;
  while (ms < seconds * 1000) {
    last?.dispose();
    last = loop.step(step++);
    if ((step - from) % 4 === 0) {
      last.dataSync();
      ms = Number(process.hrtime.bigint() - started) / 1e6;
    }
  }
  last!.dataSync();
  last!.dispose();
  return { steps: step - from, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

async function main(): Promise<void> {
  const arg = (flag: string, fallback: string): string => {
    const i = process.argv.indexOf(flag);
    return i >= 0 ? process.argv[i + 1]! : fallback;
  };
  const models = arg('--models', 'mlp,cnn').split(',') as BenchModel[];
  const batches = arg('--batches', '128,1024').split(',').map(Number);
  const rounds = Number(arg('--rounds', '3'));
  const seconds = Number(arg('--seconds', '2'));
  const backend = await selectBackend(backendPreferenceFromEnv());
  const train = await builtInDatasets().load({ name: 'mnist', split: 'train' });
  console.log(`backend ${backend.name}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log('| case | kernels old → new | native ops old → new | uploads old → new | steps/s old | steps/s new | new/old |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const model of models) {
    for (const batchSize of batches) {
      const loops = { old: await makeLoop(model, batchSize, train, 'old'), new: await makeLoop(model, batchSize, train, 'new') };
      const total = { old: { steps: 0, ms: 0 }, new: { steps: 0, ms: 0 } };
      // Warm-up first: the first step also creates Adam's slots.
      for (const mode of ['old', 'new'] as const) timeSteps(loops[mode], 1, 0.3);
      const calls = { old: await countCalls(loops.old, 500), new: await countCalls(loops.new, 500) };
      for (let r = 0; r < rounds; r++) {
        for (const mode of (r % 2 ? ['new', 'old'] : ['old', 'new']) as Mode[]) {
          const t = timeSteps(loops[mode], 1000 + r * 1000, seconds);
          total[mode].steps += t.steps;
          total[mode].ms += t.ms;
        }
      }
      const sps = (m: Mode): number => (total[m].steps / total[m].ms) * 1000;
      const c = (k: keyof (typeof calls)['old']): string => `${calls.old[k]} → ${calls.new[k]}`;
      console.log(
        `| ${model}/${batchSize} | ${c('kernels')} | ${c('nativeOps')} | ${c('uploads')} | ${sps('old').toFixed(1)} | ${sps('new').toFixed(1)} | ${(sps('new') / sps('old')).toFixed(2)} |`,
      );
    }
  }
  console.log(`load average after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
