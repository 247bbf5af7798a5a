/**
 * The memory curve and resume time of streamed data (issue 21, point 7): for each dataset size,
 * MNIST-sized rows as JSONL.gz shards written by scripts/make-tabular-shards.ts on file:// (and up
 * to 1 GB into the GCS emulator), a fresh trainer process (DT_DATA_CACHE_BYTES fixed) trains the
 * bench MLP on it while this process samples the trainer's RSS from /proc:
 *   index pass   the first request reads and decodes every shard once (data-index.json). It is
 *                linear in the data and slow (JSON parsing), so it runs on datasets up to
 *                `--index-pass-max` (default 100MB); for larger ones this bench writes
 *                data-index.json itself before the first request, from what the generator knows
 *                (records per shard, the SHA-256 of each shard's bytes), and the trainer only lists
 *                the shards and checks them against it (every read is still checked against the
 *                SHA-256, so a wrong index would fail the run);
 *   streaming    `--steps` steps through the shards (shuffle windows, read-ahead, cache eviction);
 *   resume       a fresh trainer process resumes from that request's checkpoint (mid-shard) and
 *                trains one step: the time of that request (checkpoint restore, the listing checked
 *                against the index, the shards of one batch read), beside one shard's read;
 *   position     a fresh ShardedSource positioned at a step deep in the third data epoch: listing
 *                plus prepare(step), computed from the index, nothing before it read.
 *
 *   npx tsx bench/data-memory.ts                                  # 100MB,1GB on file://; 100MB,1GB on GCS
 *   npx tsx bench/data-memory.ts --sizes 100MB,1GB,10GB --gcs-sizes 100MB
 *   npx tsx bench/data-memory.ts --data-dir /big/disk              # where the file:// datasets go (kept for reuse)
 *
 * The file:// datasets are kept in --data-dir (default <tmp>/dt-bench-data-memory) and reused by the
 * next run (delete it yourself: 10 GB is 10 GB); the emulator's are written each run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Storage } from '@google-cloud/storage';
import { openStore } from '../src/checkpoints/open-store';
import { createHash } from 'node:crypto';
import { buildDataIndex, DATA_INDEX_FORMAT, DATA_INDEX_JSON, type DataIndex } from '../src/data/data-index';
import { readShardBytes } from '../src/data/reader';
import { decodeShardBytes } from '../src/data/records';
import { listShards } from '../src/data/source';
import { ShardedSource, shardedParamsOf } from '../src/data/streamed';
import type { DescribeResult, TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import { startGcsEmulator, type GcsEmulator } from '../test/helpers/gcs-emulator';
import { parseBytes, PERIOD, shardBytes, shardName, writeTabularShards, tabularParams } from '../scripts/make-tabular-shards';
import { dataLog, load, mb, ROWS_PER_SHARD, sampleRss, streamedConfig } from './data-setup';
import { LEARNING_RATE, SEED } from './models';

const BUCKET = 'dt-bench-memory';
const WARMUP = 10;

interface Args {
  sizes: number[];
  gcsSizes: number[];
  steps: number;
  batch: number;
  cacheBytes: number;
  dataDir: string;
  indexPassMax: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    sizes: [100e6, 1e9],
    gcsSizes: [100e6, 1e9],
    steps: 1000,
    batch: 128,
    cacheBytes: 256e6,
    dataDir: path.join(os.tmpdir(), 'dt-bench-data-memory'),
    indexPassMax: 100e6,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[++i];
    if (v === undefined) throw new Error(`Expected a value after \`${a}\``);
    if (a === '--sizes') args.sizes = v === 'none' ? [] : v.split(',').map(parseBytes);
    else if (a === '--gcs-sizes') args.gcsSizes = v === 'none' ? [] : v.split(',').map(parseBytes);
    else if (a === '--steps') args.steps = Number(v);
    else if (a === '--batch') args.batch = Number(v);
    else if (a === '--cache-bytes') args.cacheBytes = parseBytes(v);
    else if (a === '--data-dir') args.dataDir = path.resolve(v);
    else if (a === '--index-pass-max') args.indexPassMax = parseBytes(v);
    else throw new Error(`Unknown argument \`${a}\` (expected --sizes, --gcs-sizes, --steps, --batch, --cache-bytes, --data-dir, --index-pass-max)`);
  }
  if (!Number.isInteger(args.steps) || args.steps < 1 || !Number.isInteger(args.batch) || args.batch < 1) throw new Error('Expected `--steps` and `--batch` to be whole numbers from 1 up');
  return args;
}

const label = (bytes: number): string => (bytes >= 1e9 ? `${bytes / 1e9} GB` : `${bytes / 1e6} MB`);

interface Result {
  readonly size: string;
  readonly source: string;
  readonly shards: number;
  readonly rows: number;
  readonly stored: number;
  readonly idleRss: number;
  /** Undefined when the bench wrote the index (see the top of this file). */
  readonly indexSeconds: number | undefined;
  readonly indexPeak: number;
  readonly streamRate: number;
  readonly streamMedian: number;
  readonly streamPeak: number;
  readonly resumeStep: number;
  readonly resumeSeconds: number;
  readonly positionStep: number;
  readonly positionMs: number;
  readonly shardReadMs: number;
}

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

