/**
 * How many bytes a built-in or topology model will need, from its params (or layers) and the dataset's shapes, before
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

type Shape = readonly number[];
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
const pair = (v: unknown, fallback: number): [number, number] =>
  Array.isArray(v) ? [num(v[0]) ?? fallback, num(v[1]) ?? num(v[0]) ?? fallback] : [num(v) ?? fallback, num(v) ?? fallback];
/** A layer config's declared example shape (`batch_input_shape` without the batch, or `input_shape`), if it has one. */
function declaredShape(config: JsonObject): Shape | undefined {
  const batch = config.batch_input_shape ?? config.batchInputShape;
  const shape = Array.isArray(batch) ? batch.slice(1) : (config.input_shape ?? config.inputShape);
  if (!Array.isArray(shape) || shape.length === 0) return undefined;
  const dims = shape.map(num);
  return dims.every((d): d is number => d !== undefined) ? dims : undefined;
}
const get = (o: JsonObject, snake: string, camel: string): unknown => o[snake] ?? o[camel];

/**
 * One layer of a Keras/tfjs-layers topology: its parameters (as tfjs counts them, non-trainable
 * included) and its output shape, from the input shape. An unknown layer keeps no shape, and
 * layers after it count what they surely have (a Dense of `units` has at least 2 × units): the
 * estimate is a lower bound, so it refuses only what cannot fit.
 */
function topologyLayer(className: string, c: JsonObject, input: Shape | undefined): { parameters: number; output: Shape | undefined; key?: string } {
  const last = input?.[input.length - 1];
  switch (className) {
    case 'InputLayer':
      return { parameters: 0, output: declaredShape(c) ?? input };
    case 'Dense': {
      const units = num(c.units) ?? 0;
      const bias = get(c, 'use_bias', 'useBias') === false ? 0 : units;
      return { parameters: (last ?? 1) * units + bias, output: input ? [...input.slice(0, -1), units] : [units], key: 'units' };
    }
    case 'Conv1D':
    case 'Conv2D': {
      const filters = num(c.filters) ?? 0;
      const rank = className === 'Conv1D' ? 1 : 2;
      const kernel = pair(get(c, 'kernel_size', 'kernelSize'), 1);
      const strides = pair(c.strides, 1);
      const kernelSize = rank === 1 ? kernel[0] : kernel[0] * kernel[1];
      const bias = get(c, 'use_bias', 'useBias') === false ? 0 : filters;
      const same = c.padding === 'same';
      const channelsLast = get(c, 'data_format', 'dataFormat') !== 'channels_first';
      const parameters = kernelSize * (channelsLast ? (last ?? 1) : (input?.[0] ?? 1)) * filters + bias;
      if (!input || input.length !== rank + 1 || !channelsLast) return { parameters, output: undefined, key: 'filters' };
      const spatial = input.slice(0, rank).map((n, i) => (same ? Math.ceil(n / strides[i]!) : Math.floor((n - kernel[i]!) / strides[i]!) + 1));
      return { parameters, output: [...spatial, filters], key: 'filters' };
    }
    case 'MaxPooling2D':
    case 'AveragePooling2D': {
      const size = pair(get(c, 'pool_size', 'poolSize'), 2);
      const strides = c.strides === undefined || c.strides === null ? size : pair(c.strides, 2);
      if (!input || input.length !== 3) return { parameters: 0, output: undefined };
      const same = c.padding === 'same';
      const spatial = [0, 1].map((i) => (same ? Math.ceil(input[i]! / strides[i]!) : Math.floor((input[i]! - size[i]!) / strides[i]!) + 1));
      return { parameters: 0, output: [...spatial, input[2]!] };
    }
    case 'Flatten':
      return { parameters: 0, output: input && [product(input)] };
    case 'Reshape': {
      const target = get(c, 'target_shape', 'targetShape');
      return { parameters: 0, output: Array.isArray(target) && target.every((n) => num(n) !== undefined) ? (target as number[]) : undefined };
    }
    case 'BatchNormalization':
      return { parameters: 4 * (last ?? 1), output: input };
    case 'Embedding': {
      const dims = num(get(c, 'input_dim', 'inputDim')) ?? 0;
      const out = num(get(c, 'output_dim', 'outputDim')) ?? 0;
      return { parameters: dims * out, output: input && [...input, out], key: 'input_dim' };
    }
    case 'Dropout':
    case 'Activation':
    case 'ReLU':
    case 'Softmax':
    case 'LeakyReLU':
    case 'GaussianNoise':
      return { parameters: 0, output: input };
    default:
      return { parameters: 0, output: undefined };
  }
}

/**
 * Parameters and per-example activations of a Sequential topology (or a functional one whose layers
 * are listed in order, as Keras writes them: each layer taken on the previous one's output), and
 * the shapes it declares. Undefined when it holds no layer list.
 */
