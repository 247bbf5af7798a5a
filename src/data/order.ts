/**
 * The order of a sharded dataset's examples: which (shard, offset) is example `g` of the endless
 * stream, a pure function of (seed, g, the shards' record counts). The examples of global step `s`
 * with batch size B are g = (s-1)·B … s·B-1, as for the in-memory sampler (src/training/rng.ts), so a
 * run resumed at any step computes its position; nothing is read to get there.
 *
 * The algorithm is Mosaic StreamingDataset's `py1b` ("shuffle shards, then fixed-size blocks"):
 *   1. epoch e = floor(g / N) (N: records in all shards); p = g mod N is the position in the epoch;
 *   2. the shard order of epoch e is a Fisher-Yates permutation seeded by (seed, e); concatenating the
 *      shards in that order gives the epoch's sequence of N records;
 *   3. that sequence is cut into windows of W consecutive records (the last may be shorter), and each
 *      window is read in its own Fisher-Yates order seeded by (seed, window, e).
 * A window therefore reads W records that are consecutive within at most ceil(W / smallest shard)+1
 * shards: reads stay sequential and a reader holds one window (plus read-ahead) decoded, whatever N
 * is. Memory here is O(shards + W): the epoch's shard permutation with its prefix sums, and the
 * current window's permutation.
 *
 * Window 0 is seeded with the run's seed itself, so one shard with W ≥ N gives exactly the order of
 * the in-memory sampler (rng.ts `permutation`): the same data streamed or loaded whole trains alike.
 */
import { hash32, mulberry32, permutation } from '../training/rng';

/** Where an example lives: the shard's index in the listing and the record's index in the shard. */
export interface ExamplePosition {
  readonly shard: number;
  readonly offset: number;
}

/** The shard order of `epoch`: a Fisher-Yates permutation of 0..shards-1 seeded by (seed, epoch). */
export function shardOrder(shards: number, seed: number, epoch: number): Uint32Array {
  const order = new Uint32Array(shards);
  for (let i = 0; i < shards; i++) order[i] = i;
  const random = mulberry32(hash32(seed, 0x5a4d, epoch));
  for (let i = shards - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** The read order inside window `window` of `epoch` (of `length` records). */
export function windowOrder(length: number, seed: number, epoch: number, window: number): Uint32Array {
  return permutation(length, window === 0 ? seed : hash32(seed, 0xb10c, window), epoch);
}

export class ShardedOrder {
  /** Records in all shards: the epoch length. */
  readonly size: number;
  private epochCache: { epoch: number; order: Uint32Array; starts: Float64Array } | undefined;
  private windowCache: { epoch: number; window: number; order: Uint32Array } | undefined;

  constructor(
    readonly counts: readonly number[],
    readonly seed: number,
    readonly window: number,
  ) {
    if (!Number.isInteger(window) || window < 1) throw new Error(`Expected the shuffle window to be a whole number from 1 up, got ${window}`);
    let size = 0;
    for (const [i, n] of counts.entries()) {
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`Expected the record count of shard ${i} to be a whole number from 0 up, got ${n}`);
      size += n;
    }
    if (size < 1) throw new Error('A dataset needs at least one example, got 0 in every shard');
    if (!Number.isSafeInteger(size)) throw new Error(`Expected at most ${Number.MAX_SAFE_INTEGER} records, got ${size}`);
    this.size = size;
  }

  /** The epoch's shard order and where each shard starts in the epoch's sequence (starts[k]: first record of the k-th shard read). */
  epochLayout(epoch: number): { readonly order: Uint32Array; readonly starts: Float64Array } {
    if (this.epochCache?.epoch !== epoch) {
      const order = shardOrder(this.counts.length, this.seed, epoch);
      const starts = new Float64Array(order.length + 1);
      for (let k = 0; k < order.length; k++) starts[k + 1] = starts[k]! + this.counts[order[k]!]!;
      this.epochCache = { epoch, order, starts };
    }
    return this.epochCache;
  }

  private windowPermutation(epoch: number, window: number): Uint32Array {
    if (this.windowCache?.epoch !== epoch || this.windowCache.window !== window) {
      const length = Math.min(this.window, this.size - window * this.window);
      this.windowCache = { epoch, window, order: windowOrder(length, this.seed, epoch, window) };
    }
    return this.windowCache.order;
  }

  /** Epoch, window and position in the epoch of example `g` (0-based, of the endless stream). */
  windowOf(g: number): { readonly epoch: number; readonly window: number; readonly position: number } {
    if (!Number.isSafeInteger(g) || g < 0) throw new Error(`Expected an example index from 0 up, got ${g}`);
    const epoch = Math.floor(g / this.size);
    const position = g - epoch * this.size;
    return { epoch, window: Math.floor(position / this.window), position };
  }

  /** The shard and record of example `g` of the endless stream. */
  locate(g: number): ExamplePosition {
    const { epoch, window, position } = this.windowOf(g);
    const start = window * this.window;
    const q = start + this.windowPermutation(epoch, window)[position - start]!;
    const { order, starts } = this.epochLayout(epoch);
    // The last k with starts[k] <= q: shard order[k] holds record q (empty shards have starts[k] === starts[k+1]).
    let lo = 0;
    let hi = order.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= q) lo = mid;
      else hi = mid - 1;
    }
    return { shard: order[lo]!, offset: q - starts[lo]! };
  }

  /** The shards window `window` of `epoch` reads, in read order (what a reader fetches for it). */
  windowShards(epoch: number, window: number): number[] {
    const { order, starts } = this.epochLayout(epoch);
    const from = window * this.window;
    const to = Math.min(from + this.window, this.size);
    const out: number[] = [];
    for (let k = 0; k < order.length; k++) {
      if (starts[k + 1]! > starts[k]! && starts[k + 1]! > from && starts[k]! < to) out.push(order[k]!);
    }
    return out;
  }

  /** Windows in one epoch. */
  get windowsPerEpoch(): number {
    return Math.ceil(this.size / this.window);
  }
}