/** Writes the file:// dataset of `bytes` into `dir`, or reuses the one a previous run left there. */
async function fileDataset(dir: string, bytes: number): Promise<{ uri: string; shards: number; rows: number; bytes: number }> {
  const done = path.join(dir, 'written.json');
  if (fs.existsSync(done)) return JSON.parse(fs.readFileSync(done, 'utf8')) as { uri: string; shards: number; rows: number; bytes: number };
  fs.rmSync(dir, { recursive: true, force: true });
  const w = await writeTabularShards(pathToFileURL(dir).href, { bytes, rowsPerShard: ROWS_PER_SHARD, log: (m) => process.stderr.write(`  ${m}\n`) });
  fs.writeFileSync(done, JSON.stringify(w));
  return w;
}

/**
 * The data index the first training attempt would write, from what the generator knows: the
 * listing, ROWS_PER_SHARD records and the SHA-256 of shard k's bytes (shardBytes(k)), the layout
 * from the first shard decoded.
 */
async function writeIndex(runUri: string, params: Record<string, unknown>, written: { uri: string }, storage: Storage | undefined): Promise<void> {
  const p = shardedParamsOf({ name: 'sharded', params: params as never });
  const listed = await listShards(p, storage ? { storage } : {});
  const first = await buildDataIndex(p, listed.slice(0, 1), storage);
  const hashes = new Map<number, string>();
  const shards = listed.map((s, k) => {
    if (s.uri !== written.uri.replace(/part-\*\.[^/]*$/, shardName(k))) throw new Error(`unexpected shard ${s.uri} at ${k}`);
    let sha256 = hashes.get(k % PERIOD);
    if (!sha256) hashes.set(k % PERIOD, (sha256 = createHash('sha256').update(shardBytes(k, ROWS_PER_SHARD)).digest('hex')));
    return { ...s, sha256, records: ROWS_PER_SHARD };
  });
  const index: DataIndex = { format: DATA_INDEX_FORMAT, uri: p.uri, shards, layout: first.layout, records: shards.length * ROWS_PER_SHARD };
  await openStore(runUri).putIfVersion(DATA_INDEX_JSON, Buffer.from(JSON.stringify(index)), undefined);
}

