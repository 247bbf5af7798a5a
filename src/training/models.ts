/**
 * Model registry: factories that build tfjs-layers models from plain-JSON params, seeded so
 * that the same (params, seed) always gives the same initial weights.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelSpec } from '../config/train-config';
import type { JsonObject } from '../config/validate';
import { NonRetryableTrainingError } from './protocol';
import { hash32 } from './rng';
import { Registry } from './registry';

export interface ModelContext {
  /** Shape of one input example, e.g. [784]. */
  readonly inputShape: readonly number[];
  /** Number of outputs (classes for classification). */
  readonly outputUnits: number;
  /** Seed for initializers (never 0: tfjs reads 0 as "unseeded"). */
  readonly seed: number;
}

export type ModelFactory = (params: JsonObject, ctx: ModelContext) => tf.LayersModel;

export class ModelRegistry extends Registry<ModelFactory> {

  /** Builds the model; a spec the factory or tfjs refuses is a NonRetryableTrainingError. */
  async build(spec: ModelSpec, ctx: ModelContext): Promise<tf.LayersModel> {
    if ('topology' in spec) {
      // A Keras/tfjs-layers topology (model.json's `modelTopology`, or its `config` part).
      const topology = (spec.topology.modelTopology as JsonObject | undefined) ?? spec.topology;
      try {
        return await tf.models.modelFromJSON({ modelTopology: topology as any });
      } catch (err) {
        throw new NonRetryableTrainingError(`Expected \`model.topology\` to be a topology tfjs-layers can build: ${(err as Error).message}`);
      }
    }
    if (!('name' in spec)) throw new NonRetryableTrainingError('A `savedmodel` model is not built from the registry (the savedmodel route, src/training/savedmodel/, loads it)');
    const factory = this.factories.get(spec.name);
    if (!factory) throw new NonRetryableTrainingError(`Unknown model \`${spec.name}\`: registered models are ${this.names().join(', ')}`);
    return factory(spec.params ?? {}, ctx);
  }
}

/** A distinct, non-zero seed for each initializer of a model. */
export function layerSeed(seed: number, index: number): number {
  return (hash32(seed, 0x1a7e5, index) % 2147483646) + 1;
}

function numberList(params: JsonObject, key: string, fallback: number[]): number[] {
  const v = params[key];
  if (v === undefined) return fallback;
  if (!Array.isArray(v) || !v.every((n) => Number.isInteger(n) && n > 0)) {
    throw new NonRetryableTrainingError(`Expected \`model.params.${key}\` to be a list of whole numbers from 1 and up, got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

function rate(params: JsonObject, key: string, fallback: number): number {
  const v = params[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) {
    throw new NonRetryableTrainingError(`Expected \`model.params.${key}\` to be a number from 0 to below 1, got ${JSON.stringify(v)}`);
  }
  return v;
}

function seededInit(seed: number, index: number) {
  return {
    kernelInitializer: tf.initializers.glorotUniform({ seed: layerSeed(seed, index) }),
    biasInitializer: tf.initializers.zeros(),
  };
}

/** Multi-layer perceptron. params: `hiddenUnits` (default [128]), `dropout` (default 0), `activation` (default relu). */
export const mlp: ModelFactory = (params, ctx) => {
  const hidden = numberList(params, 'hiddenUnits', [128]);
  const dropout = rate(params, 'dropout', 0);
  const activation = (params.activation as string | undefined) ?? 'relu';
  const model = tf.sequential();
  if (ctx.inputShape.length > 1) model.add(tf.layers.flatten({ inputShape: [...ctx.inputShape] }));
  hidden.forEach((units, i) => {
    const first = i === 0 && ctx.inputShape.length === 1 ? { inputShape: [...ctx.inputShape] } : {};
    model.add(tf.layers.dense({ units, activation: activation as any, ...first, ...seededInit(ctx.seed, i) }));
    if (dropout > 0) model.add(tf.layers.dropout({ rate: dropout, seed: layerSeed(ctx.seed, 1000 + i) }));
  });
  model.add(tf.layers.dense({ units: ctx.outputUnits, activation: 'softmax', ...seededInit(ctx.seed, hidden.length) }));
  return model;
};

/**
 * Small convolutional net for 28x28 images. params: `filters` (default [8, 16]),
 * `denseUnits` (default 64), `imageShape` (default [28, 28, 1]).
 */
export const cnn: ModelFactory = (params, ctx) => {
  const filters = numberList(params, 'filters', [8, 16]);
  const denseUnits = numberList(params, 'denseUnits', [64]);
  const imageShape = numberList(params, 'imageShape', [28, 28, 1]);
  const model = tf.sequential();
  model.add(tf.layers.reshape({ inputShape: [...ctx.inputShape], targetShape: imageShape }));
  filters.forEach((f, i) => {
    model.add(tf.layers.conv2d({ filters: f, kernelSize: 3, activation: 'relu', ...seededInit(ctx.seed, i) }));
    model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  });
  model.add(tf.layers.flatten());
  denseUnits.forEach((units, i) => {
    model.add(tf.layers.dense({ units, activation: 'relu', ...seededInit(ctx.seed, 100 + i) }));
  });
  model.add(tf.layers.dense({ units: ctx.outputUnits, activation: 'softmax', ...seededInit(ctx.seed, 200) }));
  return model;
};

export function builtInModels(): ModelRegistry {
  return new ModelRegistry().register('mlp', mlp).register('cnn', cnn);
}
