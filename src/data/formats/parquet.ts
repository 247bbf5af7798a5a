/**
 * Parquet shards (as pyarrow, BigQuery exports and Spark write them) through hyparquet, a
 * maintained pure-JS reader with no native code and no dependencies. Codecs: uncompressed and
 * snappy (pyarrow's, Spark's and BigQuery's default) built in; gzip and brotli through Node's zlib
 * (and zstd where Node's zlib has it, Node 22.15 on), each page bounded by `maxBytes` before it is
 * allocated. hyparquet-compressors (lz4, zstd on Node 20) is not added for codecs no default
 * writer uses: such a shard fails naming its codec. Only the columns of `features` and `label` are read.
 *
 * Before any value is read, each column's type is checked from the shard's schema:
 *   features  a number column (INT32, INT64, FLOAT, DOUBLE; no date, time, timestamp or decimal)
 *             or a LIST of such numbers, its length fixed by the dataset's first record;
 *   label     a number column, or a string column (matched against `classes` as text).
 * A column of another type, or missing, fails non-retryably naming the shard and the column. The
 * decoded size the metadata declares is bounded before the pages are decompressed.
 *
 * Rows are read one row group at a time, column by column (hyparquet's `onChunk`), and handed on
 * as they are read: what the reader holds in JS values at once is one row group of the wanted
 * columns, never an object per row of the whole shard.
 */
import zlib from 'node:zlib';
import { parquetMetadata, parquetRead, parquetSchema, snappyUncompress, type Compressors, type FileMetaData, type SchemaElement, type SchemaTree } from 'hyparquet';
import type { ShardedParams } from '../../config/sharded-data';
import { excerpt, excerptList } from '../../trust/excerpt';
import { bad } from '../source';

const NUMBER_TYPES = new Set(['INT32', 'INT64', 'FLOAT', 'DOUBLE']);
const INTEGER_CONVERTED = new Set(['INT_8', 'INT_16', 'INT_32', 'INT_64', 'UINT_8', 'UINT_16', 'UINT_32', 'UINT_64']);

type ColumnKind = 'number' | 'numbers' | 'string';

function typeName(e: SchemaElement): string {
  const logical = e.logical_type?.type ?? e.converted_type;
  return `${e.type ?? 'a group'}${logical ? ` (${logical})` : ''}`;
}

function isNumber(e: SchemaElement): boolean {
  if (!e.type || !NUMBER_TYPES.has(e.type)) return false;
  const logical = e.logical_type?.type;
  if (logical !== undefined) return logical === 'INTEGER';
  return e.converted_type === undefined || INTEGER_CONVERTED.has(e.converted_type);
}

function isString(e: SchemaElement): boolean {
  return e.type === 'BYTE_ARRAY' && (e.logical_type?.type === 'STRING' || e.converted_type === 'UTF8');
}

/** A column's kind, or a description of its type when it is not one `label`/`features` may use. */
function kindOf(node: SchemaTree, label: boolean): ColumnKind | string {
  const e = node.element;
  if (node.children.length === 0) {
    if (isNumber(e)) return 'number';
    if (label && isString(e)) return 'string';
    return typeName(e);
  }
  // LIST: <name> (LIST) { repeated group list { <element> } } (the three-level form every current writer uses).
  const list = e.logical_type?.type === 'LIST' || e.converted_type === 'LIST';
  const repeated = node.children.length === 1 ? node.children[0]! : undefined;
  const item = repeated?.children.length === 1 ? repeated.children[0]! : repeated?.children.length === 0 ? repeated : undefined;
  if (!label && list && item && item.children.length === 0 && isNumber(item.element)) return 'numbers';
  if (list && item && item.children.length === 0) return `a list of ${typeName(item.element)}`;
  return `a group (${e.logical_type?.type ?? e.converted_type ?? 'struct'})`;
}

/**
 * Page decompressors for one read, refusing a page before allocating it when the pages' sizes
 * (from their headers, which a hostile file may set apart from the metadata's totals) add up to
 * more than `maxBytes`.
 */
function compressors(maxBytes: number): Compressors {
  let total = 0;
  const bounded =
    (codec: string, inflate: (input: Uint8Array, outputLength: number) => Uint8Array) =>
    (input: Uint8Array, outputLength: number): Uint8Array => {
      total += outputLength;
      if (!(outputLength >= 0 && total <= maxBytes)) throw new Error(`its ${codec} pages claim more than ${maxBytes} bytes`);
      return inflate(input, outputLength);
    };
  const zstd = (zlib as unknown as { zstdDecompressSync?: (b: Uint8Array, o: zlib.ZlibOptions) => Buffer }).zstdDecompressSync;
  return {
    SNAPPY: bounded('SNAPPY', (input, n) => {
      const out = new Uint8Array(n);
      snappyUncompress(input, out);
      return out;
    }),
    GZIP: bounded('GZIP', (input, n) => zlib.gunzipSync(input, { maxOutputLength: Math.max(1, n) })),
    BROTLI: bounded('BROTLI', (input, n) => zlib.brotliDecompressSync(input, { maxOutputLength: Math.max(1, n) })),
    ...(zstd && { ZSTD: bounded('ZSTD', (input, n) => zstd(input, { maxOutputLength: Math.max(1, n) })) }),
  };
}

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