async function measure(
  size: number,
  source: 'file' | 'gcs',
  written: { uri: string; shards: number; rows: number; bytes: number },
  args: Args,
  root: string,
  emu: GcsEmulator | undefined,
): Promise<Result> {
  const params = tabularParams(written.uri);
  const evalUri = written.uri.replace(/part-\*\.[^/]*$/, shardName(0));
  const total = WARMUP + args.steps;
  const config = streamedConfig('mlp', params, evalUri, args.batch, total + 1);
  const runUri = pathToFileURL(path.join(root, `run-${source}-${size}`)).href;
  const env = { DT_DATA_CACHE_BYTES: String(args.cacheBytes), ...(emu && { STORAGE_EMULATOR_HOST: emu.endpoint }) };
  const allowed = [pathToFileURL(args.dataDir).href, pathToFileURL(root).href, `gs://${BUCKET}`];
  const log = dataLog();
  const trainer = new TrainerClient({ backend: process.env.DT_BACKEND ?? 'auto', log: log.log, env });
  trainer.allowUris(allowed);
  const train = (t: TrainerClient, targetStep: number) => t.request<TrainUntilStepResult>({ type: 'train', request: { runUri, config, targetStep, learningRate: LEARNING_RATE } });
  let indexSeconds: number | undefined;
  let indexPeak: number;
  const indexPass = written.bytes <= args.indexPassMax;
  if (!indexPass) await writeIndex(runUri, params, written, emu?.storage);
  let stream: { peak: number; samples: number[] };
  let streamRate: number;
  let idle: number;
  try {
    await trainer.request<DescribeResult>({ type: 'describe' });
    const idleRss = sampleRss(() => trainer.pid);
    await new Promise((r) => setTimeout(r, 600));
    idle = idleRss.stop().peak;
    process.stderr.write(`[bench:data-memory] ${label(size)} ${source}: ${indexPass ? 'index pass' : 'first request (index written by the bench)'} ... `);
    let sampler = sampleRss(() => trainer.pid);
    const started = Date.now();
    await train(trainer, WARMUP);
    const firstSeconds = (Date.now() - started) / 1000;
    if (indexPass) indexSeconds = firstSeconds;
    indexPeak = sampler.stop().peak;
    process.stderr.write(`${firstSeconds.toFixed(0)} s, peak ${mb(indexPeak)}; streaming ${args.steps} steps ... `);
    sampler = sampleRss(() => trainer.pid);
    const r = await train(trainer, total);
    stream = sampler.stop();
    streamRate = (args.steps * args.batch) / (r.seconds - (r.loopTiming?.setupMs ?? 0) / 1000 - (r.checkpointTiming?.blockedMs ?? 0) / 1000);
    process.stderr.write(`${streamRate.toFixed(0)} ex/s, peak ${mb(stream.peak)}\n`);
  } finally {
    await trainer.close();
  }
  // Resume: a fresh process (as after a crash) continues from the checkpoint at `total`, mid-shard.
  const fresh = new TrainerClient({ backend: process.env.DT_BACKEND ?? 'auto', log: () => undefined, env });
  fresh.allowUris(allowed);
  let resumeSeconds: number;
  try {
    await fresh.request<DescribeResult>({ type: 'describe' });
    const r = await train(fresh, total + 1);
    if (r.resumedFromStep !== total) throw new Error(`expected a resume from step ${total}, got ${JSON.stringify(r)}`);
    resumeSeconds = r.seconds - (r.checkpointTiming?.blockedMs ?? 0) / 1000;
  } finally {
    await fresh.close();
  }
  // Positioning alone, in this process: the run's index, a fresh source, one batch deep in epoch 3.
  const storage: Storage | undefined = emu?.storage;
  const p = shardedParamsOf({ name: 'sharded', params: params as never });
  const index = JSON.parse((await openStore(runUri).get(DATA_INDEX_JSON))!.toString('utf8')) as DataIndex;
  const stepsPerEpoch = Math.floor(index.records / args.batch);
  const positionStep = Math.floor(2.37 * stepsPerEpoch) + 7;
  const from = performance.now();
  await listShards(p, storage ? { storage } : {});
  const positioned = new ShardedSource(index, p, args.batch, SEED, { cacheBytes: args.cacheBytes, ...(storage && { storage }) });
  await positioned.prepare(positionStep);
  const positionMs = performance.now() - from;
  positioned.close();
  const shardFrom = performance.now();
  const shard = index.shards[0]!;
  await decodeShardBytes((await readShardBytes(shard, storage)).bytes, shard.uri, p, index.layout);
  const shardReadMs = performance.now() - shardFrom;
  return {
    size: label(size),
    source: source === 'file' ? 'file://' : 'GCS emulator',
    shards: written.shards,
    rows: written.rows,
    stored: written.bytes,
    idleRss: idle,
    indexSeconds,
    indexPeak,
    streamRate,
    streamMedian: median(stream.samples),
    streamPeak: stream.peak,
    resumeStep: total,
    resumeSeconds,
    positionStep,
    positionMs,
    shardReadMs,
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  console.log(`durable-train bench:data memory curve: ${os.cpus().length} cores, ${mb(os.totalmem())} RAM, Node ${process.version}`);
  console.log(`load average at start: ${load()}`);
  fs.mkdirSync(args.dataDir, { recursive: true });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-memory-'));
  process.env.DT_ALLOWED_URIS = [pathToFileURL(args.dataDir).href, pathToFileURL(root).href, `gs://${BUCKET}`].join(',');
  const results: Result[] = [];
  let emu: GcsEmulator | undefined;
  try {
    for (const size of args.sizes) {
      const written = await fileDataset(path.join(args.dataDir, label(size).replace(' ', '')), size);
      results.push(await measure(size, 'file', written, args, root, undefined));
    }
    if (args.gcsSizes.length > 0) {
      emu = await startGcsEmulator({ buckets: [BUCKET], backend: 'filesystem' });
      for (const size of args.gcsSizes) {
        process.stderr.write(`[bench:data-memory] uploading ${label(size)} to the emulator ...\n`);
        const written = await writeTabularShards(`gs://${BUCKET}/${label(size).replace(' ', '')}`, { bytes: size, rowsPerShard: ROWS_PER_SHARD, storage: emu.storage });
        results.push(await measure(size, 'gcs', written, args, root, emu));
      }
    }
  } finally {
    await emu?.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  }
  console.log(`load average at end: ${load()}`);
  console.log('');
  console.log(`MLP 784-256-256-10, batch ${args.batch}, DT_DATA_CACHE_BYTES ${mb(args.cacheBytes)}, shards of ${ROWS_PER_SHARD} rows (31 MB decoded); trainer RSS sampled every 250 ms`);
  console.log('| dataset | source | shards | rows | stored | trainer RSS idle | first request: index pass s, peak RSS | streaming: examples/s | streaming RSS median / peak | vs first row (peak) | resume at step (fresh trainer): s to first step | position at step (epoch 3): list + read, ms | one shard read + decode, ms |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const first = results[0]?.streamPeak;
  for (const r of results) {
    console.log(
      `| ${r.size} | ${r.source} | ${r.shards} | ${r.rows} | ${mb(r.stored)} | ${mb(r.idleRss)} | ${r.indexSeconds === undefined ? 'index by the bench' : `${r.indexSeconds.toFixed(0)} s`}, ${mb(r.indexPeak)} | ${r.streamRate.toFixed(0)} | ${mb(r.streamMedian)} / ${mb(r.streamPeak)} | ` +
        `${first ? `${((100 * (r.streamPeak - first)) / first).toFixed(1)} %` : '—'} | ${r.resumeStep}: ${r.resumeSeconds.toFixed(2)} s | ${r.positionStep}: ${r.positionMs.toFixed(0)} | ${r.shardReadMs.toFixed(0)} |`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
