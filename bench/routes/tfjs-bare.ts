/**
 * (1) The limit: the engine's own step code (BatchAssembler + optimizerStep, src/training/batch.ts, src/training/eager/step.ts)
 * in a tight loop on the backend the trainer would pick: no Temporal, no checkpoints, no progress
 * messages, no event-loop turns, no running loss sum. It runs in a fresh child process, like the
 * trainer, so that nothing else the bench process holds (a worker, its bundle, other routes'
 * tensors) weighs on it.
 */
import { fork } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { builtInDatasets } from '../../src/training/dataset-registry';
import { selectBackend, backendPreferenceFromEnv } from '../../src/training/backend';
import { builtInModels } from '../../src/training/models';
import { BatchAssembler } from '../../src/training/batch';
import { lossFunction, optimizerStep, trainingLoss } from '../../src/training/eager/step';
import { LEARNING_RATE, modelSpec, SEED } from '../models';
import type { BenchRoute, Measurement, MeasureOptions } from '../route';

const WARMUP_STEPS = 10;

/** The loop itself, in the child. */
async function measureHere({ model: name, batchSize, steps }: MeasureOptions): Promise<Measurement> {
  const backend = await selectBackend(backendPreferenceFromEnv());
  const train = await builtInDatasets().load({ name: 'mnist', split: 'train' });
  const model = await builtInModels().build(modelSpec(name), { inputShape: train.xShape, outputUnits: 10, seed: SEED });
  const optimizer = tf.train.adam(LEARNING_RATE);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const lossOf = trainingLoss(model, 'categoricalCrossentropy', lossFunction('categoricalCrossentropy'));
  const batch = new BatchAssembler(train, batchSize, SEED);
  const run = (from: number, n: number): number => {
    let last: tf.Scalar | undefined;
    for (let step = from; step < from + n; step++) {
      batch.fill(step);
      last?.dispose();
      last = optimizerStep(optimizer, variables, lossOf, batch);
    }
    const loss = last!.dataSync()[0]!;
    last!.dispose();
    return loss;
  };
  run(1, WARMUP_STEPS);
  const started = process.hrtime.bigint();
  const loss = run(WARMUP_STEPS + 1, steps);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (!Number.isFinite(loss)) throw new Error(`the loss became ${loss}`);
  return { msPerStep: ms / steps, note: `backend ${backend.name} (${backend.package}), in a child process of its own` };
}

const route: BenchRoute = {
  name: 'bare tfjs loop',
  async available() {
    return true;
  },
  measure(opts) {
    return new Promise((resolve, reject) => {
      const child = fork(__filename, ['--child', JSON.stringify(opts)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      let result: Measurement | undefined;
      child.on('message', (m: { ok: true; result: Measurement } | { ok: false; error: string }) => {
        if (m.ok) result = m.result;
        else reject(new Error(m.error));
      });
      child.on('exit', (code) => (result ? resolve(result) : reject(new Error(`the bare loop process exited with code ${code}`))));
    });
  },
};
export default route;

if (require.main === module && process.argv[2] === '--child') {
  measureHere(JSON.parse(process.argv[3]!) as MeasureOptions).then(
    (result) => process.send!({ ok: true, result }, () => process.exit(0)),
    (err: Error) => process.send!({ ok: false, error: err.message }, () => process.exit(1)),
  );
}
