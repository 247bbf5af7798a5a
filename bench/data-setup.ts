/**
 * What bench/data.ts and bench/data-memory.ts share: the datasets they stream (one `DataCase` per
 * kind of shard), the trainer's input for a streamed run, the trainer's own count of steps that
 * waited for data, and the trainer's RSS read from /proc while it works.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Storage } from '@google-cloud/storage';
import { parseTrainConfig, type TrainConfig } from '../src/config/train-config';
import { tabularParams, writeTabularShards, type Written } from '../scripts/make-tabular-shards';
import { writeImageTarShards } from '../scripts/make-image-shards';
import { LEARNING_RATE, modelSpec, SEED } from './models';
import type { BenchModel } from './route';

export const load = (): string => os.loadavg().map((l) => l.toFixed(2)).join(' ');

/** One kind of sharded data: how to write it, read it (params) and which model trains on it. */
export interface DataCase {
  readonly id: string;
  readonly label: string;
  readonly model: BenchModel;
  /** Writes about `rows` examples as shards under `out` (file:///dir or gs://bucket/prefix). */
  write(out: string, rows: number, storage?: Storage): Promise<Written>;
  /** The `sharded` params reading `uri` (a glob of what write() wrote). */
  params(uri: string): Record<string, unknown>;
  /** The format bench/data_tfdata.py reads, or why tf.data is not measured for it. */
  readonly tfdata: { readonly format: 'jsonl' } | { readonly format: 'tar'; readonly size: number; readonly window: number } | { readonly skipped: string };
  /** The model's params when not the bench default (the CNN's `imageShape`). */
  readonly modelParams?: Record<string, unknown>;
  /** Examples written, batch and timed steps when not the run's (`--shards`, `--batch`, `--steps`). */
  readonly rows?: number;
  readonly batch?: number;
  readonly steps?: number;
  /**
   * The in-memory reference: `mnist` is the built-in dataset (the same digits held whole); `cached`
   * is the `sharded` source over the same shards in a trainer whose cache holds them all, after a
   * warm-up request of one whole pass over the first 4 shards (its timed request reads no shard: the
   * bench checks).
   */
  readonly memory: 'mnist' | 'cached';
}

export const ROWS_PER_SHARD = 10_000;

export const TABULAR: DataCase = {
  id: 'tabular',
  label: 'MNIST rows, JSONL.gz',
  model: 'mlp',
  write: (out, rows, storage) =>
    writeTabularShards(out, { bytes: Infinity, maxShards: Math.max(1, Math.ceil(rows / ROWS_PER_SHARD)), rowsPerShard: ROWS_PER_SHARD, ...(storage && { storage }) }),
  params: tabularParams,
  tfdata: { format: 'jsonl' },
  memory: 'mnist',
};

const IMAGE_CLASSES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/**
 * The mnist digits as `size`×`size` RGB JPEG (quality 90) in WebDataset tar shards of `perShard`
 * samples (scripts/make-image-shards.ts), trained by the bench CNN reshaped to size × size × 3.
 */
export function imageCase(size: number, o: { rows: number; perShard: number; batch: number; steps: number; window: number }): DataCase {
  return {
    id: `jpeg${size}`,
    label: `MNIST digits, ${size}×${size}×3 JPEG in tar`,
    model: 'cnn',
    modelParams: { imageShape: [size, size, 3] },
    rows: o.rows,
    batch: o.batch,
    steps: o.steps,
    memory: 'cached',
    async write(out, rows, storage) {
      const local = out.startsWith('file:') ? fileURLToPath(out) : fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-img-'));
      const names = await writeImageTarShards(local, { count: rows, perShard: o.perShard, size, channels: 3, encoding: 'jpg' });
      let bytes = 0;
      for (const n of names) bytes += fs.statSync(path.join(local, n)).size;
      if (!out.startsWith('file:')) {
        const m = /^gs:\/\/([^/]+)\/(.*)$/.exec(out);
        if (!m || !storage) throw new Error(`Expected file:// or gs:// with a storage client, got ${out}`);
        for (const n of names) await storage.bucket(m[1]!).upload(path.join(local, n), { destination: `${m[2]}/${n}` });
        fs.rmSync(local, { recursive: true, force: true });
      }
      return { uri: `${out}/shard-*.tar`, shards: names.length, rows, bytes };
    },
    params: (uri) => ({ uri, format: 'tar', classes: IMAGE_CLASSES, image: { height: size, width: size, channels: 3 }, shuffleWindow: o.window }),
    tfdata: { format: 'tar', size, window: o.window },
  };
}

/**
 * 32×32: the CNN at batch 64, 300 steps; 224×224: the CNN at batch 16, 100 steps. Enough images for
 * one pass (warm-up and timed steps), so the streamed rows read every shard once and never hit the
 * decoded-shard cache; the `cached` row holds the first 4 shards. `window`: the `sharded` shuffle
 * window and tf.data's shuffle buffer, both in samples (the first window is read in the warm-up).
 */
export const JPEG32 = imageCase(32, { rows: 20_000, perShard: 1000, batch: 64, steps: 300, window: 1024 });
export const JPEG224 = imageCase(224, { rows: 1792, perShard: 128, batch: 16, steps: 100, window: 256 });

/**
 * A streamed run of `steps` steps on `params` (the eval split: the first shard), checkpointing only
 * at the end of each request, as bench/routes/tfjs-trainer.ts does for the in-memory path.
 */
export function streamedConfig(model: BenchModel, params: Record<string, unknown>, evalUri: string, batchSize: number, steps: number, modelParams?: Record<string, unknown>): TrainConfig {
  const spec = modelSpec(model);
  return parseTrainConfig({
    model: modelParams ? { ...spec, params: { ...spec.params, ...modelParams } } : spec,
    data: { train: { name: 'sharded', params }, eval: { name: 'sharded', params: { ...params, uri: evalUri } } },
    hyperparameters: { optimizer: 'adam', learningRate: LEARNING_RATE, batchSize },
    stepsPerEpoch: steps,
    maxEpochs: 1,
    seed: SEED,
    checkpoint: { everySteps: 0, everySeconds: 0 },
  });
}

/** The trainer's per-request data line (src/training/engine.ts): shard reads and steps that waited for data. */
export interface DataWaits {
  readonly reads: number;
  readonly waited: number;
  readonly steps: number;
  readonly waitMs: number;
}

const DATA_LINE = /data: (\d+) shard reads; (\d+) of (\d+) steps waited for data, (\d+) ms in all/;

/** A trainer `log` option that keeps the newest data line. */
export function dataLog(): { log: (m: string) => void; last: () => DataWaits | undefined; lines: string[] } {
  let last: DataWaits | undefined;
  const lines: string[] = [];
  return {
    log: (m) => {
      lines.push(m);
      const d = DATA_LINE.exec(m);
      if (d) last = { reads: Number(d[1]), waited: Number(d[2]), steps: Number(d[3]), waitMs: Number(d[4]) };
    },
    last: () => last,
    lines,
  };
}

/** Resident set of a process in bytes (Linux /proc), or undefined once it is gone. */
export function rssOf(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Samples `pid()`'s RSS every `everyMs` until stopped: the peak and every sample. */
export function sampleRss(pid: () => number | undefined, everyMs = 250): { stop(): { peak: number; samples: number[] } } {
  const samples: number[] = [];
  const timer = setInterval(() => {
    const p = pid();
    const r = p === undefined ? undefined : rssOf(p);
    if (r !== undefined) samples.push(r);
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return { peak: samples.reduce((a, b) => Math.max(a, b), 0), samples };
    },
  };
}

export const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(0)} MB`;
