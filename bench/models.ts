/**
 * The models and data every route trains, spelled once: MLP 784-256-256-10 and the built-in
 * small CNN (conv 8, pool, conv 16, pool, dense 64, dense 10), Adam 1e-3, categorical
 * crossentropy, on the 8,500 MNIST training digits of the `mnist` package.
 */
import type { TrainInput } from '../src/config/train-config';
import type { BenchModel } from './route';

export const LEARNING_RATE = 0.001;
export const SEED = 1;

export function modelSpec(model: BenchModel): { name: string; params: Record<string, unknown> } {
  return model === 'mlp' ? { name: 'mlp', params: { hiddenUnits: [256, 256] } } : { name: 'cnn', params: {} };
}

export const MODEL_LABEL: Record<BenchModel, string> = {
  mlp: 'MLP 784-256-256-10',
  cnn: 'CNN conv8-pool-conv16-pool-64-10',
};

/** A trainModel / trainer input for `model` at `batchSize`, with the default checkpoint cadence unless told. */
export function benchInput(model: BenchModel, batchSize: number, stepsPerEpoch: number, maxEpochs: number, extra: Record<string, unknown> = {}): TrainInput {
  return {
    model: modelSpec(model),
    data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test' } },
    hyperparameters: { optimizer: 'adam', learningRate: LEARNING_RATE, batchSize },
    stepsPerEpoch,
    maxEpochs,
    seed: SEED,
    ...extra,
  } as TrainInput;
}
