/**
 * Adam's update on tfjs's own AdamOptimizer state (its m, v, accBeta1/2 and iteration count, so
 * checkpoints keep their format and load into a plain tfjs Adam), in 12 kernels per variable (none
 * for a small variable on a CPU backend: see jsUpdateMax) and none for the step's scalars.
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

/**
 * Variables of up to this many elements are updated in JavaScript when the backend computes on
 * this machine's CPU: a kernel call on tfjs-node costs ~15–20 µs of CPU besides its arithmetic, so
 * a variable's 12 cost ~0.2 ms, what the JS loop (~10–20 ns per element) spends on ~10–20 k
 * elements (measured on 2 cores: a 256x256 kernel is cheaper on the backend, biases and small
 * kernels in JS). DT_ADAM_JS_MAX overrides it (0: never).
 */
function jsUpdateMax(): number {
  const fromEnv = Number(process.env.DT_ADAM_JS_MAX);
  if (process.env.DT_ADAM_JS_MAX !== undefined && Number.isInteger(fromEnv) && fromEnv >= 0) return fromEnv;
  const backend = tf.getBackend();
  const onCpu = backend === 'cpu' || backend === 'wasm' || (backend === 'tensorflow' && !(tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice);
  return onCpu ? 16384 : 0;
}

interface Scalars {
  b1: number;
  b2: number;
  c1: number;
  c2: number;
  alpha: number;
  epsHat: number;
}

/**
 * The update of one variable in JavaScript, operation for operation the kernels' float32
 * arithmetic below (each result rounded to float32). The new m, v and value are fresh tensors made
 * from JS arrays (never written in place: a snapshot may share the old ones).
 */
function updateInJs(value: tf.Variable, g: tf.Tensor, m: tf.Variable, v: tf.Variable, k: Scalars): void {
  const gs = g.dataSync() as Float32Array;
  const ms = m.dataSync() as Float32Array;
  const vs = v.dataSync() as Float32Array;
  const xs = value.dataSync() as Float32Array;
  const m1 = new Float32Array(gs.length);
  const v1 = new Float32Array(gs.length);
  const x1 = new Float32Array(gs.length);
  const { b1, b2, c1, c2, alpha, epsHat } = k;
  for (let j = 0; j < gs.length; j++) {
    const gj = gs[j]!;
    const mj = f32(f32(ms[j]! * b1) + f32(gj * c1));
    const vj = f32(f32(vs[j]! * b2) + f32(f32(gj * gj) * c2));
    m1[j] = mj;
    v1[j] = vj;
    x1[j] = f32(xs[j]! + f32(f32(mj / f32(f32(Math.sqrt(vj)) + epsHat)) * alpha));
  }
  m.assign(tf.tensor(m1, m.shape));
  v.assign(tf.tensor(v1, v.shape));
  value.assign(tf.tensor(x1, value.shape));
}

export function adamApply(o: AdamInternals, variables: readonly tf.Variable[], grads: tf.NamedTensorMap): void {
  const acc1 = o.accBeta1.dataSync()[0]!;
  const acc2 = o.accBeta2.dataSync()[0]!;
  const root = f32(Math.sqrt(f32(1 - acc2)));
  const k: Scalars = {
    b1: f32(o.beta1),
    b2: f32(o.beta2),
    c1: f32(1 - o.beta1),
    c2: f32(1 - o.beta2),
    alpha: f32(f32(f32(-o.learningRate) * root) / f32(1 - acc1)),
    epsHat: f32(f32(o.epsilon) * root),
  };
  const jsMax = jsUpdateMax();
  tf.tidy(() => {
    let t: Record<keyof Scalars, tf.Scalar> | undefined;
    variables.forEach((value, i) => {
      const g = grads[value.name];
      if (!g) return;
      const m = (o.accumulatedFirstMoment[i] ??= { originalName: `${value.name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) }).variable;
      const v = (o.accumulatedSecondMoment[i] ??= { originalName: `${value.name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) }).variable;
      if (value.size <= jsMax) return updateInJs(value, g, m, v, k);
      t ??= { b1: tf.scalar(k.b1), b2: tf.scalar(k.b2), c1: tf.scalar(k.c1), c2: tf.scalar(k.c2), alpha: tf.scalar(k.alpha), epsHat: tf.scalar(k.epsHat) };
      const m1 = tf.add(tf.mul(m, t.b1), tf.mul(g, t.c1));
      const v1 = tf.add(tf.mul(v, t.b2), tf.mul(tf.square(g), t.c2));
      m.assign(m1);
      v.assign(v1);
      value.assign(tf.add(value, tf.mul(tf.div(m1, tf.add(tf.sqrt(v1), t.epsHat)), t.alpha)));
    });
    o.accBeta1.assign(tf.scalar(f32(acc1 * k.b1)));
    o.accBeta2.assign(tf.scalar(f32(acc2 * k.b2)));
  });
  o.incrementIterations();
}
