/**
 * The eager step's dispatch, before and after, side by side in one process: TensorFlow calls per
 * step (tfjs kernels, the native ops tfjs-node executes, the tensors made from JS values) and
 * steps/s of the bare loop (bench/routes/tfjs-bare.ts's loop). "old" is src/training/eager/step.ts
 * as it was at `--reference` (default: the commit before the written-out passes), "new" the working
 * tree's; the two alternate in rounds so that load on a shared machine weighs on both alike.
 *
 *   npx tsx bench/eager-dispatch.ts [--models mlp,cnn] [--batches 128,1024] [--rounds 3] [--seconds 2] [--reference <git rev>]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BatchAssembler } from '../src/training/batch';
import { backendPreferenceFromEnv, selectBackend } from '../src/training/backend';
import { builtInDatasets } from '../src/training/dataset-registry';
import type { Dataset } from '../src/training/dataset';
import * as current from '../src/training/eager/step';
import { builtInModels } from '../src/training/models';
import type { BenchModel } from './route';
import { LEARNING_RATE, modelSpec, SEED } from './models';

type Mode = 'old' | 'new';
type StepCode = Pick<typeof current, 'lossFunction' | 'optimizerStep' | 'trainingLoss'>;

/**
 * step.ts at `rev`, written under the project's .cache/ (never into src/; its imports other than
 * tfjs are type-only, and tfjs resolves from the project's node_modules) and loaded: the same tfjs
 * instance and backend as the new code.
 */
async function referenceStepCode(rev: string | undefined): Promise<{ code: StepCode; rev: string }> {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: path.join(__dirname, '..'), encoding: 'utf8' }).trim();
  const commit = rev ?? git('rev-parse', `${git('log', '--diff-filter=A', '--format=%H', '--', 'src/training/eager/explicit.ts').split('\n').pop()}~1`);
  const dir = path.join(__dirname, '..', '.cache', 'bench-reference');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `step-${process.pid}.ts`);
  fs.writeFileSync(file, git('show', `${commit}:src/training/eager/step.ts`));
  try {
    return { code: (await import(file)) as StepCode, rev: git('log', '-1', '--format=%h %s', commit) };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

interface Loop {
  step(step: number): tf.Scalar;
}

async function makeLoop(model: BenchModel, batchSize: number, train: Dataset, { lossFunction, optimizerStep, trainingLoss }: StepCode): Promise<Loop> {
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

function timeSteps(loop: Loop, from: number, seconds: number): { steps: number; ms: number; cpuMs: number } {
  const cpu = process.cpuUsage();
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
  const used = process.cpuUsage(cpu);
  return { steps: step - from, ms: Number(process.hrtime.bigint() - started) / 1e6, cpuMs: (used.user + used.system) / 1000 };
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
  const reference = await referenceStepCode(process.argv.includes('--reference') ? arg('--reference', '') : undefined);
  const backend = await selectBackend(backendPreferenceFromEnv());
  const train = await builtInDatasets().load({ name: 'mnist', split: 'train' });
  console.log(`old: step.ts at ${reference.rev}; new: the working tree's`);
  console.log(`backend ${backend.name}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log('| case | kernels old → new | native ops old → new | uploads old → new | steps/s old | steps/s new | new/old | CPU ms/step old → new | old/new |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const model of models) {
    for (const batchSize of batches) {
      const loops = { old: await makeLoop(model, batchSize, train, reference.code), new: await makeLoop(model, batchSize, train, current) };
      const total = { old: { steps: 0, ms: 0, cpuMs: 0 }, new: { steps: 0, ms: 0, cpuMs: 0 } };
      // Warm-up first: the first step also creates Adam's slots.
      for (const mode of ['old', 'new'] as const) timeSteps(loops[mode], 1, 0.3);
      const calls = { old: await countCalls(loops.old, 500), new: await countCalls(loops.new, 500) };
      for (let r = 0; r < rounds; r++) {
        for (const mode of (r % 2 ? ['new', 'old'] : ['old', 'new']) as Mode[]) {
          const t = timeSteps(loops[mode], 1000 + r * 1000, seconds);
          total[mode].steps += t.steps;
          total[mode].ms += t.ms;
          total[mode].cpuMs += t.cpuMs;
        }
      }
      const sps = (m: Mode): number => (total[m].steps / total[m].ms) * 1000;
      const cpu = (m: Mode): number => total[m].cpuMs / total[m].steps;
      const c = (k: keyof (typeof calls)['old']): string => `${calls.old[k]} → ${calls.new[k]}`;
      console.log(
        `| ${model}/${batchSize} | ${c('kernels')} | ${c('nativeOps')} | ${c('uploads')} | ${sps('old').toFixed(1)} | ${sps('new').toFixed(1)} | ${(sps('new') / sps('old')).toFixed(2)} | ${cpu('old').toFixed(1)} → ${cpu('new').toFixed(1)} | ${(cpu('old') / cpu('new')).toFixed(2)} |`,
      );
    }
  }
  console.log(`load average after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
