/**
 * Batch assembly shared by every route: the examples of global step `step` are a pure function of
 * (seed, step), copied into two buffers allocated once. In-memory datasets draw them with rng.ts's
 * BatchSampler; streamed ones (src/data/) are an ExampleSource, whose order is its own pure
 * function of (seed, step) and which reads ahead between steps (`prepare`).
 */
import { product, type Dataset } from './dataset';
import { BatchSampler } from './rng';

/**
 * Examples addressed by step rather than held in two arrays: what a streamed dataset gives the
 * step loop. `prepare(step)` is awaited between steps (reads and decoding happen there and in the
 * background); `fill(step)` then copies without waiting.
 */
export interface ExampleSource {
  readonly xShape: readonly number[];
  readonly yShape: readonly number[];
  /** Resolves once `fill(step)` can run; may start reading ahead for the steps after it. */
  prepare(step: number): Promise<void>;
  /** Copies the examples of global step `step` (1-based) into `x` and `y`; only after `prepare(step)` resolved. */
  fill(step: number, x: Float32Array, y: Float32Array): void;
  /** Drops what it holds (buffers, read-ahead). */
  close(): void;
}

function isSource(d: Dataset | ExampleSource): d is ExampleSource {
  return typeof (d as ExampleSource).prepare === 'function';
}

/**
 * Copies the examples of global step `step` into two buffers allocated once. Fresh arrays cost
 * about as much as the copy itself (zero-filling, page faults); tfjs-node copies a typed array
 * into TensorFlow when the tensor is first used, so reusing the buffers on the next step is safe.
 */
export class BatchAssembler {
  readonly x: Float32Array;
  readonly y: Float32Array;
  readonly xShape: number[];
  readonly yShape: number[];
  private readonly sampler: BatchSampler | undefined;
  private readonly source: ExampleSource | undefined;
  private readonly indices: Uint32Array;
  private readonly xw: number;
  private readonly yw: number;
  private readonly data: Dataset | undefined;

  constructor(data: Dataset | ExampleSource, readonly batchSize: number, seed: number) {
    if (isSource(data)) {
      this.source = data;
    } else {
      this.data = data;
      this.sampler = new BatchSampler(data.size, batchSize, seed);
    }
    this.indices = new Uint32Array(this.sampler ? batchSize : 0);
    this.xw = product(data.xShape);
    this.yw = product(data.yShape);
    this.x = new Float32Array(batchSize * this.xw);
    this.y = new Float32Array(batchSize * this.yw);
    this.xShape = [batchSize, ...data.xShape];
    this.yShape = [batchSize, ...data.yShape];
  }

  /** A streamed source's read of step `step`, to await before `fill(step)`; undefined for in-memory data. */
  prepare(step: number): Promise<void> | undefined {
    return this.source?.prepare(step);
  }

  /** Fills `x` and `y` with the batch of global step `step` (1-based), a pure function of (seed, step). */
  fill(step: number): void {
    if (this.source) {
      this.source.fill(step, this.x, this.y);
      return;
    }
    const { data, xw, yw, x, y, indices } = this;
    this.sampler!.indices(step - 1, indices);
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      x.set(data!.x.subarray(i * xw, (i + 1) * xw), k * xw);
      y.set(data!.y.subarray(i * yw, (i + 1) * yw), k * yw);
    }
  }
}
