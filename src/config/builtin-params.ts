/**
 * Params of the built-in models (`mlp`, `cnn`) and datasets (`mnist`, `synthetic`), checked by
 * the parser so that a bad one fails the workflow before any activity instead of failing the
 * trainer attempt after attempt. A worker that registers its own factory under one of these
 * names still gets these checks: the built-in names keep their built-in params.
 */
import {
  MAX_LAYERS,
  MAX_SEED,
  MAX_SYNTHETIC_CLASSES,
  MAX_SYNTHETIC_FEATURES,
  MAX_SYNTHETIC_FLOATS,
  MAX_SYNTHETIC_NOISE,
  MAX_SYNTHETIC_SIZE,
  MAX_UNITS,
} from './bounds';
import { checkShardedParams, SHARDED_DATASET } from './sharded-data';
import type { Checker, JsonObject } from './validate';

/** tfjs-layers' activation identifiers. */
export const ACTIVATIONS = [
  'elu', 'hardSigmoid', 'linear', 'relu', 'relu6', 'selu', 'sigmoid', 'softmax', 'softplus', 'softsign', 'tanh', 'swish', 'mish', 'gelu', 'gelu_new',
] as const;

function unitList(c: Checker, field: string, value: unknown, opts: { minLength: number; maxLength: number; max: number }): void {
  if (value === undefined) return;
  const expected = `a list of ${opts.minLength} to ${opts.maxLength} whole numbers from 1 to ${opts.max}`;
  if (!Array.isArray(value) || value.length < opts.minLength || value.length > opts.maxLength) {
    c.fail(field, expected, value);
    return;
  }
  const bad = value.find((n) => typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > opts.max);
  if (bad !== undefined || value.some((n) => n === undefined)) c.fail(field, expected, bad);
}

/** Checks `model.params` of a built-in model; other names are the worker's business. */
export function checkBuiltInModelParams(c: Checker, name: string, params: JsonObject): void {
  const field = 'model.params';
  if (name === 'mlp') {
    c.noUnknownKeys(field, params, ['hiddenUnits', 'dropout', 'activation']);
    // At least one: tfjs gives the input shape to the first hidden layer.
    unitList(c, `${field}.hiddenUnits`, params.hiddenUnits, { minLength: 1, maxLength: MAX_LAYERS, max: MAX_UNITS });
    if (params.dropout !== undefined) {
      const d = params.dropout;
      if (typeof d !== 'number' || !(d >= 0 && d < 1)) c.fail(`${field}.dropout`, 'a number from 0 to below 1', d);
    }
    if (params.activation !== undefined) c.oneOf(`${field}.activation`, params.activation, ACTIVATIONS);
  } else if (name === 'cnn') {
    c.noUnknownKeys(field, params, ['filters', 'denseUnits', 'imageShape']);
    unitList(c, `${field}.filters`, params.filters, { minLength: 0, maxLength: MAX_LAYERS, max: MAX_UNITS });
    unitList(c, `${field}.denseUnits`, params.denseUnits, { minLength: 0, maxLength: MAX_LAYERS, max: MAX_UNITS });
    unitList(c, `${field}.imageShape`, params.imageShape, { minLength: 3, maxLength: 3, max: MAX_UNITS });
  }
}

/** Checks `split` and `params` of a built-in dataset; csv and jsonl params are checked by their reader. */
export function checkBuiltInDataset(c: Checker, field: string, name: string, split: string | undefined, params: JsonObject | undefined): void {
  if (name === 'mnist') {
    if (split !== undefined) c.oneOf(`${field}.split`, split, ['train', 'test'] as const);
    if (params !== undefined && Object.keys(params).length > 0) c.fail(`${field}.params`, 'absent (mnist takes no params)', params);
  } else if (name === 'synthetic') {
    if (split !== undefined) c.oneOf(`${field}.split`, split, ['train', 'test'] as const);
    const p = params ?? {};
    const f = `${field}.params`;
    c.noUnknownKeys(f, p, ['features', 'classes', 'size', 'noise', 'seed']);
    const features = c.number(`${f}.features`, p.features, { integer: true, min: 1, max: MAX_SYNTHETIC_FEATURES, optional: true });
    const classes = c.number(`${f}.classes`, p.classes, { integer: true, min: 1, max: MAX_SYNTHETIC_CLASSES, optional: true });
    const size = c.number(`${f}.size`, p.size, { integer: true, min: 1, max: MAX_SYNTHETIC_SIZE, optional: true });
    c.number(`${f}.noise`, p.noise, { min: 0, max: MAX_SYNTHETIC_NOISE, optional: true });
    c.number(`${f}.seed`, p.seed, { integer: true, min: 0, max: MAX_SEED, optional: true });
    // The defaults (src/training/dataset-registry.ts): 16 features, 4 classes, 1024 examples.
    const floats = (size ?? 1024) * ((features ?? 16) + (classes ?? 4));
    if (floats > MAX_SYNTHETIC_FLOATS) {
      c.fail(`${f}.size`, `a size whose size × (features + classes) is at most ${MAX_SYNTHETIC_FLOATS}`, size ?? 1024);
    }
  } else if (name === SHARDED_DATASET) {
    checkShardedParams(c, field, split, params);
  }
}
