/**
 * Shard parsing off the step loop: a small, bounded pool of worker threads (node:worker_threads)
 * that run records.ts's decodeShardBytes (gunzip, JSON/CSV/TFRecord/Parquet parsing, the checks
 * and their messages: the same code, the same results, bit for bit). A shard's bytes are transferred
 * in (no copy when the Buffer owns its memory) and the decoded rows come back as transferred
 * Float32Array buffers, so the trainer's main thread only copies rows into batches: a large shard's
 * parse never holds up a training step (bench: test/decode-pool.test.ts prints the stalls with and
 * without). Formats not listed in OFF_THREAD_FORMATS decode on the main thread as before.
 *
 * `DT_DATA_DECODE_THREADS`: threads in the pool (default: one less than the cores, 1 to 2); `0`
 * decodes on the main thread. A thread that dies fails its shard retryably and is replaced.
 */
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ShardedParams } from '../config/sharded-data';
import { NonRetryableTrainingError } from '../training/protocol';
import type { DecodeReply, DecodeTask } from './decode-worker';
import { decodeShardBytes, type DecodedShard, type RowLayout } from './records';

export const DECODE_THREADS_ENV = 'DT_DATA_DECODE_THREADS';
export const MAX_DECODE_THREADS = 16;

/** Formats whose decoders are plain JavaScript (no native module that must stay on the main thread). */
export const OFF_THREAD_FORMATS: ReadonlySet<string> = new Set(['jsonl', 'csv', 'tfrecord', 'parquet']);

/** `DT_DATA_DECODE_THREADS`, else one less than the machine's cores, at least 1 and at most 2. */
export function decodeThreadsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[DECODE_THREADS_ENV];
  if (raw === undefined || raw.trim() === '') return Math.max(1, Math.min(2, os.availableParallelism() - 1));
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_DECODE_THREADS) {
    throw new Error(`Expected \`${DECODE_THREADS_ENV}\` to be a whole number of threads from 0 to ${MAX_DECODE_THREADS} (0: decode on the main thread), got ${JSON.stringify(raw)}`);
  }
  return n;
}

export interface DecodedBytes {
  readonly layout: RowLayout | undefined;
  readonly shard: DecodedShard | undefined;
}

/** The worker script beside this module: .js when built, .ts when run from sources (then loaded through tsx's CommonJS hook). */
const WORKER_FILE = path.join(__dirname, `decode-worker${path.extname(__filename)}`);

function startWorker(): Worker {
  if (!WORKER_FILE.endsWith('.ts')) return new Worker(WORKER_FILE);
  const boot = `require(${JSON.stringify(require.resolve('tsx/cjs/api'))}).register(); require(${JSON.stringify(WORKER_FILE)});`;
  return new Worker(boot, { eval: true });
}

interface Pending {
  readonly task: DecodeTask;
  readonly transfer: ArrayBuffer[];
  readonly resolve: (d: DecodedBytes) => void;
  readonly reject: (err: Error) => void;
}

interface Slot {
  readonly worker: Worker;
  pending: Pending | undefined;
}

export class DecodePool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;
  /** Shards decoded on the pool, and the longest queue seen (for tests and logs). */
  readonly stats = { decoded: 0, maxQueued: 0 };

  constructor(readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 1 || size > MAX_DECODE_THREADS) throw new Error(`Expected a decode pool of 1 to ${MAX_DECODE_THREADS} threads, got ${size}`);
  }

  /** decodeShardBytes on a pool thread. `bytes` is handed over: the caller must not use it afterwards. */
  decode(bytes: Buffer, uri: string, params: ShardedParams, layout?: RowLayout): Promise<DecodedBytes> {
    if (this.closed) return Promise.reject(new Error('DecodePool.decode after close()'));
    // Transfer the memory when the Buffer owns all of it; a slice of a shared pool is copied first.
    const owned = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
    const data = owned ? new Uint8Array(bytes.buffer, 0, bytes.byteLength) : new Uint8Array(bytes);
    return new Promise<DecodedBytes>((resolve, reject) => {
      const pending: Pending = { task: { id: this.nextId++, bytes: data, uri, params, layout }, transfer: [data.buffer as ArrayBuffer], resolve, reject };
      const slot = this.slots.find((s) => !s.pending) ?? (this.slots.length < this.size ? this.spawn() : undefined);
      if (slot) this.run(slot, pending);
      else {
        this.queue.push(pending);
        this.stats.maxQueued = Math.max(this.stats.maxQueued, this.queue.length);
      }
    });
  }

  private spawn(): Slot {
    const worker = startWorker();
    const slot: Slot = { worker, pending: undefined };
    worker.unref();
    worker.on('message', (reply: DecodeReply) => {
      const p = slot.pending;
      if (!p || p.task.id !== reply.id) return;
      slot.pending = undefined;
      if (reply.ok) {
        this.stats.decoded++;
        p.resolve({ layout: reply.layout, shard: reply.empty ? undefined : { records: reply.records, x: reply.x, y: reply.y } });
      } else {
        p.reject(reply.nonRetryable ? new NonRetryableTrainingError(reply.message) : new Error(reply.message));
      }
      this.next(slot);
    });
    worker.on('error', (err) => {
      const p = slot.pending;
      slot.pending = undefined;
      p?.reject(new Error(`A shard decode thread failed while decoding ${p.task.uri}: ${err.message}`));
    });
    worker.on('exit', (code) => {
      const at = this.slots.indexOf(slot);
      if (at >= 0) this.slots.splice(at, 1);
      const p = slot.pending;
      slot.pending = undefined;
      p?.reject(new Error(`A shard decode thread exited (code ${code}) while decoding ${p.task.uri}`));
      // Work still queued gets a new thread.
      if (!this.closed && this.queue.length > 0) this.run(this.spawn(), this.queue.shift()!);
    });
    this.slots.push(slot);
    return slot;
  }

  private run(slot: Slot, p: Pending): void {
    slot.pending = p;
    // A thread at work keeps the process alive; an idle one does not.
    slot.worker.ref();
    slot.worker.postMessage(p.task, p.transfer);
  }

  private next(slot: Slot): void {
    const p = this.queue.shift();
    if (p) this.run(slot, p);
    else slot.worker.unref();
  }

  /** Stops the threads; what is queued or in flight fails. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new Error('DecodePool closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

let shared: { readonly threads: number; readonly pool: DecodePool | undefined } | undefined;

/** This process's pool (DT_DATA_DECODE_THREADS threads, started on first use); undefined when it is 0. */
export function sharedDecodePool(): DecodePool | undefined {
  if (!shared) {
    const threads = decodeThreadsFromEnv();
    shared = { threads, pool: threads > 0 ? new DecodePool(threads) : undefined };
  }
  return shared.pool;
}

/**
 * decodeShardBytes where it does not block the step loop: on `pool` for the formats it takes, else
 * on this thread. `pool` undefined: this process's shared pool; null: this thread.
 */
export function decodeOffThread(bytes: Buffer, uri: string, params: ShardedParams, layout?: RowLayout, pool?: DecodePool | null): Promise<DecodedBytes> {
  const p = pool === undefined ? sharedDecodePool() : pool;
  if (p && OFF_THREAD_FORMATS.has(params.format)) return p.decode(bytes, uri, params, layout);
  return decodeShardBytes(bytes, uri, params, layout);
}
