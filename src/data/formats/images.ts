/**
 * Image shards of the `sharded` dataset: WebDataset tar shards (`format: "tar"`, tar.ts) and image
 * folders (`format: "imagefolder"`, each file one shard of one record, its class the folder it is
 * in). Each image is decoded, resized and converted with sharp (libvips: JPEG, PNG and more) on
 * libuv's thread pool, so decoding never runs on the trainer's step loop; the JS side only maps the
 * resulting bytes through a 256-entry table per channel into the row. A row is the image in
 * height × width × channels order (what the `cnn` model's `imageShape` reshapes), a Float32 row
 * like the tabular formats', so order, pinning and resume are the same for every format.
 *
 * Every error names the shard and the sample and is non-retryable: an image that does not decode,
 * a class outside `params.classes`, an image without its class member (or a class without its image).
 */
import type SharpModule from 'sharp';
import { MAX_SHARD_TEXT_BYTES } from '../records';
import type { ImageParams } from '../../config/image-params';
import type { ShardedParams } from '../../config/sharded-data';
import { excerpt, excerptList } from '../../trust/excerpt';
import type { DecodedShard, RowLayout } from '../records';
import { bad } from '../source';
import { tarSamples } from './tar';

/** Image extensions read (lower case); other members of a sample (`.json`, `.txt`, …) are ignored. */
export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png'] as const;
/** An input image larger than this many pixels is refused before it is decoded (a decompression bomb). */
export const MAX_INPUT_PIXELS = 64 * 1024 * 1024;
/** A class member larger than this is not a class. */
const MAX_CLASS_BYTES = 256;
/** Images decoded at once (sharp queues them on libuv's pool; this bounds the buffers held). */
const IN_FLIGHT = 8;

let sharpModule: typeof SharpModule | undefined;
/** sharp (libvips, native) loads with the first image decoded, not in every process that imports the record formats. */
function sharp(): typeof SharpModule {
  if (sharpModule === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    sharpModule = require('sharp') as typeof SharpModule;
    sharpModule.cache(false); // every image is decoded once; libvips' operation cache would only hold memory
  }
  return sharpModule;
}

function imageOf(params: ShardedParams): ImageParams {
  if (!params.image) bad('Expected `params.image` for an image format, got nothing');
  return params.image;
}

/** The row layout of an image format: one feature of height × width × channels values, one column per class. */
export function imageLayout(params: ShardedParams): RowLayout {
  const { height, width, channels } = imageOf(params);
  return { widths: [height * width * channels], yWidth: params.classes!.length };
}

/** Pixel value p of channel c → its scaled value: table[c * 256 + p] (exactly the formula of `scale`, then rounded to float32). */
export function scaleTable(image: ImageParams): Float32Array {
  const table = new Float32Array(256 * image.channels);
  for (let c = 0; c < image.channels; c++) {
    for (let p = 0; p < 256; p++) {
      const s = image.scale;
      table[c * 256 + p] = 'range' in s ? s.range[0] + (s.range[1] - s.range[0]) * (p / 255) : (p / 255 - s.mean[c]!) / s.std[c]!;
    }
  }
  return table;
}

const FIT = { stretch: 'fill', crop: 'cover', pad: 'contain' } as const;

/** One image's bytes → height × width × channels bytes (0–255), through sharp. `where` names it in errors. */
export async function decodePixels(bytes: Buffer, image: ImageParams, where: string): Promise<Buffer> {
  try {
    let img = sharp()(bytes, { failOn: 'error', limitInputPixels: MAX_INPUT_PIXELS }).resize({
      width: image.width,
      height: image.height,
      fit: FIT[image.resize],
      background: { r: 0, g: 0, b: 0, alpha: 1 },
    });
    img = (image.channels === 1 ? img.greyscale() : img.toColourspace('srgb')).removeAlpha();
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    if (info.width !== image.width || info.height !== image.height || info.channels !== image.channels) {
      throw new Error(`decoded to ${info.width}×${info.height}×${info.channels}, not ${image.width}×${image.height}×${image.channels}`);
    }
    return data;
  } catch (err) {
    return bad(`Expected ${where} to be a JPEG or PNG image that decodes, got bytes that do not (${excerpt((err as Error).message, 80)})`);
  }
}

