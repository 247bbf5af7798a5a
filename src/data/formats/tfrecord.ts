/**
 * TFRecord framing (tensorflow/core/lib/io/record_writer.cc), each record:
 *
 *   uint64 length (little-endian) | uint32 masked CRC32C of the 8 length bytes | length bytes of data | uint32 masked CRC32C of the data
 *
 * where masked(crc) = ((crc >>> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32). Both CRCs are checked,
 * with @node-rs/crc32 (SSE4.2/ARMv8 CRC instructions, prebuilt for each platform from npm): the
 * JS CRC32C of @google-cloud/storage took 1,771 ms for a 32 MB shard where it took 62 ms (10,000
 * MNIST records, this machine under load 23), which would make the checksum the pipeline's
 * bottleneck; the JS one stays the fallback where no binary exists.
 * A bad CRC, a truncated record or a length past the shard's end fails non-retryably, naming the
 * shard, the record and its byte offset (the same bytes fail the same way). `.gz` shards are
 * gunzipped before (records.ts), as TFRecordOptions(compression_type="GZIP") writes them.
 */
import { CRC32C } from '@google-cloud/storage';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import type { ShardedParams } from '../../config/sharded-data';
import { excerpt } from '../../trust/excerpt';
import { bad } from '../source';
import { exampleFeatures, WireFormatError, type TfFeature } from './example-proto';

const MASK_DELTA = 0xa282ead8;

/** @node-rs/crc32's SIMD CRC32C; @google-cloud/storage's JS one where its prebuilt binary is missing for the platform. */
const crc32c: (bytes: Uint8Array) => number = (() => {
  try {
    if (nativeCrc32c(Buffer.from('123456789')) >>> 0 === 0xe3069283) return (bytes: Uint8Array) => nativeCrc32c(bytes) >>> 0;
  } catch {
    // no binary for this platform: the JS one below
  }
  return (bytes: Uint8Array) => {
    const c = new CRC32C();
    c.update(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return c.valueOf() >>> 0;
  };
})();

/** TensorFlow's masked CRC32C of `bytes`. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

/** One record's data: buf[start, end); `offset` is where its header starts in the shard. */
export interface TfRecordSpan {
  readonly index: number;
  readonly offset: number;
  readonly start: number;
  readonly end: number;
}

function corrupt(uri: string, index: number, offset: number, what: string): never {
  return bad(`Expected shard ${uri} (\`params.format\` tfrecord) to be TFRecord records, got ${what} at record ${index} (byte offset ${offset}): the shard is corrupt or not a TFRecord file`);
}

/** The records of a TFRecord shard, both CRCs checked (see the top of this file). */
export function* tfRecords(buf: Buffer, uri: string): Generator<TfRecordSpan> {
  let pos = 0;
  for (let index = 0; pos < buf.length; index++) {
    const offset = pos;
    if (buf.length - pos < 12) corrupt(uri, index, offset, `a truncated header (${buf.length - pos} bytes left, 12 needed)`);
    const header = buf.subarray(pos, pos + 8);
    if (buf.readUInt32LE(pos + 8) !== maskedCrc32c(header)) corrupt(uri, index, offset, 'a bad length CRC');
    const length = Number(buf.readBigUInt64LE(pos));
    const start = pos + 12;
    if (length > buf.length - start - 4) corrupt(uri, index, offset, `a length of ${length} bytes past the shard's end (${Math.max(0, buf.length - start - 4)} left)`);
    const end = start + length;
    if (buf.readUInt32LE(end) !== maskedCrc32c(buf.subarray(start, end))) corrupt(uri, index, offset, 'a bad data CRC');
    yield { index, offset, start, end };
    pos = end + 4;
  }
}

/** The values of a record (the fields records.ts reads): features as arrays of numbers, the label as one value. */
export interface TfExample {
  readonly where: string;
  readonly get: (field: string) => unknown;
}

/** The tf.train.Example records of a TFRecord shard, only the features and label of `params` decoded. */
export function* tfExamples(buf: Buffer, uri: string, params: ShardedParams): Generator<TfExample> {
  const wanted = new Set([...params.features, params.label]);
  for (const r of tfRecords(buf, uri)) {
    const where = `${uri} record ${r.index} (byte offset ${r.offset})`;
    let features: Map<string, TfFeature>;
    try {
      features = exampleFeatures(buf, r.start, r.end, wanted);
    } catch (err) {
      if (!(err instanceof WireFormatError)) throw err;
      return bad(`Expected ${where} (\`params.format\` tfrecord) to be a tf.train.Example, got bytes that do not parse: ${err.message}`);
    }
    const get = (field: string): unknown => {
      const f = features.get(field);
      if (f === undefined) return undefined;
      if (field === params.label) return f.values.length === 1 ? f.values[0] : f.values;
      if (f.kind === 'bytes_list') {
        bad(`Expected feature \`${excerpt(field)}\` (\`params.features\`) of ${where} to be a float_list or int64_list, got a bytes_list`);
      }
      return f.values;
    };
    yield { where, get };
  }
}
