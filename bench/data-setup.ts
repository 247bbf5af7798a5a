/**
 * What bench/data.ts and bench/data-memory.ts share: the datasets they stream (one `DataCase` per
 * kind of shard), the trainer's input for a streamed run, the trainer's own count of steps that
 * waited for data, and the trainer's RSS read from /proc while it works.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Storage } from '@google-cloud/storage';
import { parseTrainConfig, type TrainConfig } from '../src/config/train-config';
import { tabularParams, writeTabularShards, type Written } from '../scripts/make-tabular-shards';
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
  readonly tfdata: { readonly format: 'jsonl' } | { readonly skipped: string };
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
};

/**
 * A streamed run of `steps` steps on `params` (the eval split: the first shard), checkpointing only
 * at the end of each request, as bench/routes/tfjs-trainer.ts does for the in-memory path.
 */
export function streamedConfig(model: BenchModel, params: Record<string, unknown>, evalUri: string, batchSize: number, steps: number): TrainConfig {
  return parseTrainConfig({
    model: modelSpec(model),
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
