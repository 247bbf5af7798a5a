/**
 * The training step's forward and backward passes written out for the layers the built-in models
 * use (Dense, Conv2D, MaxPooling2D, Flatten, Reshape, Dropout) in a Sequential model, instead of
 * tfjs's gradient tape over tfjs-layers' apply().
 *
 * Why: on tfjs-node every kernel is a native call of ~40–80 µs, and the tape spends many of them
 * besides the math (a 3-D reshape of every fused matMul, casts and a Greater per ReLU gradient, the
 * ~25 ops of softmaxCrossEntropy with its custom gradient, a shape upload per reshape). tfjs's fused
 * matMul/conv2d do not help here: under a gradient tape they fall back to the unfused ops for any
 * activation but linear, and tfjs-node runs them as separate ops anyway. The hand-written passes
 * compute the same math (the forward with the very ops tfjs-layers uses; the gradients with the
 * ops tfjs's own gradient functions use), so results differ from the tape only by float rounding
 * (test/eager-explicit.test.ts). Dropout masks are drawn exactly as tf.dropout draws them from the
 * layer's seed, which the stepper sets per step. A model with any other layer, activation,
 * regularizer or loss keeps the tape (`explicitGradients` returns undefined).
 */
import * as tf from '@tensorflow/tfjs';
import type { LossName } from '../../config/train-config';
import type { BatchAssembler } from '../batch';

/** A loss and the gradients of every trainable variable (by variable name), for one batch. */
export type ExplicitGradients = (batch: BatchAssembler) => { value: tf.Scalar; grads: tf.NamedTensorMap };

/** One layer's forward; `back` maps the output's gradient to the input's (undefined when not needed). */
type Forward = (x: tf.Tensor) => { y: tf.Tensor; back: (dy: tf.Tensor, needDx: boolean, grads: tf.NamedTensorMap) => tf.Tensor | undefined };

interface LayerLike {
  getClassName(): string;
  getConfig(): Record<string, unknown>;
  trainable: boolean;
  trainableWeights: Array<{ read(): tf.Variable }>;
  kernel?: { read(): tf.Tensor };
  bias?: { read(): tf.Tensor } | null;
  seed?: number;
}

const REGULARIZED = ['kernelRegularizer', 'biasRegularizer', 'activityRegularizer'] as const;

/** relu or linear; anything else is left to the tape. */
function activationOf(config: Record<string, unknown>): 'relu' | 'linear' | undefined {
  const a = config.activation;
  return a === 'relu' || a === 'linear' ? a : undefined;
}

/** z → activation(z), and the gradient back through it (ReLU's from its output: sign(relu(z)) is step(z)). */
function activate(z: tf.Tensor, activation: 'relu' | 'linear'): { a: tf.Tensor; dz: (da: tf.Tensor) => tf.Tensor } {
  if (activation === 'linear') return { a: z, dz: (da) => da };
  const a = tf.relu(z);
  return { a, dz: (da) => tf.mul(da, tf.sign(a)) };
}

function dense(layer: LayerLike, activation: 'relu' | 'linear'): Forward {
  const kernel = layer.kernel!.read();
  const bias = layer.bias?.read();
  return (x) => {
    const z = bias ? tf.add(tf.matMul(x, kernel), bias) : tf.matMul(x, kernel);
    const { a, dz } = activate(z, activation);
    return {
      y: a,
      back(dy, needDx, grads) {
        const d = dz(dy);
        grads[(kernel as tf.Variable).name] = tf.matMul(x, d, true, false);
        if (bias) grads[(bias as tf.Variable).name] = tf.sum(d, 0);
        return needDx ? tf.matMul(d, kernel, false, true) : undefined;
      },
    };
  };
}

