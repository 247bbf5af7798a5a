/**
 * A user's own streamed dataset: records addressed by index, read in blocks, never held whole.
 * Registered in the trainer module (`DT_TRAINER_MODULE`, or the plugin's trainer module) with
 * `datasets.registerStreamed(name, factory)`; docs/streamed-datasets.md and
 * examples/streamed-dataset/ show one. The project supplies everything else, with the guarantees
 * of the built-in `sharded` dataset (src/data/):
 *   - order: blocks of `blockSize` records are shuffled per epoch and records within windows of
 *     `shuffleWindow` (src/data/order.ts, Mosaic's py1b), so the examples of step s are a pure
 *     function of (seed, s, size, blockSize, shuffleWindow);
 *   - resume: a resumed run computes its position from the step; nothing before it is read;
 *   - memory: decoded blocks in the DT_DATA_CACHE_BYTES LRU cache, read ahead window by window;
 *   - evaluation: `data.eval` naming a streamed dataset reads it block after block, in index order.
 * What the user promises: `read(start, count)` returns the same values every time for the same
 * range (a run reads exactly the data it started on), and `size` does not change under a run.
 */
import type { DatasetSpec } from '../config/train-config';
import { dataCacheBytesFromEnv, BlockSource } from '../data/streamed';
import type { DecodedShard } from '../data/records';
import { product, type Dataset, type DatasetShapes } from './dataset';
import { EvalBatcher, type EvalBatch, type EvalStream } from './eval-data';
import { NonRetryableTrainingError } from './protocol';

/** The contract a user's streamed dataset implements. */
export interface RecordSource {
  /** Shape of one example's features, e.g. [784] or [28, 28, 1]. */
  readonly xShape: readonly number[];
  /** Shape of one example's target, e.g. [10] (one-hot) or [1]. */
  readonly yShape: readonly number[];
  /** Records in the dataset: one epoch. The same for the whole run. */
  readonly size: number;
  /** Records read together by one `read` (a file, a row group, a page of a query). @default 1024 */
  readonly blockSize?: number;
  /** Records shuffled together (consecutive blocks). @default 16384 */
  readonly shuffleWindow?: number;
  /** What the targets are, if known: a model's loss is checked against it. */
  readonly task?: 'classification' | 'regression';
  /**
   * Records [start, start + count), features then targets, row after row (count × product(xShape)
   * and count × product(yShape) numbers). Always the same values for the same range.
   */
  read(start: number, count: number): Promise<{ readonly x: Float32Array; readonly y: Float32Array }>;
  /** Releases what the source holds (files, connections). */
  close?(): void | Promise<void>;
}

/** Builds a streamed dataset from the run's spec (`params`, `split`). */
export type RecordSourceFactory = (spec: DatasetSpec) => RecordSource | Promise<RecordSource>;

export const DEFAULT_BLOCK_SIZE = 1024;
export const DEFAULT_USER_SHUFFLE_WINDOW = 16_384;

function wholeFrom(name: string, field: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new NonRetryableTrainingError(`Expected \`${field}\` of streamed dataset \`${name}\` to be a whole number from ${min} up, got ${JSON.stringify(v) ?? String(v)}`);
  }
  return v;
}

function shapeOf(name: string, field: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 8 || !v.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 1)) {
    throw new NonRetryableTrainingError(`Expected \`${field}\` of streamed dataset \`${name}\` to be a list of 1 to 8 whole numbers from 1 up, got ${JSON.stringify(v) ?? String(v)}`);
  }
  return v as number[];
}

/** The source's declared sizes, checked (a user's module is untrusted input to the trainer). */
export function checkRecordSource(name: string, s: RecordSource): { xShape: number[]; yShape: number[]; size: number; blockSize: number; shuffleWindow: number } {
  if (s === null || typeof s !== 'object' || typeof s.read !== 'function') {
    throw new NonRetryableTrainingError(`Expected the factory of streamed dataset \`${name}\` to return an object with \`read(start, count)\`, got ${s === null ? 'null' : typeof s}`);
  }
  return {
    xShape: shapeOf(name, 'xShape', s.xShape),
    yShape: shapeOf(name, 'yShape', s.yShape),
    size: wholeFrom(name, 'size', s.size, 1),
    blockSize: s.blockSize === undefined ? DEFAULT_BLOCK_SIZE : wholeFrom(name, 'blockSize', s.blockSize, 1),
    shuffleWindow: s.shuffleWindow === undefined ? DEFAULT_USER_SHUFFLE_WINDOW : wholeFrom(name, 'shuffleWindow', s.shuffleWindow, 1),
  };
}

