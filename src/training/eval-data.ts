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