function conv2d(layer: LayerLike, activation: 'relu' | 'linear', config: Record<string, unknown>): Forward {
  const kernel = layer.kernel!.read() as tf.Tensor4D;
  const bias = layer.bias?.read();
  const strides = config.strides as [number, number];
  const pad = config.padding as 'valid' | 'same';
  return (x) => {
    const conv = tf.conv2d(x as tf.Tensor4D, kernel, strides, pad, 'NHWC', [1, 1]);
    const { a, dz } = activate(bias ? tf.add(conv, bias) : conv, activation);
    return {
      y: a,
      back(dy, needDx, grads) {
        const d = dz(dy);
        const attrs = { strides, pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
        grads[(kernel as tf.Variable).name] = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy: d }, { ...attrs, filterShape: kernel.shape } as never) as tf.Tensor;
        if (bias) grads[(bias as tf.Variable).name] = tf.sum(d, [0, 1, 2]);
        if (!needDx) return undefined;
        return tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: d, filter: kernel }, { ...attrs, inputShape: x.shape } as never) as tf.Tensor;
      },
    };
  };
}

function maxPool(config: Record<string, unknown>): Forward {
  const filterSize = config.poolSize as [number, number];
  const strides = (config.strides as [number, number] | null) ?? filterSize;
  const pad = config.padding as 'valid' | 'same';
  return (x) => {
    const y = tf.maxPool(x as tf.Tensor4D, filterSize, strides, pad);
    return {
      y,
      back: (dy, needDx) =>
        needDx ? (tf.engine().runKernel(tf.MaxPoolGrad, { dy, input: x, output: y }, { filterSize, strides, pad, dimRoundingMode: undefined } as never) as tf.Tensor) : undefined,
    };
  };
}

function reshapeTo(targetShape: (x: tf.Tensor) => number[]): Forward {
  return (x) => ({ y: tf.reshape(x, targetShape(x)), back: (dy, needDx) => (needDx ? tf.reshape(dy, x.shape) : undefined) });
}

function dropout(layer: LayerLike, rate: number): Forward {
  const keepProb = 1 - rate;
  return (x) => {
    // tf.dropout's mask, drawn from the same seed the layer would use: the same mask, bit for bit.
    const multiplier = tf.div(tf.floor(tf.add(tf.randomUniform(x.shape, 0, 1, 'float32', layer.seed), keepProb)), keepProb);
    return { y: tf.mul(x, multiplier), back: (dy, needDx) => (needDx ? tf.mul(dy, multiplier) : undefined) };
  };
}

/** A layer's forward, or undefined when it (or its configuration) is not one written out here. */
function forwardOf(layer: LayerLike, last: boolean, loss: LossName): Forward | undefined {
  const config = layer.getConfig();
  if (REGULARIZED.some((k) => config[k] != null)) return undefined;
  switch (layer.getClassName()) {
    case 'Dense': {
      // The output layer's softmax goes into the loss (computed from logits, as Keras does).
      const activation = last && loss === 'categoricalCrossentropy' ? (config.activation === 'softmax' ? 'linear' : undefined) : activationOf(config);
      const inputRank = (layer as unknown as { input: { shape: unknown[] } }).input.shape.length;
      return activation && inputRank === 2 ? dense(layer, activation) : undefined;
    }
    case 'Conv2D': {
      const activation = activationOf(config);
      const plain = config.dataFormat === 'channelsLast' && (config.dilationRate as number[]).every((d) => d === 1);
      return activation && plain && !last ? conv2d(layer, activation, config) : undefined;
    }
    case 'MaxPooling2D':
      return config.dataFormat === 'channelsLast' && !last ? maxPool(config) : undefined;
    case 'Flatten':
      return config.dataFormat !== 'channelsFirst' && !last ? reshapeTo((x) => [x.shape[0], x.size / x.shape[0]]) : undefined;
    case 'Reshape':
      return last ? undefined : reshapeTo((x) => [x.shape[0], ...(config.targetShape as number[])]);
    case 'Dropout': {
      const rate = config.rate as number;
      if (config.noiseShape != null || last) return undefined;
      // tfjs-layers applies dropout only for 0 < rate < 1.
      return rate > 0 && rate < 1 ? dropout(layer, rate) : (x) => ({ y: x, back: (dy) => dy });
    }
    default:
      return undefined;
  }
}

