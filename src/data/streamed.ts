/**
 * The `sharded` dataset in the trainer: training streams it (ShardedSource, an ExampleSource for the
 * step loop), and so does evaluation (ShardedEvalStream); shardedDataset loads it whole within a
 * bound for callers that ask the registry for arrays.
 *
 * ShardedSource holds decoded shards in a cache of at most DT_DATA_CACHE_BYTES (least recently used
 * out; the shards the current batch reads are never dropped, so a batch that needs more than the
 * limit still trains, slower). Between steps it awaits only the shards of the next batch; meanwhile
 * it reads ahead: the shards of the current shuffle window and of the next one start loading (I/O
 * in libuv's pool; gunzip and parsing on the decode pool's worker threads, decode-pool.ts) as long
 * as their decoded size fits the limit: the step loop only copies decoded rows into batches.
 */
import os from 'node:os';
import type { Storage } from '@google-cloud/storage';
import type { CheckpointStore } from '../checkpoints/store';
import { checkShardedParams, type ShardedParams } from '../config/sharded-data';
import type { DatasetSpec } from '../config/train-config';
import { Checker, formatIssue } from '../config/validate';
import type { ExampleSource } from '../training/batch';
import { product, type Dataset } from '../training/dataset';
import { EvalBatcher, type EvalBatch, type EvalStream } from '../training/eval-data';
import { NonRetryableTrainingError } from '../training/protocol';
import type { Preprocessing } from '../training/tabular-preprocess';
import { openRunData, type DataIndex } from './data-index';
import { decodeOffThread, type DecodePool } from './decode-pool';
import { ShardedOrder } from './order';
import { transformRows } from './preprocess';
import { decodeShardBytes, rowWidth, type DecodedShard, type RowLayout } from './records';
import { readShardBytes } from './reader';
import { bad, listShards, type ListOptions, type ShardInfo } from './source';

export const DATA_CACHE_BYTES_ENV = 'DT_DATA_CACHE_BYTES';

/** `DT_DATA_CACHE_BYTES`, else an eighth of the machine's memory. */
export function dataCacheBytesFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[DATA_CACHE_BYTES_ENV];
  if (raw === undefined || raw.trim() === '') return Math.floor(os.totalmem() / 8);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`Expected \`${DATA_CACHE_BYTES_ENV}\` to be a whole number of bytes from 0 up, got ${JSON.stringify(raw)}`);
  return n;
}

/** The params of a `sharded` spec, checked as the workflow checks them (non-retryable, naming the field). */
export function shardedParamsOf(spec: DatasetSpec): ShardedParams {
  const c = new Checker();
  const params = checkShardedParams(c, 'dataset sharded', spec.split, spec.params);
  if (!params) bad(c.issues.map(formatIssue).join('; '));
  return params;
}

export interface ShardedSourceOptions {
  /** @default dataCacheBytesFromEnv() */
  readonly cacheBytes?: number;
  readonly storage?: Storage;
  /** The spec's `limit`: only the first N records, in listing order, make the dataset. */
  readonly limit?: number;
  /** Where shards are parsed: undefined, the process's pool (decode-pool.ts); null, the main thread. */
  readonly decodePool?: DecodePool | null;
  /** The run's fitted transform (`params.normalize`, data/preprocess.ts), applied to every decoded shard. */
  readonly preprocessing?: Preprocessing;
}

interface Entry {
  readonly promise: Promise<DecodedShard>;
  shard?: DecodedShard;
}

/**
 * Examples in blocks (a shard, a user's range of records) read on demand in ShardedOrder's order,
 * held in a byte-bounded LRU cache and read ahead window by window: what the step loop sees of any
 * streamed dataset. A subclass says how to read block `i` and how many rows each block holds.
 */