function unBig(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map((x: unknown) => (typeof x === 'bigint' ? Number(x) : x));
  return v;
}

/** One row of the columns asked for: numbers, arrays of numbers, strings (label). */
export interface ParquetRecord {
  readonly where: string;
  readonly get: (field: string) => unknown;
}

/**
 * The rows of a Parquet shard (only `params.features` and `params.label`, their types checked
 * first), row group after row group; `rowEnd` stops after the first rows (the dataset's layout needs one).
 */
export async function* parquetRecords(bytes: Buffer, uri: string, params: ShardedParams, maxBytes: number, rowEnd?: number): AsyncGenerator<ParquetRecord> {
  const file = toArrayBuffer(bytes);
  let metadata: FileMetaData;
  let root: SchemaTree;
  try {
    metadata = parquetMetadata(file);
    root = parquetSchema(metadata);
  } catch (err) {
    return bad(`Expected shard ${uri} (\`params.format\` parquet) to be a Parquet file, got bytes that are not (${excerpt((err as Error).message, 80)})`);
  }
  const byName = new Map(root.children.map((c) => [c.element.name, c]));
  const wanted = [...params.features, params.label];
  for (const name of wanted) {
    const node = byName.get(name);
    const field = name === params.label ? '`params.label`' : '`params.features`';
    if (!node) bad(`Expected the columns of shard ${uri} (\`params.format\` parquet: ${excerptList([...byName.keys()])}) to include \`${excerpt(name)}\` (${field})`);
    const kind = kindOf(node, name === params.label);
    if (kind !== 'number' && kind !== 'numbers' && kind !== 'string') {
      const expected = name === params.label ? 'a number or string column' : 'a number column (INT32, INT64, FLOAT, DOUBLE) or a list of numbers';
      bad(`Expected column \`${excerpt(name)}\` (${field}) of shard ${uri} (\`params.format\` parquet) to be ${expected}, got ${kind}`);
    }
  }
  let declared = 0;
  for (const group of metadata.row_groups) {
    for (const chunk of group.columns) {
      const m = chunk.meta_data;
      if (m && wanted.includes(m.path_in_schema[0]!)) declared += Number(m.total_uncompressed_size);
    }
  }
  // Rows cost at least 4 bytes per wanted column once decoded, however few bytes encode them (a run-length-encoded constant).
  const rows = Number(metadata.num_rows);
  if (!(rows >= 0 && rows * wanted.length * 4 <= maxBytes)) {
    bad(`Expected shard ${uri} (\`params.format\` parquet) to decode to at most ${maxBytes} bytes, its metadata declares ${rows} rows of ${wanted.length} columns: split it into smaller shards`);
  }
  if (declared > maxBytes) bad(`Expected shard ${uri} (\`params.format\` parquet) to decode to at most ${maxBytes} bytes, its metadata declares ${declared}: split it into smaller shards`);
  const pages = compressors(maxBytes);
  let from = 0;
  for (const group of metadata.row_groups) {
    const to = from + Number(group.num_rows);
    const end = Math.min(to, rowEnd ?? to);
    if (end > from) {
      const columns = new Map(wanted.map((name) => [name, new Array<unknown>(end - from)]));
      const start = from;
      try {
        await parquetRead({
          file,
          metadata,
          columns: wanted,
          rowStart: start,
          rowEnd: end,
          compressors: pages,
          onChunk: ({ columnName, columnData, rowStart }) => {
            const column = columns.get(columnName);
            if (!column) return;
            // A chunk may hold rows outside the range asked for: keep those inside.
            for (let k = Math.max(0, start - rowStart); k < columnData.length && rowStart + k < end; k++) column[rowStart + k - start] = columnData[k];
          },
        });
      } catch (err) {
        return bad(`Expected shard ${uri} (\`params.format\` parquet) to be a readable Parquet file, got one that fails to decode in rows ${start} to ${end - 1}: ${excerpt((err as Error).message, 120)}`);
      }
      for (let i = 0; i < end - start; i++) yield { where: `${uri} row ${start + i}`, get: (f: string) => unBig(columns.get(f)?.[i]) };
    }
    if (rowEnd !== undefined && end >= rowEnd) return;
    from = to;
  }
}
