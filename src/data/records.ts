/**
 * Decoding one shard into examples: gzip (Node's zlib, when the name ends in `.gz`), then by
 * `params.format`: JSON Lines (one object per line, blank lines ignored), CSV (a header row in every
 * shard, RFC 4180, through the parser the single-file `csv` dataset uses), TFRecord of
 * tf.train.Example (formats/tfrecord.ts) or Parquet (formats/parquet.ts). Features are numbers; in
 * JSONL, TFRecord and Parquet a feature may also be an array of numbers (`{"pixels": [...784], "y": 3}`,
 * a float_list, a list column), its length fixed by the first record of the dataset. Every error names the shard, the record and the field, shows at most a
 * short escaped excerpt, and is non-retryable (the same bytes fail the same way).
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { ShardedParams } from '../config/sharded-data';
import { csvRecords } from '../training/tabular-parse';
import { excerpt, excerptList } from '../trust/excerpt';
import { decodeImageFile, decodeTarShard, imageLayout } from './formats/images';
import { parquetRecords } from './formats/parquet';
import { tfExamples } from './formats/tfrecord';
import { bad } from './source';

const gunzip = promisify(zlib.gunzip);

/** A shard decompresses to at most this many bytes (one shard is what a reader holds at once). */
export const MAX_SHARD_TEXT_BYTES = 512 * 1024 * 1024;

/** A shard's examples, row after row. */
export interface DecodedShard {
  readonly records: number;
  readonly x: Float32Array;
  readonly y: Float32Array;
}

/** How records become rows: the width of each feature (from the dataset's first record) and of the target. */
export interface RowLayout {
  readonly widths: readonly number[];
  readonly yWidth: number;
}

export function rowWidth(layout: RowLayout): number {
  return layout.widths.reduce((a, b) => a + b, 0);
}

/** A shard's bytes, gunzipped when its name ends in `.gz`: what decodeShard reads. */
export interface ShardContent {
  readonly uri: string;
  readonly bytes: Buffer;
}

/** The content of a shard's bytes: gunzipped when its name ends in `.gz`, at most MAX_SHARD_TEXT_BYTES. */
export async function shardContent(bytes: Buffer, uri: string): Promise<ShardContent> {
  let raw = bytes;
  if (/\.gz$/i.test(uri)) {
    try {
      raw = await gunzip(bytes, { maxOutputLength: MAX_SHARD_TEXT_BYTES });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ERR_BUFFER_TOO_LARGE') bad(`Expected shard ${uri} of \`params.uri\` to decompress to at most ${MAX_SHARD_TEXT_BYTES} bytes: split it into smaller shards`);
      bad(`Expected shard ${uri} of \`params.uri\` to be gzip data (its name ends in .gz), got bytes that are not (${e.code ?? e.message})`);
    }
  } else if (bytes.length > MAX_SHARD_TEXT_BYTES) {
    bad(`Expected shard ${uri} of \`params.uri\` to be at most ${MAX_SHARD_TEXT_BYTES} bytes: split it into smaller shards`);
  }
  return { uri, bytes: raw };
}

function textOf(content: ShardContent): string {
  return content.bytes.toString('utf8').replace(/^\uFEFF/, '');
}

type Get = (field: string) => unknown;
interface RawRecord {
  /** The shard and the record's place in it (`<uri> line 3`, `<uri> record 2 (byte offset 96)`). */
  readonly where: string;
  readonly get: Get;
}

/**
 * Characters one JSONL line may hold. JSON.parse makes a JS array of 8-byte numbers out of `0,`
 * (2 characters each) on the heap: one line of a 512 MiB shard would need about 2 GiB of heap at
 * once and end the process (a fatal out-of-memory, on a decode thread too), on every attempt.
 * 32 Mi characters is about 16 M numbers (a 224×224×3 image as JSON is about 600 K characters).
 */
export const MAX_JSONL_LINE_CHARS = 32 * 1024 * 1024;