function countTopology(topology: JsonObject, shapes: ModelShapes): (Omit<ModelSizeEstimate, 'bytes'> & { activations: number; declaredInput?: Shape; output?: Shape }) | undefined {
  let path = 'model.topology';
  let t: unknown = topology;
  if (isJsonObject(topology.modelTopology)) [t, path] = [topology.modelTopology, `${path}.modelTopology`];
  if (isJsonObject(t) && isJsonObject(t.model_config)) [t, path] = [t.model_config, `${path}.model_config`];
  if (!isJsonObject(t)) return undefined;
  let layers: unknown = t.config;
  path = `${path}.config`;
  if (isJsonObject(layers)) [layers, path] = [layers.layers, `${path}.layers`];
  if (!Array.isArray(layers)) return undefined;
  let shape: Shape | undefined;
  let declaredInput: Shape | undefined;
  let parameters = 0;
  let activations = product(shapes.inputShape);
  let most = { parameters: -1, field: 'model.topology', value: undefined as unknown };
  layers.forEach((layer: unknown, i) => {
    if (!isJsonObject(layer) || typeof layer.class_name !== 'string') return;
    const c = isJsonObject(layer.config) ? layer.config : {};
    if (i === 0) {
      declaredInput = declaredShape(c);
      shape = declaredInput ?? shapes.inputShape;
    }
    const counted = topologyLayer(layer.class_name, c, shape);
    parameters += counted.parameters;
    if (counted.parameters > most.parameters) {
      most = { parameters: counted.parameters, field: `${path}[${i}]${counted.key ? `.config.${counted.key}` : ''}`, value: counted.key ? c[counted.key] : layer.class_name };
    }
    shape = counted.output;
    if (shape) activations += product(shape);
  });
  return { parameters, activations, field: most.field, value: most.value, ...(declaredInput && { declaredInput }), ...(shape && { output: shape }) };
}

const isJsonObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Bytes a training session holds: weights, gradients and optimizer slots, a second copy of weights
 * and slots while a checkpoint is serialised, and the batch's activations forward and backward.
 */
export function estimateModelSize(config: Pick<TrainConfig, 'model' | 'hyperparameters'>, shapes: ModelShapes): ModelSizeEstimate | undefined {
  const counted =
    'topology' in config.model ? countTopology(config.model.topology, shapes)
    : 'name' in config.model ? countBuiltIn(config.model.name, config.model.params ?? {}, shapes)
    : undefined;
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

/**
 * A topology whose declared input or output does not fit the training data: tfjs would build it
 * and fail at the first step, on every attempt. The message names both fields and both shapes.
 */
export function topologyShapeMismatch(config: Pick<TrainConfig, 'model'>, shapes: ModelShapes): string | undefined {
  if (!('topology' in config.model)) return undefined;
  const counted = countTopology(config.model.topology, shapes);
  const shown = (s: Shape): string => `[${s.join(', ')}]`;
  const declared = counted?.declaredInput;
  if (declared && (declared.length !== shapes.inputShape.length || declared.some((n, i) => n !== shapes.inputShape[i]))) {
    return `Expected \`model.topology\`'s input shape to be the features of \`data.train\` (${shown(shapes.inputShape)}), got ${shown(declared)}`;
  }
  const out = counted?.output;
  if (out && out[out.length - 1] !== shapes.outputUnits) {
    return `Expected \`model.topology\`'s last layer to have the ${shapes.outputUnits} outputs (classes) of \`data.train\`'s targets, got ${shown(out)}`;
  }
  return undefined;
}

/** Throws NonRetryableTrainingError when a built-in or topology model would not fit the data or `maxBytes`. */
export function checkModelFits(config: Pick<TrainConfig, 'model' | 'hyperparameters'>, shapes: ModelShapes, maxBytes: number = trainerMaxBytes()): void {
  const mismatch = topologyShapeMismatch(config, shapes);
  if (mismatch !== undefined) throw new NonRetryableTrainingError(mismatch);
  const estimate = estimateModelSize(config, shapes);
  if (!estimate || estimate.bytes <= maxBytes) return;
  const { optimizer, batchSize } = config.hyperparameters;
  throw new NonRetryableTrainingError(
    `Expected \`${estimate.field}\` to give a model that fits in the trainer's memory limit (DT_TRAINER_MAX_BYTES: ${maxBytes} bytes, ${gb(maxBytes)}), ` +
      `got ${JSON.stringify(estimate.value).slice(0, 80)}: an estimated ${estimate.bytes} bytes (${gb(estimate.bytes)}) for ` +
      `${estimate.parameters} parameters with ${optimizer}, batch ${batchSize}, input [${shapes.inputShape.join(', ')}], ${shapes.outputUnits} outputs`,
  );
}