/** Reads block `i` through the user's `read`, checking what came back. */
async function readBlock(name: string, s: RecordSource, start: number, count: number, xw: number, yw: number): Promise<DecodedShard> {
  const got = await s.read(start, count);
  const ok = got && got.x instanceof Float32Array && got.y instanceof Float32Array && got.x.length === count * xw && got.y.length === count * yw;
  if (!ok) {
    const shown = (a: unknown) => (a instanceof Float32Array ? `a Float32Array of ${a.length}` : a === undefined ? 'nothing' : typeof a);
    throw new NonRetryableTrainingError(
      `Expected \`read(${start}, ${count})\` of streamed dataset \`${name}\` to give x and y as Float32Arrays of ${count * xw} and ${count * yw} numbers, got x ${shown(got?.x)} and y ${shown(got?.y)}`,
    );
  }
  return { records: count, x: got.x, y: got.y };
}

function blockCounts(size: number, blockSize: number): number[] {
  const counts: number[] = [];
  for (let start = 0; start < size; start += blockSize) counts.push(Math.min(blockSize, size - start));
  return counts;
}

/** A user's streamed dataset as the step loop's ExampleSource. */
export class UserBlockSource extends BlockSource {
  readonly size: number;
  readonly blockSize: number;

  constructor(
    readonly name: string,
    readonly source: RecordSource,
    batchSize: number,
    seed: number,
    options: { readonly cacheBytes?: number; readonly limit?: number } = {},
  ) {
    const c = checkRecordSource(name, source);
    const size = Math.min(c.size, options.limit ?? Number.MAX_SAFE_INTEGER);
    const counts = blockCounts(size, c.blockSize);
    super(counts, counts, c.xShape, c.yShape, batchSize, seed, c.shuffleWindow, options.cacheBytes ?? dataCacheBytesFromEnv());
    this.size = size;
    this.blockSize = c.blockSize;
  }

  protected loadBlock(i: number): Promise<DecodedShard> {
    const start = i * this.blockSize;
    return readBlock(this.name, this.source, start, Math.min(this.blockSize, this.size - start), product(this.xShape), product(this.yShape));
  }

  override shapes(): Dataset {
    return { ...super.shapes(), ...(this.source.task && { task: this.source.task }) };
  }

  override close(): void {
    super.close();
    void Promise.resolve(this.source.close?.()).catch(() => undefined);
  }
}

/** A user's streamed dataset as evaluation reads it: blocks in index order, one read ahead, batches across block edges; one pass, then the source is closed. */
export class UserEvalStream implements EvalStream {
  readonly kind = 'stream';
  readonly xShape: readonly number[];
  readonly yShape: readonly number[];
  readonly task?: DatasetShapes['task'];
  counted: number | undefined;
  private readonly size: number;
  private readonly blockSize: number;

  constructor(
    readonly name: string,
    readonly source: RecordSource,
    limit?: number,
  ) {
    const c = checkRecordSource(name, source);
    this.xShape = c.xShape;
    this.yShape = c.yShape;
    this.size = Math.min(c.size, limit ?? Number.MAX_SAFE_INTEGER);
    this.blockSize = c.blockSize;
    if (source.task) this.task = source.task;
  }

  async *batches(batchSize: number): AsyncGenerator<EvalBatch> {
    const xw = product(this.xShape);
    const yw = product(this.yShape);
    const read = (start: number): Promise<DecodedShard> | undefined => {
      if (start >= this.size) return undefined;
      const p = readBlock(this.name, this.source, start, Math.min(this.blockSize, this.size - start), xw, yw);
      p.catch(() => undefined);
      return p;
    };
    if (this.closed) throw new Error(`UserEvalStream of \`${this.name}\`: one pass only (the source is closed after it)`);
    let next = read(0);
    try {
      yield* this.pass(next, read, batchSize, xw, yw);
    } finally {
      this.closed = true;
      next = undefined;
      void Promise.resolve(this.source.close?.()).catch(() => undefined);
    }
  }

  private closed = false;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    void Promise.resolve(this.source.close?.()).catch(() => undefined);
  }

  private async *pass(first: Promise<DecodedShard> | undefined, read: (start: number) => Promise<DecodedShard> | undefined, batchSize: number, xw: number, yw: number): AsyncGenerator<EvalBatch> {
    const batcher = new EvalBatcher(batchSize, xw, yw);
    let next = first;
    for (let start = 0; next; start += this.blockSize) {
      const d = await next;
      next = read(start + this.blockSize);
      yield* batcher.add(d);
    }
    yield* batcher.finish();
    this.counted = batcher.total;
  }
}