function classIndexOf(params: ShardedParams, value: string, where: string): number {
  const k = params.classes!.indexOf(value);
  if (k < 0) bad(`Expected the class of ${where} to be one of \`params.classes\` (${excerptList(params.classes!)}), got "${excerpt(value)}"`);
  return k;
}

/** Decodes images `sources[i]` into rows of x, one at a time per slot, IN_FLIGHT slots. */
async function decodeRows(count: number, source: (i: number) => { bytes: Buffer; where: string }, image: ImageParams, x: Float32Array): Promise<void> {
  const table = scaleTable(image);
  const row = image.height * image.width * image.channels;
  const ch = image.channels;
  let next = 0;
  const slot = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const { bytes, where } = source(i);
      const pixels = await decodePixels(bytes, image, where);
      const at = i * row;
      for (let k = 0; k < row; k++) x[at + k] = table[(k % ch) * 256 + pixels[k]!]!;
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, count) }, slot));
}

/** A WebDataset tar shard → its rows, in member order. */
export async function decodeTarShard(bytes: Buffer, uri: string, params: ShardedParams): Promise<DecodedShard> {
  const image = imageOf(params);
  const samples = await tarSamples(bytes, uri);
  const yw = params.classes!.length;
  const y = new Float32Array(samples.length * yw);
  const images: Array<{ bytes: Buffer; where: string }> = [];
  for (const [n, s] of samples.entries()) {
    const where = `sample \`${excerpt(s.key, 64)}\` of shard ${uri}`;
    const found = IMAGE_EXTENSIONS.filter((e) => s.members.has(e));
    const cls = s.members.get(params.label.toLowerCase());
    if (found.length !== 1) {
      const has = [...s.members.keys()].map((e) => `.${e}`);
      bad(`Expected ${where} (\`params.format\` tar) to have one image member (.jpg, .jpeg or .png), got ${found.length === 0 ? 'none' : found.length} (members: ${excerptList(has)})`);
    }
    if (!cls) bad(`Expected ${where} (\`params.format\` tar) to have its class in a \`.${params.label}\` member (\`params.label\`), got no such member (members: ${excerptList([...s.members.keys()].map((e) => `.${e}`))})`);
    if (cls.length > MAX_CLASS_BYTES) bad(`Expected the \`.${params.label}\` member of ${where} to be a class of at most ${MAX_CLASS_BYTES} bytes, got ${cls.length}`);
    y[n * yw + classIndexOf(params, cls.toString('utf8').trim(), where)] = 1;
    images.push({ bytes: s.members.get(found[0]!)!, where: `the image of ${where}` });
  }
  const decodedBytes = samples.length * image.height * image.width * image.channels * 4;
  if (decodedBytes > MAX_SHARD_TEXT_BYTES) {
    bad(`Expected shard ${uri} (\`params.format\` tar) to decode to at most ${MAX_SHARD_TEXT_BYTES} bytes, got ${samples.length} samples of ${image.height}×${image.width}×${image.channels} float32 values (${decodedBytes} bytes; \`params.image\`): split it into smaller shards`);
  }
  const x = new Float32Array(samples.length * image.height * image.width * image.channels);
  await decodeRows(samples.length, (i) => images[i]!, image, x);
  return { records: samples.length, x, y };
}

/**
 * The class folder of an image folder's file URI: the last folder name. A file:// URI is percent-encoded
 * (pathToFileURL), so its folder is decoded; a gs:// URI holds the object's name as it is (a folder
 * named `%33` is the class `%33`, not `3`, and `%zz` is no error).
 */
export function classFolderOf(uri: string): string {
  const parts = uri.split('/');
  const folder = parts[parts.length - 2] ?? '';
  if (!uri.startsWith('file:')) return folder;
  try {
    return decodeURIComponent(folder);
  } catch {
    return bad(`Expected the folder of image ${uri} to be a percent-encoded class name, got "${excerpt(folder)}"`);
  }
}

/** One file of an image folder → one row, its class the folder it is in. */
export async function decodeImageFile(bytes: Buffer, uri: string, params: ShardedParams): Promise<DecodedShard> {
  const image = imageOf(params);
  const where = `image ${uri}`;
  const yw = params.classes!.length;
  const y = new Float32Array(yw);
  y[classIndexOf(params, classFolderOf(uri), `${where} (its folder)`)] = 1;
  const x = new Float32Array(image.height * image.width * image.channels);
  await decodeRows(1, () => ({ bytes, where }), image, x);
  return { records: 1, x, y };
}