export abstract class BlockSource implements ExampleSource {
  readonly xShape: readonly number[];
  readonly yShape: readonly number[];
  readonly order: ShardedOrder;
  readonly cacheBytes: number;
  private readonly xw: number;
  private readonly yw: number;
  /** Insertion order is use order: the first entry is the least recently used. */
  private readonly cache = new Map<number, Entry>();
  private pinned = new Set<number>();
  private prepared = { step: -1, shards: new Uint32Array(0), offsets: new Float64Array(0) };
  private aheadFor = '';
  /** Counters for tests and logs: shard reads started, prepares that had to wait for one, and how long they waited. */
  readonly stats = { reads: 0, waits: 0, waitMs: 0 };

  /**
   * `counts[i]`: records of block i in the order (after any limit); `rows[i]`: rows a load of block i
   * holds decoded (what the cache counts); `shuffleWindow`: ShardedOrder's window.
   */
  constructor(
    counts: readonly number[],
    private readonly rows: readonly number[],
    xShape: readonly number[],
    yShape: readonly number[],
    readonly batchSize: number,
    seed: number,
    readonly shuffleWindow: number,
    cacheBytes: number,
  ) {
    this.order = new ShardedOrder(counts, seed, shuffleWindow);
    this.xw = product(xShape);
    this.yw = product(yShape);
    this.xShape = xShape;
    this.yShape = yShape;
    this.cacheBytes = cacheBytes;
  }

  /** Reads and decodes block `i` (all `rows[i]` of its rows). */
  protected abstract loadBlock(i: number): Promise<DecodedShard>;

  /** Decoded bytes of block `i` (known before it is read). */
  private bytesOf(i: number): number {
    return this.rows[i]! * (this.xw + this.yw) * 4;
  }

  /** What the cache holds now (decoded shards, read or being read) and the reads in flight. */
  held(): { readonly shards: number[]; readonly bytes: number; readonly pinnedBytes: number; readonly settled: Promise<unknown> } {
    const entries = [...this.cache];
    return {
      shards: entries.map(([i]) => i),
      bytes: this.heldBytes(),
      pinnedBytes: [...this.pinned].reduce((a, i) => a + this.bytesOf(i), 0),
      settled: Promise.allSettled(entries.map(([, e]) => e.promise)),
    };
  }

  private heldBytes(): number {
    let bytes = 0;
    for (const i of this.cache.keys()) bytes += this.bytesOf(i);
    return bytes;
  }

  private load(i: number): Promise<DecodedShard> {
    const hit = this.cache.get(i);
    if (hit) {
      this.cache.delete(i);
      this.cache.set(i, hit);
      return hit.promise;
    }
    this.stats.reads++;
    const promise = this.loadBlock(i);
    const entry: Entry = { promise };
    this.cache.set(i, entry);
    promise.then(
      (d) => {
        entry.shard = d;
        this.evict();
      },
      () => {
        // A failed read is forgotten: the step that needs the shard reads it again (and fails itself if it must).
        if (this.cache.get(i) === entry) this.cache.delete(i);
      },
    );
    return promise;
  }

  /** Drops loaded shards, least recently used first, until the cache fits; the current batch's stay. */
  private evict(): void {
    let bytes = this.heldBytes();
    for (const [i, entry] of [...this.cache]) {
      if (bytes <= this.cacheBytes) return;
      if (!entry.shard || this.pinned.has(i)) continue;
      this.cache.delete(i);
      bytes -= this.bytesOf(i);
    }
  }

  async prepare(step: number): Promise<void> {
    const B = this.batchSize;
    const first = (step - 1) * B;
    const shards = new Uint32Array(B);
    const offsets = new Float64Array(B);
    const needed = new Set<number>();
    for (let k = 0; k < B; k++) {
      const at = this.order.locate(first + k);
      shards[k] = at.shard;
      offsets[k] = at.offset;
      needed.add(at.shard);
    }
    this.pinned = needed;
    const loads = [...needed].map((i) => this.load(i));
    if ([...needed].some((i) => !this.cache.get(i)?.shard)) {
      this.stats.waits++;
      const from = performance.now();
      await Promise.all(loads);
      this.stats.waitMs += performance.now() - from;
    }
    await Promise.all(loads);
    this.prepared = { step, shards, offsets };
    this.readAhead(first + B);
    this.evict();
  }

