/**
 * Params of the `sharded` dataset's image formats (src/data/formats/images.ts): `tar` (WebDataset
 * shards: `<key>.jpg|jpeg|png` beside `<key>.cls`) and `imagefolder` (`<root>/<class>/<file>.jpg|png`,
 * each file a shard). Pure; checked with the other sharded params, every issue naming its field.
 *
 *   { "name": "sharded", "params": { "uri": "gs://bucket/train/shard-*.tar", "format": "tar",
 *     "classes": [0, 1, 2], "image": { "height": 28, "width": 28, "channels": 1 } } }
 */
import type { Checker, JsonObject } from './validate';

export const IMAGE_FORMATS = ['tar', 'imagefolder'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export function isImageFormat(format: string): format is ImageFormat {
  return (IMAGE_FORMATS as readonly string[]).includes(format);
}

/** Largest side of the decoded (resized) image. */
export const MAX_IMAGE_SIDE = 2048;
/** Extension of the WebDataset member that holds a sample's class, unless `label` names another. */
export const DEFAULT_CLASS_EXTENSION = 'cls';

export interface ImageParams {
  /** Every image is resized to `height` × `width` pixels. */
  readonly height: number;
  readonly width: number;
  /** 1: grey, 3: RGB (an alpha channel is dropped, a grey image repeated). */
  readonly channels: 1 | 3;
  /**
   * `stretch`: to height × width whatever the aspect ratio; `crop`: scaled to cover, then the
   * centre cut out; `pad`: scaled to fit inside, black borders. @default 'stretch'
   */
  readonly resize: 'stretch' | 'crop' | 'pad';
  /**
   * How a pixel p (0–255) becomes a value: `range` [lo, hi] gives lo + (hi − lo) · p / 255; `mean`
   * and `std` (one per channel) give (p / 255 − mean) / std, as torchvision's Normalize.
   * @default { range: [0, 1] }
   */
  readonly scale: { readonly range: readonly [number, number] } | { readonly mean: readonly number[]; readonly std: readonly number[] };
}

const KNOWN = ['height', 'width', 'channels', 'resize', 'scale'] as const;

function numbers(c: Checker, field: string, value: unknown, length: number, what: string, ok: (v: number) => boolean): number[] | undefined {
  if (!Array.isArray(value) || value.length !== length || !value.every((v) => typeof v === 'number' && Number.isFinite(v) && ok(v))) {
    return c.fail(field, `a list of ${length} ${what}`, value);
  }
  return value as number[];
}

/** Checks `params.image` (`f` is the params' field); undefined when an issue was added. */
export function checkImageParams(c: Checker, f: string, value: unknown): ImageParams | undefined {
  const field = `${f}.image`;
  const o = c.object(field, value) as JsonObject | undefined;
  if (!o) return undefined;
  const before = c.issues.length;
  c.noUnknownKeys(field, o, KNOWN);
  const height = c.number(`${field}.height`, o.height, { integer: true, min: 1, max: MAX_IMAGE_SIDE });
  const width = c.number(`${field}.width`, o.width, { integer: true, min: 1, max: MAX_IMAGE_SIDE });
  const channels = o.channels === undefined || o.channels === 1 || o.channels === 3 ? ((o.channels ?? 3) as 1 | 3) : c.fail(`${field}.channels`, '1 (grey) or 3 (RGB)', o.channels);
  const resize = c.oneOf(`${field}.resize`, o.resize, ['stretch', 'crop', 'pad'] as const, 'stretch');
  let scale: ImageParams['scale'] | undefined = { range: [0, 1] };
  if (o.scale !== undefined) {
    const s = c.object(`${field}.scale`, o.scale);
    scale = undefined;
    if (s) {
      const n = channels ?? 3;
      if (s.range !== undefined && s.mean === undefined && s.std === undefined && Object.keys(s).length === 1) {
        const range = numbers(c, `${field}.scale.range`, s.range, 2, 'numbers [lo, hi] with lo < hi', () => true);
        if (range && !(range[0]! < range[1]!)) c.fail(`${field}.scale.range`, '[lo, hi] with lo < hi', range);
        else if (range) scale = { range: [range[0]!, range[1]!] };
      } else if (s.mean !== undefined && s.std !== undefined && Object.keys(s).length === 2) {
        const mean = numbers(c, `${field}.scale.mean`, s.mean, n, `numbers (one per channel, ${n})`, () => true);
        const std = numbers(c, `${field}.scale.std`, s.std, n, `numbers greater than 0 (one per channel, ${n})`, (v) => v > 0);
        if (mean && std) scale = { mean, std };
      } else {
        c.fail(`${field}.scale`, '`{ "range": [lo, hi] }` or `{ "mean": [...], "std": [...] }` (one number per channel)', s);
      }
    }
  }
  if (c.issues.length > before || height === undefined || width === undefined || channels === undefined || resize === undefined || scale === undefined) return undefined;
  return { height, width, channels, resize, scale };
}

/**
 * `label` and `features` of an image format: no features (the image is the row); the label is the
 * extension of the member holding the class (tar, default `cls`) or the class folder (imagefolder,
 * `label` absent). Returns [label, features]; undefined when an issue was added.
 */
export function checkImageLabel(c: Checker, f: string, format: ImageFormat, params: JsonObject): readonly [string, string[]] | undefined {
  const before = c.issues.length;
  if (params.features !== undefined) c.fail(`${f}.features`, `absent for format \`${format}\` (the decoded image is the row)`, params.features);
  if (params.image === undefined) c.fail(`${f}.image`, `an object with at least \`height\` and \`width\` for format \`${format}\``, params.image);
  let label = DEFAULT_CLASS_EXTENSION;
  if (format === 'imagefolder') {
    if (params.label !== undefined) c.fail(`${f}.label`, 'absent for format `imagefolder` (the class is the folder an image is in)', params.label);
    label = '';
  } else if (params.label !== undefined) {
    if (typeof params.label !== 'string' || !/^[a-z0-9_]{1,16}$/i.test(params.label)) c.fail(`${f}.label`, 'the extension of the member holding the class (`cls`: letters, digits, `_`, at most 16)', params.label);
    else label = params.label;
  }
  if (params.task !== undefined && params.task !== 'classification') c.fail(`${f}.task`, `\`classification\` (or absent) for format \`${format}\``, params.task);
  return c.issues.length > before ? undefined : [label, []];
}
