/**
 * The input pipeline's speed, side by side in one run (issue 21, point 7): for each kind of sharded
 * data (bench/data-setup.ts: MNIST-sized rows as JSONL.gz shards), from file:// and from the GCS
 * emulator,
 *   pipeline alone  the `sharded` source the trainer uses (src/data/streamed.ts ShardedSource:
 *                   pinned reads, gunzip, decode, block shuffle, read-ahead) filling batches in a
 *                   loop in this process, from a cold cache, no model;
 *   training        the real trainer process (TrainerClient) training the bench MLP on it, one
 *                   request of `steps` steps after an untimed warm-up request (which builds the
 *                   data index); the trainer's own count of steps that waited for data and for how
 *                   long (the data stall: waiting time over step time);
 * beside the same model on the in-memory path (the built-in `mnist` dataset: the same digits held
 * whole) and beside TensorFlow's tf.data reading the same shard files (bench/data_tfdata.py on the
 * reference Python: pipeline alone, Keras fit() on it, and Keras on the rows in memory).
 *
 *   npm run bench:data
 *   npm run bench:data -- --quick                 # 300 steps over 4 shards (default: 900 over 12, one pass)
 *   npx tsx bench/data.ts --sources file --steps 300 --batch 128
 *   npx tsx bench/data.ts --cases jpeg32,jpeg224  # the images only (bench/data-setup.ts JPEG32, JPEG224)
 *
 * The image cases (RGB JPEG digits in WebDataset tar shards, the bench CNN on them) keep their own
 * image count, batch and steps (--steps, --batch, --shards and --quick set the tabular case only);
 * their in-memory row is the same shards all cached in a trainer, and tf.data reads their tar
 * shards through Python's tarfile in a generator (bench/data_tfdata.py --format tar).
 *
 * Numbers are examples/s. The load average is printed with the table: on a shared machine compare
 * the rows of one run, not runs.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { Storage } from '@google-cloud/storage';
import { parseTrainConfig } from '../src/config/train-config';
import { buildDataIndex } from '../src/data/data-index';
import { ShardedSource, shardedParamsOf } from '../src/data/streamed';
import { listShards } from '../src/data/source';
import type { DescribeResult, TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import { startGcsEmulator, type GcsEmulator } from '../test/helpers/gcs-emulator';
import { shardName } from '../scripts/make-tabular-shards';
import { dataLog, JPEG224, JPEG32, load, streamedConfig, TABULAR, type DataCase, type DataWaits } from './data-setup';
import { benchInput, LEARNING_RATE, MODEL_LABEL, SEED } from './models';
import { referencePython } from './python';

const run = promisify(execFile);
const WARMUP = 10;
const BUCKET = 'dt-bench-data';
const CASES: Record<string, DataCase> = { tabular: TABULAR, jpeg32: JPEG32, jpeg224: JPEG224 };

interface Args {
  steps: number;
  batch: number;
  sources: Array<'file' | 'gcs'>;
  shards: number;
  cases: DataCase[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { steps: 900, batch: 128, sources: ['file', 'gcs'], shards: 12, cases: Object.values(CASES) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`Expected a value after \`${a}\``);
      return v;
    };
    const whole = (): number => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) throw new Error(`Expected \`${a}\` to be a whole number from 1 up`);
      return n;
    };
    if (a === '--quick') {
      args.steps = 300;
      args.shards = 4;
    }
    else if (a === '--steps') args.steps = whole();
    else if (a === '--batch') args.batch = whole();
    else if (a === '--shards') args.shards = whole();
    else if (a === '--sources') {
      const s = value().split(',');
      for (const x of s) if (x !== 'file' && x !== 'gcs') throw new Error(`Expected \`--sources\` from file, gcs, got \`${x}\``);
      args.sources = s as Args['sources'];
    } else if (a === '--cases') {
      args.cases = value().split(',').map((x) => {
        const c = CASES[x];
        if (!c) throw new Error(`Expected \`--cases\` from ${Object.keys(CASES).join(', ')}, got \`${x}\``);
        return c;
      });
    } else throw new Error(`Unknown argument \`${a}\` (expected --quick, --steps, --batch, --shards, --sources, --cases)`);
  }
  return args;
}

/** The step loop's wall time in a train request: all but the set-up before step 1 and the final checkpoint's wait (data waits included). */
function loopMs(r: TrainUntilStepResult): number {
  return r.seconds * 1000 - (r.loopTiming?.setupMs ?? 0) - (r.checkpointTiming?.blockedMs ?? 0);
}