  /**
   * Starts reading the shards of the window of example `g` and of the window after it, in the order
   * they are needed, as far as they fit in the cache beside the current batch's shards; the shards
   * wanted become the most recently used, so what the cache drops first is what no window ahead needs.
   */
  private readAhead(g: number): void {
    const { epoch, window } = this.order.windowOf(g);
    const key = `${epoch}:${window}`;
    if (key === this.aheadFor) return;
    this.aheadFor = key;
    const next = window + 1 < this.order.windowsPerEpoch ? { epoch, window: window + 1 } : { epoch: epoch + 1, window: 0 };
    const wanted = [...new Set([...this.order.windowShards(epoch, window), ...this.order.windowShards(next.epoch, next.window)])];
    let bytes = 0;
    for (const i of this.pinned) bytes += this.bytesOf(i);
    for (const i of wanted) {
      if (this.pinned.has(i)) continue;
      if (bytes + this.bytesOf(i) > this.cacheBytes) break;
      bytes += this.bytesOf(i);
      this.load(i).catch(() => undefined);
    }
  }

  /** What a route builds a model from: the shapes and size, no examples. */
  shapes(): Dataset {
    return { x: new Float32Array(0), y: new Float32Array(0), xShape: this.xShape, yShape: this.yShape, size: this.order.size };
  }

  fill(step: number, x: Float32Array, y: Float32Array): void {
    const p = this.prepared;
    if (p.step !== step) throw new Error(`ShardedSource.fill(${step}) without prepare(${step}) (prepared: ${p.step})`);
    const { xw, yw } = this;
    for (let k = 0; k < p.shards.length; k++) {
      const d = this.cache.get(p.shards[k]!)!.shard!;
      const o = p.offsets[k]!;
      x.set(d.x.subarray(o * xw, (o + 1) * xw), k * xw);
      y.set(d.y.subarray(o * yw, (o + 1) * yw), k * yw);
    }
  }

  close(): void {
    this.cache.clear();
    this.pinned.clear();
  }
}

/** The `sharded` dataset's training stream: blocks are the shards of the run's data index, read pinned to it. */
export class ShardedSource extends BlockSource {
  private readonly transform: ((d: DecodedShard) => DecodedShard) | undefined;

  constructor(
    readonly index: DataIndex,
    readonly params: ShardedParams,
    batchSize: number,
    seed: number,
    private readonly options: ShardedSourceOptions = {},
  ) {
    let left = options.limit ?? Number.MAX_SAFE_INTEGER;
    const counts = index.shards.map((s) => {
      const n = Math.min(s.records, left);
      left -= n;
      return n;
    });
    super(
      counts,
      index.shards.map((s) => s.records),
      [rowWidth(index.layout)],
      [index.layout.yWidth],
      batchSize,
      seed,
      params.shuffleWindow,
      options.cacheBytes ?? dataCacheBytesFromEnv(),
    );
    this.transform = options.preprocessing && transformRows(options.preprocessing, params, index.layout);
  }

  /** The shapes, and the run's transform (what checkpoints carry and the export writes beside the model). */
  override shapes(): Dataset {
    return { ...super.shapes(), ...(this.options.preprocessing && { preprocessing: this.options.preprocessing }) };
  }

  protected async loadBlock(i: number): Promise<DecodedShard> {
    const shard = this.index.shards[i]!;
    const { bytes } = await readShardBytes(shard, this.options.storage);
    const decoded = (await decodeOffThread(bytes, shard.uri, this.params, this.index.layout, this.options.decodePool)).shard!;
    if (decoded.records !== shard.records) bad(`Shard ${shard.uri} of \`params.uri\` now decodes to ${decoded.records} records, the run recorded ${shard.records}`);
    return this.transform ? this.transform(decoded) : decoded;
  }

  /** Decoded bytes the shards of one window may take (the window plus the largest shard at each edge): what the cache should hold. */
  windowBytes(): number {
    const largest = this.index.shards.reduce((a, s) => Math.max(a, s.records), 0);
    return (Math.min(this.params.shuffleWindow, this.order.size) + 2 * largest) * (product(this.xShape) + product(this.yShape)) * 4;
  }

}

