/**
 * One eager training step, kept apart so that the eager route and the benchmark's bare loop run
 * the very same code: one optimizer step whose loss is computed from logits when the model ends in
 * softmax (as Keras does), and the loss functions by name.
 */
import * as tf from '@tensorflow/tfjs';
import type { LossName } from '../../config/train-config';
import type { BatchAssembler } from '../batch';

export function lossFunction(name: LossName): (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor {
  switch (name) {
    case 'categoricalCrossentropy':
      return (t, p) => tf.metrics.categoricalCrossentropy(t, p);
    case 'meanSquaredError':
      return (t, p) => tf.metrics.meanSquaredError(t, p);
  }
}

/** The model's last layer when it ends in a softmax (a Dense or an Activation layer), else undefined. */
function softmaxOutputLayer(model: tf.LayersModel): { activation: unknown } | undefined {
  const last = model.layers[model.layers.length - 1] as unknown as { activation?: { getClassName?(): string } } | undefined;
  if (model.outputs.length !== 1 || !last?.activation?.getClassName) return undefined;
  return last.activation.getClassName() === 'softmax' ? (last as { activation: unknown }) : undefined;
}

/**
 * The mean training loss of a batch, as a function the optimizer can differentiate.
 *
 * For categorical crossentropy on a model that ends in softmax, the last layer's activation is
 * switched to linear for the training forward pass and the loss is taken from the logits with
 * tf.losses.softmaxCrossEntropy, whose gradient is the fused softmax(logits) - labels: the same
 * loss (Keras computes it from logits too), fewer and cheaper backward ops, no clipping at 1e-7.
 * The model itself is unchanged: predict() and evaluation still see probabilities.
 */
export function trainingLoss(
  model: tf.LayersModel,
  loss: LossName,
  lossFn: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor,
): (x: tf.Tensor, y: tf.Tensor) => tf.Scalar {
  const output = loss === 'categoricalCrossentropy' ? softmaxOutputLayer(model) : undefined;
  if (output) {
    const softmax = output.activation;
    const linear = (tf.layers.activation({ activation: 'linear' }) as unknown as { activation: unknown }).activation;
    return (x, y) => {
      output.activation = linear;
      let logits: tf.Tensor;
      try {
        logits = model.apply(x, { training: true }) as tf.Tensor;
      } finally {
        output.activation = softmax;
      }
      return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
    };
  }
  return (x, y) => tf.mean(lossFn(y, model.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar;
}

/**
 * One optimizer step on the assembled batch; returns the batch's loss as a tensor (never read
 * here: reading a tensor waits for the device, so the loop reads only when a metric is due).
 */
export function optimizerStep(
  optimizer: tf.Optimizer,
  variables: tf.Variable[],
  lossOf: (x: tf.Tensor, y: tf.Tensor) => tf.Scalar,
  batch: BatchAssembler,
): tf.Scalar {
  const adam = adamInternals(optimizer);
  return tf.tidy(() => {
    const x = tf.tensor(batch.x, batch.xShape);
    const y = tf.tensor(batch.y, batch.yShape);
    if (!adam) return optimizer.minimize(() => lossOf(x, y), true, variables)!;
    const { value, grads } = tf.variableGrads(() => lossOf(x, y), variables);
    adamApply(adam, variables, grads);
    return value;
  });
}

interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  incrementIterations(): void;
}

function adamInternals(optimizer: tf.Optimizer): AdamInternals | undefined {
  const o = optimizer as unknown as Partial<AdamInternals>;
  const ok =
    optimizer.getClassName() === 'Adam' &&
    typeof o.learningRate === 'number' &&
    o.accBeta1 instanceof tf.Variable &&
    Array.isArray(o.accumulatedFirstMoment) &&
    typeof o.incrementIterations === 'function';
  return ok ? (o as AdamInternals) : undefined;
}

/**
 * Adam's update on tfjs's own AdamOptimizer state (its m, v, accBeta1/2 and iteration count, so
 * checkpoints keep their format and load into a plain tfjs Adam), in 12 kernels per variable
 * instead of 14, with the constants made once per step instead of once per variable and use. The
 * bias corrections are folded into two scalars, alpha = -lr * sqrt(1 - b2^t) / (1 - b1^t) and
 * epsHat = eps * sqrt(1 - b2^t) (the Adam paper's "efficient" form): the same update as tfjs's
 * mHat / (sqrt(vHat) + eps), rounded differently.
 */
function adamApply(o: AdamInternals, variables: readonly tf.Variable[], grads: tf.NamedTensorMap): void {
  tf.tidy(() => {
    const b1 = tf.scalar(o.beta1);
    const b2 = tf.scalar(o.beta2);
    const c1 = tf.scalar(1 - o.beta1);
    const c2 = tf.scalar(1 - o.beta2);
    const one = tf.scalar(1);
    const root = tf.sqrt(tf.sub(one, o.accBeta2));
    const alpha = tf.div(tf.mul(tf.scalar(-o.learningRate), root), tf.sub(one, o.accBeta1));
    const epsHat = tf.mul(tf.scalar(o.epsilon), root);
    variables.forEach((value, i) => {
      const g = grads[value.name];
      if (!g) return;
      const m = (o.accumulatedFirstMoment[i] ??= { originalName: `${value.name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) }).variable;
      const v = (o.accumulatedSecondMoment[i] ??= { originalName: `${value.name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) }).variable;
      const m1 = tf.add(tf.mul(m, b1), tf.mul(g, c1));
      const v1 = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), c2));
      m.assign(m1);
      v.assign(v1);
      value.assign(tf.add(value, tf.mul(tf.div(m1, tf.add(tf.sqrt(v1), epsHat)), alpha)));
    });
    o.accBeta1.assign(tf.mul(o.accBeta1, b1));
    o.accBeta2.assign(tf.mul(o.accBeta2, b2));
  });
  o.incrementIterations();
}