/** TensorFlow's own GCS file system has no endpoint setting (no emulator variable among its GCS_* settings): it reads only storage.googleapis.com. */
const TF_GCS_SKIPPED = 'tf.data from gs:// not measured: TensorFlow\'s GCS file system has no endpoint setting, so it cannot read the emulator';

interface Row {
  readonly data: string;
  readonly source: string;
  readonly reader: string;
  model?: string;
  batch?: number;
  pipeline?: number;
  train?: number;
  waits?: DataWaits;
  stepsMs?: number;
  note?: string;
}

/** Examples/s of the `sharded` source alone: prepare + fill of `steps` batches from a cold cache. */
async function pipelineAlone(params: Record<string, unknown>, batch: number, steps: number, storage?: Storage): Promise<number> {
  const p = shardedParamsOf({ name: 'sharded', params: params as never });
  const index = await buildDataIndex(p, await listShards(p, storage ? { storage } : {}), storage);
  const source = new ShardedSource(index, p, batch, SEED, storage ? { storage } : {});
  const x = new Float32Array(batch * source.xShape[0]!);
  const y = new Float32Array(batch * source.yShape[0]!);
  // Warm-up as tf.data's (whose shuffle buffer fills before its first batch): the first window is read untimed.
  for (let s = 1; s <= WARMUP; s++) {
    await source.prepare(s);
    source.fill(s, x, y);
  }
  const started = performance.now();
  for (let s = WARMUP + 1; s <= WARMUP + steps; s++) {
    await source.prepare(s);
    source.fill(s, x, y);
  }
  const ms = performance.now() - started;
  source.close();
  return (steps * batch * 1000) / ms;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const cpus = os.cpus();
  console.log(`durable-train bench:data: ${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}`);
  console.log(`load average at start: ${load()}`);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-data-'));
  const rootUri = pathToFileURL(root).href;
  let emu: GcsEmulator | undefined;
  const log = dataLog();
  process.env.DT_ALLOWED_URIS = [rootUri, `gs://${BUCKET}`].join(',');
  const trainers: TrainerClient[] = [];
  const trainer = (env: NodeJS.ProcessEnv = {}): TrainerClient => {
    const t = new TrainerClient({ backend: process.env.DT_BACKEND ?? 'auto', log: log.log, env });
    t.allowUris([rootUri, `gs://${BUCKET}`]);
    trainers.push(t);
    return t;
  };
  const rows: Row[] = [];
  const py = referencePython();
  try {
    if (args.sources.includes('gcs')) emu = await startGcsEmulator({ buckets: [BUCKET] });
    const local = trainer();
    const d = await local.request<DescribeResult>({ type: 'describe' });
    console.log(`backend ${d.backend.name} (${d.backend.package}); tabular: batch ${args.batch}, ${args.steps} timed steps after ${WARMUP} warm-up steps, ${args.shards} shards of 10,000 rows; images: each case's own batch and steps (in the table)`);
    let runs = 0;
    for (const c of args.cases) {
      const rowsWanted = c.rows ?? args.shards * 10_000;
      const batch = c.batch ?? args.batch;
      const steps = c.steps ?? args.steps;
      const model = c.modelParams ? `${MODEL_LABEL[c.model]} on ${JSON.stringify(c.modelParams.imageShape)}` : MODEL_LABEL[c.model];
      const fileWritten = await c.write(`${rootUri}/${c.id}`, rowsWanted);
      const uris: Record<'file' | 'gcs', string> = { file: fileWritten.uri, gcs: '' };
      if (emu) uris.gcs = (await c.write(`gs://${BUCKET}/${c.id}`, rowsWanted, emu.storage)).uri;
      console.log(`${c.label}: ${fileWritten.shards} shards, ${fileWritten.rows} rows, ${(fileWritten.bytes / 1e6).toFixed(1)} MB stored`);
      for (const source of args.sources) {
        const uri = uris[source];
        const storage = source === 'gcs' ? emu!.storage : undefined;
        const params = c.params(uri);
        const row: Row = { data: c.label, source: source === 'file' ? 'file://' : 'GCS emulator', reader: 'durable-train `sharded`', model, batch };
        rows.push(row);
        process.stderr.write(`[bench:data] ${c.id} ${source}: pipeline alone ... `);
        row.pipeline = await pipelineAlone(params, batch, steps, storage);
        process.stderr.write(`${row.pipeline.toFixed(0)} ex/s; training ... `);
        const t = source === 'gcs' ? trainer({ STORAGE_EMULATOR_HOST: emu!.endpoint }) : local;
        const evalUri = uri.replace(/part-\*\.[^/]*$/, shardName(0)).replace(/shard-\*\.tar$/, 'shard-00000.tar');
        const config = streamedConfig(c.model, params, evalUri, batch, WARMUP + steps, c.modelParams);
        const runUri = `${rootUri}/run-${runs++}`;
        const train = (targetStep: number) => t.request<TrainUntilStepResult>({ type: 'train', request: { runUri, config, targetStep, learningRate: LEARNING_RATE } });
        await train(WARMUP);
        const r = await train(WARMUP + steps);
        row.stepsMs = loopMs(r);
        row.train = (steps * batch * 1000) / row.stepsMs;
        const waits = log.last();
        if (waits) row.waits = waits;
        process.stderr.write(`${row.train.toFixed(0)} ex/s\n`);
      }
      // The same model on the in-memory path, in the same trainer process.
      if (c.memory === 'mnist') {
        const row: Row = { data: 'MNIST digits (built-in `mnist`)', source: 'memory', reader: 'durable-train in-memory', model, batch };
        rows.push(row);
        const config = parseTrainConfig(benchInput(c.model, args.batch, WARMUP + args.steps, 1, { checkpoint: { everySteps: 0, everySeconds: 0 } }));
        const runUri = `${rootUri}/run-${runs++}`;
        const train = (targetStep: number) => local.request<TrainUntilStepResult>({ type: 'train', request: { runUri, config, targetStep, learningRate: LEARNING_RATE } });
        process.stderr.write(`[bench:data] ${c.id} in memory: training ... `);
        await train(WARMUP);
        const r = await train(WARMUP + steps);
        row.stepsMs = loopMs(r);
        row.train = (steps * batch * 1000) / row.stepsMs;
        process.stderr.write(`${row.train.toFixed(0)} ex/s\n`);
      } else {
        // The same shards held decoded: a trainer whose cache holds them all, warmed by one whole pass.
        const row: Row = { data: c.label, source: 'memory', reader: 'durable-train `sharded`, 4 shards all cached', model, batch };
        rows.push(row);
        const cachedLog = dataLog();
        const t = new TrainerClient({ backend: process.env.DT_BACKEND ?? 'auto', log: cachedLog.log, env: { DT_DATA_CACHE_BYTES: String(2 ** 31) } });
        t.allowUris([rootUri, `gs://${BUCKET}`]);
        trainers.push(t);
        const cachedShards = 4;
        const pass = Math.ceil((cachedShards * rowsWanted) / fileWritten.shards / batch) + 1;
        const params = c.params(uris.file.replace(/shard-\*\.tar$/, `shard-0000[0-${cachedShards - 1}].tar`));
        const evalUri = uris.file.replace(/shard-\*\.tar$/, 'shard-00000.tar');
        const config = streamedConfig(c.model, params, evalUri, batch, pass + steps, c.modelParams);
        const runUri = `${rootUri}/run-${runs++}`;
        const train = (targetStep: number) => t.request<TrainUntilStepResult>({ type: 'train', request: { runUri, config, targetStep, learningRate: LEARNING_RATE } });
        process.stderr.write(`[bench:data] ${c.id} cached: one pass ... `);
        await train(pass);
        process.stderr.write('training ... ');
        const r = await train(pass + steps);
        row.stepsMs = loopMs(r);
        row.train = (steps * batch * 1000) / row.stepsMs;
        const waits = cachedLog.last();
        if (waits) row.waits = waits;
        if (waits && waits.reads > 0) row.note = `${waits.reads} shard reads in the timed request: not all in memory`;
        process.stderr.write(`${row.train.toFixed(0)} ex/s (${waits?.reads ?? '?'} shard reads)\n`);
        await t.close();
      }
      // tf.data on the same shard files.
      if ('skipped' in c.tfdata) {
        rows.push({ data: c.label, source: '—', reader: 'tf.data', note: c.tfdata.skipped });
      } else if ('reason' in py) {
        rows.push({ data: c.label, source: '—', reader: 'tf.data', note: py.reason });
      } else {
        for (const source of args.sources) {
          const row: Row = { data: c.label, source: source === 'file' ? 'file://' : 'GCS emulator', reader: `tf.data (TF ${py.tensorflow})`, model: `Keras ${model}`, batch };
          rows.push(row);
          if (source === 'gcs') {
            row.note = TF_GCS_SKIPPED;
            continue;
          }
          const files = source === 'file' ? fileURLToPath(uris.file.replace(/\*.*$/, '')) + '*' : uris.gcs;
          process.stderr.write(`[bench:data] ${c.id} ${source}: tf.data ... `);
          try {
            const { stdout } = await run(
              py.python,
              [
                path.join(__dirname, 'data_tfdata.py'), '--files', files, '--batch', String(batch), '--steps', String(steps),
                ...('size' in c.tfdata ? ['--format', 'tar', '--size', String(c.tfdata.size), '--window', String(c.tfdata.window)] : []),
              ],
              {
                env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', KERAS_BACKEND: 'tensorflow' },
                timeout: 600_000,
                maxBuffer: 16 << 20,
              },
            );
            const out = JSON.parse(stdout.trim().split('\n').pop()!) as { pipeline?: number; train?: number; memory?: number };
            row.pipeline = out.pipeline;
            row.train = out.train;
            if (out.memory !== undefined) {
              rows.push({ data: c.label, source: 'memory', reader: `Keras in memory (TF ${py.tensorflow})`, model: `Keras ${model}`, batch, train: out.memory });
            }
            process.stderr.write(`${out.pipeline?.toFixed(0)} / ${out.train?.toFixed(0)} ex/s\n`);
          } catch (err) {
            const e = err as { stderr?: string; message: string };
            row.note = `failed: ${(e.stderr ?? e.message).trim().split('\n').filter((l) => /Error|error/.test(l)).pop()?.slice(0, 200) ?? e.message}`;
            process.stderr.write(`${row.note}\n`);
          }
        }
      }
    }
  } finally {
    for (const t of trainers) await t.close().catch(() => undefined);
    await emu?.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  }

  console.log(`load average at end: ${load()}`);
  console.log('');
  // A streamed row is compared with the in-memory row and tf.data's file:// row of its own data (the tabular rows: the built-in mnist).
  const same = (r: Row, q: Row) => q.data === r.data || (q.data.startsWith('MNIST digits (built-in') && r.data === TABULAR.label);
  const memoryRate = (r: Row, reader: string) => rows.find((q) => same(r, q) && q.source === 'memory' && q.reader.startsWith(reader))?.train;
  console.log(`Adam ${LEARNING_RATE}; models and batches in the table`);
  console.log('| data | source | reader | model, batch | pipeline alone, examples/s | vs tf.data pipeline (file://) | training, examples/s | vs same reader in memory | steps that waited for input | data stall: waiting, % of step loop | input cost: 1 − training / in memory |');
  console.log('|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|');
  const n = (v: number | undefined): string => (v === undefined ? '—' : v.toFixed(0));
  for (const r of rows) {
    const mem = memoryRate(r, r.reader.startsWith('tf.data') ? 'Keras' : 'durable-train');
    const theirs = rows.find((q) => q.data === r.data && q.reader.startsWith('tf.data') && q.source === 'file://')?.pipeline;
    const streamed = r.source !== 'memory' && r.train !== undefined && mem !== undefined;
    const vsMem = streamed ? `${(r.train! / mem!).toFixed(2)}×` : '—';
    const vsTf = r.pipeline !== undefined && theirs !== undefined && !r.reader.startsWith('tf.data') ? `${(r.pipeline / theirs).toFixed(2)}×` : '—';
    const waited = r.waits ? `${r.waits.waited} of ${r.waits.steps}` : '—';
    const stall = r.waits && r.stepsMs ? `${((100 * r.waits.waitMs) / r.stepsMs).toFixed(1)} %` : '—';
    const cost = streamed ? `${(100 * Math.max(0, 1 - r.train! / mem!)).toFixed(1)} %` : '—';
    console.log(`| ${r.data} | ${r.source} | ${r.reader} | ${r.model ?? '—'}, ${r.batch ?? '—'} | ${n(r.pipeline)} | ${vsTf} | ${n(r.train)} | ${vsMem} | ${waited} | ${stall} | ${cost} |`);
  }
  console.log('');
  console.log(
    'data stall: the trainer\'s own time waiting for a batch\'s shards (ShardedSource.prepare) over the step loop\'s wall time. Input cost: what streaming costs in all, waiting ' +
      'or not (decoding on the step loop\'s thread included), against the same reader in memory (durable-train: the built-in mnist dataset for the tabular rows, the same tar shards all cached for the images; tf.data: Keras fit() on the first shard cached in memory).',
  );
  for (const r of rows) if (r.note) console.log(`${r.data}, ${r.reader} ${r.source}: ${r.note}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