/** Runs `fn`; a non-retryable failure naming `params.*` is re-raised naming `<field>.params.*` (`data.train.params.uri`). */
export async function naming<T>(field: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof NonRetryableTrainingError) throw new NonRetryableTrainingError(err.message.replace(/`(dataset sharded\.)?params\b/g, `\`${field}.params`));
    throw err;
  }
}

/** Opens the run's streamed training data (`data.train`): the data index (built or checked, data-index.ts), then the source. */
export async function openShardedSource(
  store: CheckpointStore,
  spec: DatasetSpec,
  batchSize: number,
  seed: number,
  options: ShardedSourceOptions & { readonly log?: (m: string) => void; readonly previous?: ShardedSource } = {},
): Promise<ShardedSource> {
  const params = await naming('data.train', async () => shardedParamsOf(spec));
  const { index, preprocessing } = await naming('data.train', () =>
    openRunData(store, params, { ...(options.storage && { storage: options.storage }), ...(options.log && { log: options.log }) }),
  );
  // The same run and data as the previous request: keep its decoded shards.
  const previous = options.previous;
  if (previous && JSON.stringify(previous.index) === JSON.stringify(index) && JSON.stringify(previous.shapes().preprocessing) === JSON.stringify(preprocessing)) return previous;
  const source = new ShardedSource(index, params, batchSize, seed, {
    ...(options.cacheBytes !== undefined && { cacheBytes: options.cacheBytes }),
    ...(options.storage && { storage: options.storage }),
    ...(spec.limit !== undefined && { limit: spec.limit }),
    ...(options.decodePool !== undefined && { decodePool: options.decodePool }),
    ...(preprocessing && { preprocessing }),
  });
  const needed = source.windowBytes();
  if (needed > source.cacheBytes) {
    options.log?.(
      `data: a shuffle window of ${params.shuffleWindow} records reads up to ${Math.round(needed / 1e6)} MB of decoded shards, more than the cache (${DATA_CACHE_BYTES_ENV}=${source.cacheBytes}): ` +
        'steps will read shards again and again; lower `shuffleWindow` or raise the cache',
    );
  }
  return source;
}

/** Bytes of decoded examples a whole load (`shardedDataset`) may hold. */
export const MAX_WHOLE_BYTES = 1024 * 1024 * 1024;

/**
 * A `sharded` evaluation set, streamed: its shards in listing order, one decoded and the next one
 * read ahead (memory: two shards and one batch, whatever the dataset's size), cut into consecutive
 * batches across shard boundaries: the same batches of the same rows as the whole dataset in
 * memory, so the metrics are equal to the last bit (eval-data.ts). `limit` keeps the first records.
 */
export class ShardedEvalStream implements EvalStream {
  readonly kind = 'stream';
  readonly xShape: readonly number[];
  readonly yShape: readonly number[];
  readonly task: 'classification' | 'regression';
  counted: number | undefined;
  /** Shard reads started, and the most decoded shards held at once (for tests: bounded memory). */
  readonly stats = { reads: 0, maxHeld: 0 };

  constructor(
    readonly shards: readonly ShardInfo[],
    readonly params: ShardedParams,
    readonly layout: RowLayout,
    private readonly options: { readonly limit?: number; readonly storage?: Storage; readonly decodePool?: DecodePool | null; readonly preprocessing?: Preprocessing } = {},
  ) {
    this.xShape = [rowWidth(layout)];
    this.yShape = [layout.yWidth];
    this.task = params.task;
    this.transform = options.preprocessing && transformRows(options.preprocessing, params, layout);
  }

  /** The training set's transform (never statistics of this set), if the run has one. */
  private readonly transform: ((d: DecodedShard) => DecodedShard) | undefined;

  private async decode(shard: ShardInfo): Promise<DecodedShard> {
    this.stats.reads++;
    const d = (await decodeOffThread((await readShardBytes(shard, this.options.storage)).bytes, shard.uri, this.params, this.layout, this.options.decodePool)).shard!;
    return this.transform ? this.transform(d) : d;
  }