function* jsonlRecords(text: string, uri: string): Generator<RawRecord> {
  let line = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    line++;
    if (end - start > MAX_JSONL_LINE_CHARS) {
      bad(`Expected line ${line} of shard ${uri} (\`params.format\` jsonl) to be at most ${MAX_JSONL_LINE_CHARS} characters, got ${end - start}: split the record's arrays or use a binary format (tfrecord, parquet)`);
    }
    const body = text.slice(start, end).trim();
    start = end + 1;
    if (body === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      bad(`Expected line ${line} of shard ${uri} (\`params.format\` jsonl) to be one JSON object, got text that does not parse: \`${excerpt(body)}\``);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      bad(`Expected line ${line} of shard ${uri} (\`params.format\` jsonl) to be one JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}`);
    }
    const o = value as Record<string, unknown>;
    yield { where: `${uri} line ${line}`, get: (f) => (Object.prototype.hasOwnProperty.call(o, f) ? o[f] : undefined) };
  }
}

function* csvShardRecords(text: string, uri: string, wanted: readonly string[]): Generator<RawRecord> {
  let columns: Map<string, number> | undefined;
  for (const r of csvRecords(text, uri)) {
    if (!columns) {
      columns = new Map(r.fields.map((name, k) => [name, k]));
      const missing = wanted.find((w) => !columns!.has(w));
      if (missing !== undefined) bad(`Expected the columns of shard ${uri} (\`params.format\` csv, header ${excerptList(r.fields)}) to include \`${excerpt(missing)}\` (\`params.features\` / \`params.label\`)`);
      continue;
    }
    const fields = r.fields;
    const at = columns;
    yield { where: `${uri} line ${r.line}`, get: (f) => fields[at.get(f)!] };
  }
}

/** The shard's records in the format it claims (`firstOnly`: at least its first record, for the layout). */
function records(content: ShardContent, params: ShardedParams, firstOnly = false): Iterable<RawRecord> | AsyncIterable<RawRecord> {
  const { uri } = content;
  switch (params.format) {
    case 'jsonl':
      return jsonlRecords(textOf(content), uri);
    case 'csv':
      return csvShardRecords(textOf(content), uri, [...params.features, params.label]);
    case 'tfrecord':
      return tfExamples(content.bytes, uri, params);
    case 'parquet':
      return parquetRecords(content.bytes, uri, params, MAX_SHARD_TEXT_BYTES, firstOnly ? 1 : undefined);
    default:
      return bad(`Expected a tabular \`params.format\`, got \`${params.format}\` (images decode in formats/images.ts)`);
  }
}

/** Formats whose features may be arrays of numbers (CSV cells are single numbers). */
const hasArrays = (params: ShardedParams): boolean => params.format !== 'csv';

