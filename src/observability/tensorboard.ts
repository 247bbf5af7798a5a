/**
 * TensorBoard event files, written exactly once per epoch.
 *
 * Why not tfjs-node's `tf.node.summaryFileWriter`: it appends to one local file per writer, so a
 * retried or resumed epoch appends a second point for the same step (the forked curves MLflow
 * and Lightning users report after a resume), and it cannot write to gs://. Instead each evaluated
 * epoch gets its own small event file, named by the epoch so that TensorBoard reads the files in
 * step order, built only from the epoch's stored record (so a retry builds the same bytes) and
 * written once through the checkpoint store (file:// or gs://).
 *
 * Layout, as Keras's TensorBoard callback writes it (so TensorBoard overlays train and validation):
 *   <run>/tensorboard/train/…       epoch_loss, epoch_learning_rate, epoch_seconds
 *   <run>/tensorboard/validation/…  epoch_<metric> for every val_<metric> (epoch_loss, epoch_accuracy)
 * with the epoch as the step, as Keras does.
 *
 * Format: TFRecord framing (length, masked CRC-32C, data, masked CRC-32C) around `Event` protos
 * (tensorflow/core/util/event.proto): a `file_version` event first, then one event per scalar with
 * a `simple_value` summary. CRC-32C comes from @google-cloud/storage, which already computes it
 * for GCS uploads.
 */
import { CRC32C } from '@google-cloud/storage';
import { tensorboardEventsKey, type TensorBoardSplit } from '../checkpoints/layout';

export interface EpochScalars {
  readonly epoch: number;
  /** Seconds since the Unix epoch when the epoch was first recorded: part of the bytes, so it must not change on a retry. */
  readonly wallTime: number;
  readonly learningRate: number;
  /** Keras names: `loss`, `val_loss`, `val_accuracy`, …; non-finite values are skipped. */
  readonly metrics: Readonly<Record<string, number>>;
  readonly trainSeconds?: number;
}

/** One event file: its key under the run folder and its bytes. */
export interface EventFile {
  readonly key: string;
  readonly data: Buffer;
}

function varint(n: number | bigint): Buffer {
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

const tag = (field: number, wireType: number): Buffer => varint((field << 3) | wireType);

function lengthDelimited(field: number, payload: Buffer): Buffer {
  return Buffer.concat([tag(field, 2), varint(payload.length), payload]);
}

function double(field: number, value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(value);
  return Buffer.concat([tag(field, 1), b]);
}

function float(field: number, value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeFloatLE(value);
  return Buffer.concat([tag(field, 5), b]);
}

/** Event { wall_time = 1; step = 2; file_version = 3 | summary = 5 }. */
function event(wallTime: number, step: number, body: { fileVersion: string } | { scalars: ReadonlyArray<readonly [string, number]> }): Buffer {
  const parts = [double(1, wallTime), Buffer.concat([tag(2, 0), varint(step)])];
  if ('fileVersion' in body) {
    parts.push(lengthDelimited(3, Buffer.from(body.fileVersion, 'utf8')));
  } else {
    // Summary { repeated Value value = 1 }, Value { tag = 1; simple_value = 2 }.
    const values = body.scalars.map(([name, v]) => lengthDelimited(1, Buffer.concat([lengthDelimited(1, Buffer.from(name, 'utf8')), float(2, v)])));
    parts.push(lengthDelimited(5, Buffer.concat(values)));
  }
  return Buffer.concat(parts);
}

function maskedCrc(data: Buffer): Buffer {
  const crc = new CRC32C();
  crc.update(data);
  const c = crc.valueOf() >>> 0;
  const masked = ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
  const b = Buffer.alloc(4);
  b.writeUInt32LE(masked);
  return b;
}

/** A TFRecord: uint64 length, masked CRC of the length, the data, masked CRC of the data. */
export function tfRecord(data: Buffer): Buffer {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(data.length));
  return Buffer.concat([length, maskedCrc(length), data, maskedCrc(data)]);
}

function file(split: TensorBoardSplit, e: EpochScalars, scalars: Array<readonly [string, number]>): EventFile {
  const finite = scalars.filter(([, v]) => Number.isFinite(v));
  const records = [event(e.wallTime, e.epoch, { fileVersion: 'brain.Event:2' })];
  if (finite.length > 0) records.push(event(e.wallTime, e.epoch, { scalars: finite }));
  return { key: tensorboardEventsKey(split, e.epoch), data: Buffer.concat(records.map(tfRecord)) };
}

/** The two event files (train and validation) of one recorded epoch. Deterministic in its input. */
export function epochEventFiles(e: EpochScalars): EventFile[] {
  const names = Object.keys(e.metrics).sort();
  const train: Array<readonly [string, number]> = names
    .filter((n) => !n.startsWith('val_'))
    .map((n) => [`epoch_${n}`, e.metrics[n]!] as const);
  train.push(['epoch_learning_rate', e.learningRate]);
  if (e.trainSeconds !== undefined) train.push(['epoch_seconds', e.trainSeconds]);
  const validation = names.filter((n) => n.startsWith('val_')).map((n) => [`epoch_${n.slice(4)}`, e.metrics[n]!] as const);
  return [file('train', e, train), file('validation', e, validation)];
}