/** Loss from the last layer's output and its gradient with respect to that output. */
function lossAndGradient(loss: LossName, out: tf.Tensor, y: tf.Tensor): { value: tf.Scalar; dOut: tf.Tensor } {
  const n = out.shape[0]!;
  if (loss === 'categoricalCrossentropy') {
    // softmaxCrossEntropy from logits, mean over the batch; its gradient (softmax - labels) / n.
    const shifted = tf.sub(out, tf.max(out, 1, true));
    const logSoftmax = tf.sub(shifted, tf.log(tf.sum(tf.exp(shifted), 1, true)));
    return { value: tf.div(tf.sum(tf.mul(logSoftmax, y)), -n), dOut: tf.mul(tf.sub(tf.exp(logSoftmax), y), 1 / n) };
  }
  // meanSquaredError, mean over every output; its gradient 2 (p - y) / size.
  const diff = tf.sub(out, y);
  return { value: tf.div(tf.sum(tf.square(diff)), diff.size), dOut: tf.mul(diff, 2 / diff.size) };
}

/**
 * The written-out step for `model`, or undefined when the model has anything this file does not
 * cover (the caller then uses the tape). For meanSquaredError the output layer must be linear; for
 * categoricalCrossentropy it must be softmax.
 */
export function explicitGradients(model: tf.LayersModel, loss: LossName): ExplicitGradients | undefined {
  if (model.getClassName() !== 'Sequential' || model.inputs.length !== 1 || model.outputs.length !== 1) return undefined;
  const layers = model.layers as unknown as LayerLike[];
  if (layers.length === 0 || layers.some((l) => !l.trainable)) return undefined;
  const forwards: Forward[] = [];
  for (const [i, layer] of layers.entries()) {
    const f = forwardOf(layer, i === layers.length - 1, loss);
    if (!f) return undefined;
    forwards.push(f);
  }
  if (loss === 'meanSquaredError' && layers[layers.length - 1]!.getConfig().activation !== 'linear') return undefined;
  // Every trainable variable must get its gradient here, or the tape is the safe choice.
  const covered = new Set(layers.flatMap((l) => [l.kernel?.read(), l.bias?.read()].filter((v) => v !== undefined).map((v) => (v as tf.Variable).name)));
  const trainable = model.trainableWeights.map((w) => (w.read() as tf.Variable).name);
  if (trainable.length !== covered.size || !trainable.every((name) => covered.has(name))) return undefined;
  // A leading Reshape costs nothing: the batch is uploaded in its target shape.
  const first = layers[0]!;
  const target = first.getClassName() === 'Reshape' ? (first.getConfig().targetShape as number[]) : undefined;
  const uploadShape = target?.every((d) => d > 0) ? target : undefined;
  const stages = uploadShape ? forwards.slice(1) : forwards;
  const weighted = (uploadShape ? layers.slice(1) : layers).map((l) => l.trainableWeights.length > 0);
  // A stage passes its gradient on only when a stage before it has weights.
  const needDx = weighted.map((_, i) => weighted.slice(0, i).some(Boolean));

  return (batch) => {
    const x = tf.tensor(batch.x, uploadShape ? [batch.batchSize, ...uploadShape] : batch.xShape);
    const y = tf.tensor(batch.y, batch.yShape);
    const backs: Array<ReturnType<Forward>['back']> = [];
    let out = x;
    for (const forward of stages) {
      const step = forward(out);
      backs.push(step.back);
      out = step.y;
    }
    const { value, dOut } = lossAndGradient(loss, out, y);
    const grads: tf.NamedTensorMap = {};
    let d: tf.Tensor | undefined = dOut;
    for (let i = backs.length - 1; i >= 0 && d; i--) d = backs[i]!(d, needDx[i]!, grads);
    return { value, grads };
  };
}
