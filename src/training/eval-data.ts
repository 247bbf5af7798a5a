/**
 * What evaluation reads: a whole in-memory Dataset, or an EvalStream (a streamed dataset, read
 * shard after shard in a fixed order, bounded memory). Both are seen through `evalBatches`, which
 * gives the same consecutive batches of the same examples either way, so a route's metrics (sums
 * over batches of 512, divided by the examples counted) are equal to the last bit whichever way
 * the data came.
 */
import type { Dataset, DatasetShapes } from './dataset';

/** One evaluation batch: `n` examples, row after row; the arrays are valid until the next batch is asked for. */
export interface EvalBatch {
  readonly x: Float32Array;
  readonly y: Float32Array;
  readonly n: number;
}

/** A dataset evaluation reads batch after batch instead of holding it whole. */
export interface EvalStream extends DatasetShapes {
  readonly kind: 'stream';
  /** Consecutive batches of `batchSize` examples in the dataset's order (the last may be shorter). */
  batches(batchSize: number): AsyncIterable<EvalBatch>;
  /** Examples the last complete pass of `batches` gave (undefined before one completed). */
  readonly counted: number | undefined;
  /** Releases what the stream holds when no pass will follow (a stream opened only for its shapes). */
  close?(): void;
}

export type EvalData = Dataset | EvalStream;

export function isEvalStream(data: EvalData): data is EvalStream {
  return (data as EvalStream).kind === 'stream';
}

/** The batches of `data`, in order: views into a Dataset's arrays, or a stream's own batches. */
export async function* evalBatches(data: EvalData, batchSize: number): AsyncGenerator<EvalBatch> {
  if (isEvalStream(data)) {
    yield* data.batches(batchSize);
    return;
  }
  let xw = 1;
  for (const d of data.xShape) xw *= d;
  let yw = 1;
  for (const d of data.yShape) yw *= d;
  for (let start = 0; start < data.size; start += batchSize) {
    const n = Math.min(batchSize, data.size - start);
    yield { x: data.x.subarray(start * xw, (start + n) * xw), y: data.y.subarray(start * yw, (start + n) * yw), n };
  }
}

/** Examples an evaluation of `data` covered (a stream: its last complete pass). */
export function evalExamples(data: EvalData): number {
  if (!isEvalStream(data)) return data.size;
  if (data.counted === undefined) throw new Error('evalExamples of a stream before a complete pass');
  return data.counted;
}

/** Rows of decoded examples, as a shard or a block of a stream gives them. */
export interface ExampleRows {
  readonly records: number;
  readonly x: Float32Array;
  readonly y: Float32Array;
}

/**
 * Cuts a stream's decoded shards (or blocks), in order, into evaluation batches of `batchSize`
 * across their edges: what every EvalStream's `batches` does, so they all give the same batches
 * as `evalBatches` over the same examples in memory.
 */
export class EvalBatcher {
  private x: Float32Array;
  private y: Float32Array;
  private fill = 0;
  /** Examples added so far. */
  total = 0;

  constructor(
    private readonly batchSize: number,
    private readonly xw: number,
    private readonly yw: number,
  ) {
    this.x = new Float32Array(batchSize * xw);
    this.y = new Float32Array(batchSize * yw);
  }

  /** Adds the first `max` (default all) rows of `d`, yielding each batch they fill. */
  *add(d: ExampleRows, max = Number.POSITIVE_INFINITY): Generator<EvalBatch> {
    const { batchSize, xw, yw } = this;
    const end = Math.min(d.records, max);
    for (let o = 0; o < end; ) {
      const k = Math.min(batchSize - this.fill, end - o);
      this.x.set(d.x.subarray(o * xw, (o + k) * xw), this.fill * xw);
      this.y.set(d.y.subarray(o * yw, (o + k) * yw), this.fill * yw);
      o += k;
      this.fill += k;
      this.total += k;
      if (this.fill === batchSize) {
        yield { x: this.x, y: this.y, n: this.fill };
        // A fresh batch: the consumer's tensors may still read the last one.
        this.x = new Float32Array(batchSize * xw);
        this.y = new Float32Array(batchSize * yw);
        this.fill = 0;
      }
    }
  }

  /** The last, shorter batch, if any rows are left. */
  *finish(): Generator<EvalBatch> {
    if (this.fill > 0) yield { x: this.x.subarray(0, this.fill * this.xw), y: this.y.subarray(0, this.fill * this.yw), n: this.fill };
    this.fill = 0;
  }
}
