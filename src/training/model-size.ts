/**
 * How many bytes a built-in model will need, from its params and the dataset's shapes, before
 * tfjs allocates any of it. A model larger than the trainer may use is an input error: refused
 * non-retryably at the first attempt instead of crashing the trainer on every retry.
 */
import os from 'node:os';
import type { Hyperparameters, TrainConfig } from '../config/train-config';
import type { JsonObject } from '../config/validate';
import { NonRetryableTrainingError } from './protocol';

export interface ModelShapes {
  /** Shape of one input example, e.g. [784]. */
  readonly inputShape: readonly number[];
  readonly outputUnits: number;
}

export interface ModelSizeEstimate {
  readonly parameters: number;
  readonly bytes: number;
  /** The params field that holds most of the parameters, e.g. `model.params.hiddenUnits`. */
  readonly field: string;
  readonly value: unknown;
}

/** Optimizer slots per weight in tfjs: momentum keeps one, Adam and RMSprop two. */
const OPTIMIZER_SLOTS: Readonly<Record<Hyperparameters['optimizer'], number>> = { sgd: 0, momentum: 1, adam: 2, rmsprop: 2 };
const FLOAT_BYTES = 4;

function units(params: JsonObject, key: string, fallback: readonly number[]): readonly number[] {
  const v = params[key];
  return Array.isArray(v) && v.every((n) => typeof n === 'number') ? (v as number[]) : fallback;
}

const product = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * Parameters and per-example activations of the built-in models (src/training/models.ts); undefined for any other.
 * Throws NonRetryableTrainingError for params that do not fit the dataset's shapes.
 */
function countBuiltIn(name: string, params: JsonObject, shapes: ModelShapes): Omit<ModelSizeEstimate, 'bytes'> & { activations: number } | undefined {
  const byField = new Map<string, number>();
  const add = (field: string, n: number): void => void byField.set(field, (byField.get(field) ?? 0) + n);
  let activations = product(shapes.inputShape);
  let width = activations;
  const dense = (field: string, out: number): void => {
    add(field, width * out + out);
    activations += out;
    width = out;
  };
  if (name === 'mlp') {
    for (const u of units(params, 'hiddenUnits', [128])) dense('model.params.hiddenUnits', u);
  } else if (name === 'cnn') {
    const imageShape = units(params, 'imageShape', [28, 28, 1]);
    if (product(imageShape) !== activations) {
      throw new NonRetryableTrainingError(
        `Expected \`model.params.imageShape\` to hold the dataset's ${activations} features per example (input [${shapes.inputShape.join(', ')}]), got [${imageShape.join(', ')}]`,
      );
    }
    let [h = 28, w = 28, c = 1] = imageShape;
    for (const f of units(params, 'filters', [8, 16])) {
      // conv2d 3×3 'valid', then maxPooling2d 2×2.
      add('model.params.filters', 9 * c * f + f);
      if (h < 3 || w < 3) {
        throw new NonRetryableTrainingError(
          `Expected \`model.params.filters\` to have few enough layers for a ${imageShape.join('×')} image (each 3×3 convolution and 2×2 pooling shrinks it), got ${JSON.stringify(params.filters)}`,
        );
      }
      h -= 2;
      w -= 2;
      activations += h * w * f;
      h = Math.floor(h / 2);
      w = Math.floor(w / 2);
      c = f;
    }
    width = h * w * c;
    for (const u of units(params, 'denseUnits', [64])) dense('model.params.denseUnits', u);
  } else {
    return undefined;
  }
  dense('model.params', shapes.outputUnits);
  let field = 'model.params';
  let most = -1;
  for (const [f, n] of byField) {
    if (n > most) [field, most] = [f, n];
  }
  const parameters = [...byField.values()].reduce((a, b) => a + b, 0);
  return { parameters, activations, field, value: field === 'model.params' ? params : params[field.slice('model.params.'.length)] };
}

/**
 * Bytes a training session holds: weights, gradients and optimizer slots, a second copy of weights
 * and slots while a checkpoint is serialised, and the batch's activations forward and backward.
 */
export function estimateModelSize(config: Pick<TrainConfig, 'model' | 'hyperparameters'>, shapes: ModelShapes): ModelSizeEstimate | undefined {
  if (!('name' in config.model)) return undefined;
  const counted = countBuiltIn(config.model.name, config.model.params ?? {}, shapes);
  if (!counted) return undefined;
  const slots = OPTIMIZER_SLOTS[config.hyperparameters.optimizer];
  const perParameter = 3 + 2 * slots;
  const bytes = FLOAT_BYTES * (counted.parameters * perParameter + 3 * config.hyperparameters.batchSize * counted.activations);
  return { parameters: counted.parameters, bytes, field: counted.field, value: counted.value };
}

/** Share of the machine's memory a trainer may use when DT_TRAINER_MAX_BYTES is not set. */
export const DEFAULT_MEMORY_SHARE = 0.5;

/** DT_TRAINER_MAX_BYTES (whole bytes), else half of the machine's memory. */
export function trainerMaxBytes(env: NodeJS.ProcessEnv = process.env, totalMemory: number = os.totalmem()): number {
  const raw = env.DT_TRAINER_MAX_BYTES;
  if (raw === undefined || raw === '') return Math.floor(totalMemory * DEFAULT_MEMORY_SHARE);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`Expected \`DT_TRAINER_MAX_BYTES\` to be a whole number of bytes from 1 and up, got ${JSON.stringify(raw)}`);
  return n;
}

const gb = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/** Throws NonRetryableTrainingError when a built-in model would not fit in `maxBytes`. */
export function checkModelFits(config: Pick<TrainConfig, 'model' | 'hyperparameters'>, shapes: ModelShapes, maxBytes: number = trainerMaxBytes()): void {
  const estimate = estimateModelSize(config, shapes);
  if (!estimate || estimate.bytes <= maxBytes) return;
  const { optimizer, batchSize } = config.hyperparameters;
  throw new NonRetryableTrainingError(
    `Expected \`${estimate.field}\` to give a model that fits in the trainer's memory limit (DT_TRAINER_MAX_BYTES: ${maxBytes} bytes, ${gb(maxBytes)}), ` +
      `got ${JSON.stringify(estimate.value).slice(0, 80)}: an estimated ${estimate.bytes} bytes (${gb(estimate.bytes)}) for ` +
      `${estimate.parameters} parameters with ${optimizer}, batch ${batchSize}, input [${shapes.inputShape.join(', ')}], ${shapes.outputUnits} outputs`,
  );
}