function num(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** A list of values: a JSON array, a list column, a float_list (a packed one arrives as a Float32Array). */
const isList = (v: unknown): v is ArrayLike<unknown> => Array.isArray(v) || v instanceof Float32Array;

function shown(v: unknown): string {
  if (v === undefined) return 'nothing (the field is absent)';
  if (typeof v === 'string') return `"${excerpt(v)}"`;
  if (isList(v)) return `an array of ${v.length}`;
  return excerpt(JSON.stringify(v) ?? String(v));
}

/** The layout the dataset's first record gives (each feature a number: width 1; an array: its length). */
export function layoutOf(first: Get, params: ShardedParams, where: string): RowLayout {
  const widths = params.features.map((f) => {
    const v = first(f);
    if (isList(v) && hasArrays(params)) {
      if (v.length === 0) bad(`Expected feature \`${excerpt(f)}\` (\`params.features\`) of ${where} to be a number or a non-empty array of numbers, got an empty array`);
      return v.length;
    }
    return 1;
  });
  return { widths, yWidth: params.task === 'classification' ? params.classes!.length : 1 };
}

/** The layout given by the first record of `content` (the dataset's first shard); undefined when it holds none. */
export async function firstLayout(content: ShardContent, params: ShardedParams): Promise<RowLayout | undefined> {
  for await (const r of records(content, params, true)) return layoutOf(r.get, params, r.where);
  return undefined;
}

/** Decodes a shard's content into rows of `layout`. */
export async function decodeShard(content: ShardContent, params: ShardedParams, layout: RowLayout): Promise<DecodedShard> {
  const xw = rowWidth(layout);
  const yw = layout.yWidth;
  const classIndex = params.classes ? new Map(params.classes.map((c, k) => [c, k])) : undefined;
  let capacity = 1024;
  let x = new Float32Array(capacity * xw);
  let y = new Float32Array(capacity * yw);
  let n = 0;
  const add = (r: RawRecord): void => {
    if (n === capacity) {
      capacity *= 2;
      const nx = new Float32Array(capacity * xw);
      nx.set(x);
      x = nx;
      const ny = new Float32Array(capacity * yw);
      ny.set(y);
      y = ny;
    }
    const { where } = r;
    let at = n * xw;
    for (let f = 0; f < params.features.length; f++) {
      const name = params.features[f]!;
      const v = r.get(name);
      const width = layout.widths[f]!;
      if (isList(v) && hasArrays(params)) {
        if (v.length !== width) bad(`Expected feature \`${excerpt(name)}\` (\`params.features\`) of ${where} to be an array of ${width} numbers (as in the dataset's first record), got an array of ${v.length}`);
        for (let k = 0; k < width; k++) {
          const e = num(v[k]);
          if (e === undefined || typeof v[k] !== 'number') bad(`Expected element ${k} of feature \`${excerpt(name)}\` (\`params.features\`) of ${where} to be a finite number, got ${shown(v[k])}`);
          x[at++] = e;
        }
        continue;
      }
      const e = width === 1 ? num(v) : undefined;
      if (e === undefined) bad(`Expected feature \`${excerpt(name)}\` (\`params.features\`) of ${where} to be ${width === 1 ? 'a finite number' : `an array of ${width} numbers`}, got ${shown(v)}`);
      x[at++] = e;
    }
    const label = r.get(params.label);
    if (classIndex) {
      const key = typeof label === 'string' ? label.trim() : typeof label === 'number' && Number.isFinite(label) ? String(label) : typeof label === 'boolean' ? String(label) : undefined;
      const k = key === undefined ? undefined : classIndex.get(key);
      if (k === undefined) {
        bad(`Expected the label \`${excerpt(params.label)}\` (\`params.label\`) of ${where} to be one of \`params.classes\` (${excerptList(params.classes!)}), got ${shown(label)}`);
      }
      y[n * yw + k] = 1;
    } else {
      const v = num(label);
      if (v === undefined) bad(`Expected the label \`${excerpt(params.label)}\` (\`params.label\`) of ${where} to be a finite number (task regression), got ${shown(label)}`);
      y[n] = v;
    }
    n++;
  };
  // Text and TFRecord records are read synchronously (no await per record); Parquet's row groups are awaited.
  const all = records(content, params);
  if (Symbol.asyncIterator in all) for await (const r of all) add(r);
  else for (const r of all) add(r);
  return { records: n, x: x.slice(0, n * xw), y: y.slice(0, n * yw) };
}

/**
 * A shard's bytes decoded into rows: the one entry the index pass, the streamed source and the
 * whole load call, whatever the format. `layout` is the dataset's (from its first record); absent,
 * it is taken from this shard's first record. `shard` is undefined when the shard holds no record
 * and no layout was known.
 */
export async function decodeShardBytes(
  bytes: Buffer,
  uri: string,
  params: ShardedParams,
  layout?: RowLayout,
): Promise<{ readonly layout: RowLayout | undefined; readonly shard: DecodedShard | undefined }> {
  if (params.format === 'tar' || params.format === 'imagefolder') return { layout: imageLayout(params), shard: await (params.format === 'tar' ? decodeTarShard : decodeImageFile)(bytes, uri, params) };
  const content = await shardContent(bytes, uri);
  const l = layout ?? (await firstLayout(content, params));
  return { layout: l, shard: l ? await decodeShard(content, params, l) : undefined };
}