  async *batches(batchSize: number): AsyncGenerator<EvalBatch> {
    const xw = this.xShape[0]!;
    const yw = this.yShape[0]!;
    const limit = this.options.limit ?? Number.MAX_SAFE_INTEGER;
    const stats = this.stats;
    const read = (i: number): Promise<DecodedShard> | undefined => {
      if (i >= this.shards.length) return undefined;
      const p = this.decode(this.shards[i]!);
      // Awaited in turn below; a pass stopped early must not leave an unhandled rejection behind.
      p.catch(() => undefined);
      return p;
    };
    const batcher = new EvalBatcher(batchSize, xw, yw);
    let next = read(0);
    for (let i = 0; next && batcher.total < limit; i++) {
      const d = await next;
      next = batcher.total + d.records < limit ? read(i + 1) : undefined;
      // This shard and the one read ahead: what a pass holds, however many shards there are.
      stats.maxHeld = Math.max(stats.maxHeld, next ? 2 : 1);
      yield* batcher.add(d, limit - batcher.total);
    }
    yield* batcher.finish();
    if (batcher.total === 0) bad(`Expected the shards of \`params.uri\` (${this.params.uri}) to hold at least one record, got none`);
    this.counted = batcher.total;
  }
}

/**
 * Opens a `sharded` evaluation set as a stream: the shards listed (through the allow-list), the row
 * layout read from the first record. Nothing else is read until a pass. `preprocessing`: the
 * training run's transform (preprocessing.json), applied to every row.
 */
export async function openShardedEval(spec: DatasetSpec, options: ListOptions & { readonly preprocessing?: Preprocessing } = {}): Promise<ShardedEvalStream> {
  const params = shardedParamsOf(spec);
  const shards = await listShards(params, options);
  let layout: RowLayout | undefined;
  for (const shard of shards) {
    layout = (await decodeShardBytes((await readShardBytes(shard, options.storage)).bytes, shard.uri, params)).layout;
    if (layout) break;
  }
  if (!layout) bad(`Expected the shards of \`params.uri\` (${params.uri}) to hold at least one record, got none`);
  return new ShardedEvalStream(shards, params, layout, {
    ...(spec.limit !== undefined && { limit: spec.limit }),
    ...(options.storage && { storage: options.storage }),
    ...(options.preprocessing && { preprocessing: options.preprocessing }),
  });
}

/**
 * The `sharded` dataset loaded whole, in listing order (what the registry's `sharded` gives a caller
 * that asks for arrays; evaluation streams it instead, openShardedEval): every shard read and
 * decoded, `limit` applied by the registry. Refused beyond MAX_WHOLE_BYTES.
 */
export async function shardedDataset(spec: DatasetSpec, options: ListOptions = {}): Promise<Dataset> {
  const params = shardedParamsOf(spec);
  const shards = await listShards(params, options);
  let layout: RowLayout | undefined;
  const parts: DecodedShard[] = [];
  let bytes = 0;
  let size = 0;
  for (const shard of shards) {
    const decoded = await decodeShardBytes((await readShardBytes(shard, options.storage)).bytes, shard.uri, params, layout);
    layout ??= decoded.layout;
    const d = decoded.shard;
    if (!d) continue;
    bytes += (d.x.length + d.y.length) * 4;
    if (bytes > MAX_WHOLE_BYTES) bad(`Expected the shards of \`params.uri\` (${params.uri}) to decode to at most ${MAX_WHOLE_BYTES} bytes to be evaluated whole, got more: name fewer shards for evaluation`);
    parts.push(d);
    size += d.records;
    if (spec.limit !== undefined && size >= spec.limit) break;
  }
  if (!layout || size === 0) bad(`Expected the shards of \`params.uri\` (${params.uri}) to hold at least one record, got none`);
  const xw = rowWidth(layout);
  const yw = layout.yWidth;
  const x = new Float32Array(size * xw);
  const y = new Float32Array(size * yw);
  let at = 0;
  for (const d of parts) {
    x.set(d.x, at * xw);
    y.set(d.y, at * yw);
    at += d.records;
  }
  return { x, y, xShape: [xw], yShape: [yw], size };
}
