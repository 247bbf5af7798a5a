/**
 * Batch assembly shared by every route: the examples of global step `step` are a pure function of
 * (seed, step) (rng.ts's BatchSampler), copied into two buffers allocated once.
 */
import { product, type Dataset } from './dataset';
import { BatchSampler } from './rng';

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
  private readonly sampler: BatchSampler;
  private readonly indices: Uint32Array;
  private readonly xw: number;
  private readonly yw: number;

  constructor(private readonly data: Dataset, readonly batchSize: number, seed: number) {
    this.sampler = new BatchSampler(data.size, batchSize, seed);
    this.indices = new Uint32Array(batchSize);
    this.xw = product(data.xShape);
    this.yw = product(data.yShape);
    this.x = new Float32Array(batchSize * this.xw);
    this.y = new Float32Array(batchSize * this.yw);
    this.xShape = [batchSize, ...data.xShape];
    this.yShape = [batchSize, ...data.yShape];
  }

  /** Fills `x` and `y` with the batch of global step `step` (1-based), a pure function of (seed, step). */
  fill(step: number): void {
    const { data, xw, yw, x, y, indices } = this;
    this.sampler.indices(step - 1, indices);
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      x.set(data.x.subarray(i * xw, (i + 1) * xw), k * xw);
      y.set(data.y.subarray(i * yw, (i + 1) * yw), k * yw);
    }
  }
}
