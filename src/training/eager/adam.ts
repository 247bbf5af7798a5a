/**
 * Adam's update on tfjs's own AdamOptimizer state (its m, v, accBeta1/2 and iteration count, so
 * checkpoints keep their format and load into a plain tfjs Adam), in 12 kernels per variable and
 * none for the step's scalars.
 *
 * The bias corrections are folded into two scalars, alpha = -lr * sqrt(1 - b2^t) / (1 - b1^t) and
 * epsHat = eps * sqrt(1 - b2^t) (the Adam paper's "efficient" form): the same update as tfjs's
 * mHat / (sqrt(vHat) + eps), rounded differently. Those scalars and the running beta powers are
 * computed in JavaScript with float32 rounding after every operation (Math.fround), which is what
 * TensorFlow's float32 scalar kernels compute (IEEE add, multiply, divide and sqrt are correctly
 * rounded, and a double result rounded once to float32 is the float32 result), so they cost
 * uploads, not kernels. The beta powers are stored back as fresh scalars: a tensor made from a JS
 * value is read back without a call into TensorFlow.
 */
import * as tf from '@tensorflow/tfjs';

export interface AdamInternals {
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

export function adamInternals(optimizer: tf.Optimizer): AdamInternals | undefined {
  const o = optimizer as unknown as Partial<AdamInternals>;
  const ok =
    optimizer.getClassName() === 'Adam' &&
    typeof o.learningRate === 'number' &&
    o.accBeta1 instanceof tf.Variable &&
    Array.isArray(o.accumulatedFirstMoment) &&
    typeof o.incrementIterations === 'function';
  return ok ? (o as AdamInternals) : undefined;
}

const f32 = Math.fround;

export function adamApply(o: AdamInternals, variables: readonly tf.Variable[], grads: tf.NamedTensorMap): void {
  const acc1 = o.accBeta1.dataSync()[0]!;
  const acc2 = o.accBeta2.dataSync()[0]!;
  const b1 = f32(o.beta1);
  const b2 = f32(o.beta2);
  const root = f32(Math.sqrt(f32(1 - acc2)));
  const alpha = f32(f32(f32(-o.learningRate) * root) / f32(1 - acc1));
  const epsHat = f32(f32(o.epsilon) * root);
  tf.tidy(() => {
    const tb1 = tf.scalar(b1);
    const tb2 = tf.scalar(b2);
    const c1 = tf.scalar(1 - o.beta1);
    const c2 = tf.scalar(1 - o.beta2);
    const tAlpha = tf.scalar(alpha);
    const tEpsHat = tf.scalar(epsHat);
    variables.forEach((value, i) => {
      const g = grads[value.name];
      if (!g) return;
      const m = (o.accumulatedFirstMoment[i] ??= { originalName: `${value.name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) }).variable;
      const v = (o.accumulatedSecondMoment[i] ??= { originalName: `${value.name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) }).variable;
      const m1 = tf.add(tf.mul(m, tb1), tf.mul(g, c1));
      const v1 = tf.add(tf.mul(v, tb2), tf.mul(tf.square(g), c2));
      m.assign(m1);
      v.assign(v1);
      value.assign(tf.add(value, tf.mul(tf.div(m1, tf.add(tf.sqrt(v1), tEpsHat)), tAlpha)));
    });
    o.accBeta1.assign(tf.scalar(f32(acc1 * b1)));
    o.accBeta2.assign(tf.scalar(f32(acc2 * b2)));
  });
  o.incrementIterations();
}
