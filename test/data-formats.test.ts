/**
 * The `sharded` dataset's binary formats on files written by the real writers (TensorFlow's
 * TFRecordWriter and tf.train.Example, pyarrow's ParquetWriter: scripts/make-format-fixtures.py,
 * committed in test/fixtures/formats, so this file needs no Python): values decoded equal to what
 * the writer was given (expected.json, written by the same script), both TFRecord CRCs checked, and
 * every bad input non-retryable, naming the shard and the record or column.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { parquetRecords } from '../src/data/formats/parquet';
import { maskedCrc32c, tfRecords } from '../src/data/formats/tfrecord';
import { decodeShard, firstLayout, shardContent } from '../src/data/records';
import { shardedDataset, shardedParamsOf } from '../src/data/streamed';
import { NonRetryableTrainingError } from '../src/training/protocol';

const FIXTURES = path.join(__dirname, 'fixtures/formats');
interface Row {
  x: number[];
  n: number[];
  one: number[];
  label: number;
  name: string;
  score: number;
}
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as { rows: Row[] };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-formats-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const paramsOf = (format: string, extra: Record<string, unknown>) =>
  shardedParamsOf({ name: 'sharded', params: { uri: 'file:///unused', format, label: 'label', features: ['x'], classes: [0, 1, 2], ...extra } });

/** Decodes one file as a whole dataset's only shard. */
async function decode(file: string, params: ReturnType<typeof paramsOf>, bytes?: Buffer) {
  const content = await shardContent(bytes ?? fs.readFileSync(file), pathToFileURL(file).href);
  const layout = await firstLayout(content, params);
  assert.ok(layout, 'a layout from the first record');
  return { layout, shard: await decodeShard(content, params, layout) };
}

async function rejectsNaming(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    assert.ok(err instanceof NonRetryableTrainingError, `${err.name}: ${err.message}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

const rowsOf = (x: Float32Array, width: number): number[][] => Array.from({ length: x.length / width }, (_, i) => Array.from(x.subarray(i * width, (i + 1) * width)));
const f32 = (v: readonly number[]): number[] => v.map((n) => Math.fround(n));

describe('TFRecord of tf.train.Example (written by TensorFlow)', () => {
  for (const file of ['small.tfrecord', 'small.tfrecord.gz']) {
    test(`${file}: float_list and int64_list features (negative int64 included), int64 label`, async () => {
      const params = paramsOf('tfrecord', { features: ['x', 'n', 'one'] });
      const { layout, shard } = await decode(path.join(FIXTURES, file), params);
      assert.deepEqual(layout.widths, [3, 2, 1]);
      assert.equal(shard.records, expected.rows.length);
      assert.deepEqual(rowsOf(shard.x, 6), expected.rows.map((r) => f32([...r.x, ...r.n, ...r.one])));
      assert.deepEqual(rowsOf(shard.y, 3), expected.rows.map((r) => [0, 1, 2].map((c) => (c === r.label ? 1 : 0))));
    });
  }

  test('the label from a bytes_list (classes as text) and from a float_list (regression)', async () => {
    const named = await decode(path.join(FIXTURES, 'small.tfrecord'), paramsOf('tfrecord', { label: 'name', classes: ['bird', 'cat', 'dog'] }));
    assert.deepEqual(Array.from(named.shard.y), expected.rows.flatMap((r) => ['bird', 'cat', 'dog'].map((c) => (c === r.name ? 1 : 0))));
    const scored = await decode(path.join(FIXTURES, 'small.tfrecord'), paramsOf('tfrecord', { label: 'score', task: 'regression', classes: undefined }));
    assert.deepEqual(Array.from(scored.shard.y), f32(expected.rows.map((r) => r.score)));
  });

  test('the framing: offsets and both masked CRCs as TensorFlow wrote them', () => {
    const bytes = fs.readFileSync(path.join(FIXTURES, 'small.tfrecord'));
    const spans = [...tfRecords(bytes, 'small.tfrecord')];
    assert.equal(spans.length, expected.rows.length);
    assert.equal(spans[0]!.offset, 0);
    for (const s of spans) {
      assert.equal(bytes.readUInt32LE(s.offset + 8), maskedCrc32c(bytes.subarray(s.offset, s.offset + 8)));
      assert.equal(bytes.readUInt32LE(s.end), maskedCrc32c(bytes.subarray(s.start, s.end)));
    }
    assert.equal(spans.at(-1)!.end + 4, bytes.length);
  });

  test('a bad data CRC, a bad length CRC and a truncated shard fail naming the shard, the record and its byte offset', async () => {
    const file = path.join(FIXTURES, 'small.tfrecord');
    const bytes = fs.readFileSync(file);
    const third = [...tfRecords(bytes, file)][2]!;
    const params = paramsOf('tfrecord', {});
    const data = Buffer.from(bytes);
    data[third.start + 5]! ^= 0x01;
    await rejectsNaming(decode(file, params, data), /small\.tfrecord/, /bad data CRC at record 2 \(byte offset \d+\)/, new RegExp(`byte offset ${third.offset}\\)`));
    const length = Buffer.from(bytes);
    length[third.offset]! ^= 0x01;
    await rejectsNaming(decode(file, params, length), /small\.tfrecord/, /bad length CRC at record 2/);
    await rejectsNaming(decode(file, params, bytes.subarray(0, bytes.length - 3)), /small\.tfrecord/, /past the shard's end .*at record 4 \(byte offset \d+\)/);
  });

  test('a shard not in the format it claims, a ragged feature and a bytes_list feature fail naming the shard and field', async () => {
    const jsonl = path.join(tmp, 'rows.tfrecord');
    fs.writeFileSync(jsonl, '{"x": [1, 2, 3], "label": 0}\n'.repeat(4));
    await rejectsNaming(decode(jsonl, paramsOf('tfrecord', {})), /rows\.tfrecord/, /`params\.format` tfrecord/, /record 0 \(byte offset 0\)/);
    await rejectsNaming(decode(path.join(FIXTURES, 'ragged.tfrecord'), paramsOf('tfrecord', {})), /ragged\.tfrecord record 1 \(byte offset \d+\)/, /feature `x`.*array of 3 numbers.*got an array of 2/);
    await rejectsNaming(decode(path.join(FIXTURES, 'small.tfrecord'), paramsOf('tfrecord', { features: ['name'], label: 'label' })), /small\.tfrecord record 0/, /feature `name`.*got a bytes_list/);
    await rejectsNaming(decode(path.join(FIXTURES, 'small.tfrecord'), paramsOf('tfrecord', { classes: [0, 1] })), /small\.tfrecord record 2/, /`params\.label`.*`params\.classes`/);
  });
});

describe('Parquet (written by pyarrow)', () => {
  const file = path.join(FIXTURES, 'small.parquet');

  test('number columns (double, int32, int64, float) and list columns (fixed-size float, variable double) across two row groups', async () => {
    const { layout, shard } = await decode(file, paramsOf('parquet', { features: ['a', 'b', 'c', 'f', 'v', 'w'] }));
    assert.deepEqual(layout.widths, [1, 1, 1, 1, 3, 2]);
    assert.equal(shard.records, expected.rows.length);
    assert.deepEqual(rowsOf(shard.x, 9), expected.rows.map((r) => f32([r.x[0]!, r.n[0]!, r.n[1]!, r.score, ...r.x, ...r.n])));
    assert.deepEqual(rowsOf(shard.y, 3), expected.rows.map((r) => [0, 1, 2].map((c) => (c === r.label ? 1 : 0))));
  });

  test('a string label with `classes`', async () => {
    const { shard } = await decode(file, paramsOf('parquet', { features: ['v'], label: 's', classes: ['bird', 'cat', 'dog'] }));
    assert.deepEqual(Array.from(shard.y), expected.rows.flatMap((r) => ['bird', 'cat', 'dog'].map((c) => (c === r.name ? 1 : 0))));
  });

  test('codecs: gzip pages through Node\'s zlib; lz4 (not supported) fails naming the shard and the codec', async () => {
    const { shard } = await decode(path.join(FIXTURES, 'gzip.parquet'), paramsOf('parquet', { features: ['v'] }));
    assert.deepEqual(rowsOf(shard.x, 3), expected.rows.map((r) => f32(r.x)));
    await rejectsNaming(decode(path.join(FIXTURES, 'lz4.parquet'), paramsOf('parquet', { features: ['v'] })), /shard \S*lz4\.parquet/, /LZ4/);
  });

  test('a shard whose metadata declares more decoded bytes than the bound fails before its pages are read', async () => {
    const params = paramsOf('parquet', { features: ['v'] });
    const read = async () => {
      for await (const r of parquetRecords(fs.readFileSync(file), 'file:///x/part-7.parquet', params, 50)) assert.fail(`a row was read: ${r.where}`);
    };
    await rejectsNaming(read(), /shard file:\/\/\/x\/part-7\.parquet/, /at most 50 bytes, its metadata declares \d+/);
  });

  test('a shard whose metadata declares more rows than the bound holds fails before its pages are read', async () => {
    const params = paramsOf('parquet', { features: ['a', 'b', 'c', 'f'] });
    const read = async () => {
      for await (const r of parquetRecords(fs.readFileSync(file), 'file:///x/part-8.parquet', params, 90)) assert.fail(`a row was read: ${r.where}`);
    };
    await rejectsNaming(read(), /shard file:\/\/\/x\/part-8\.parquet/, /declares 5 rows of 5 columns/);
  });

  test('a column of the wrong type, a missing column and a file that is not Parquet fail naming the shard and column', async () => {
    await rejectsNaming(decode(file, paramsOf('parquet', { features: ['a', 's'] })), /column `s` \(`params\.features`\) of shard \S*small\.parquet/, /got BYTE_ARRAY \(STRING\)/);
    await rejectsNaming(decode(file, paramsOf('parquet', { features: ['ts'] })), /column `ts` \(`params\.features`\) of shard \S*small\.parquet/, /got INT64 \(TIMESTAMP\)/);
    await rejectsNaming(decode(file, paramsOf('parquet', { features: ['a'], label: 'v' })), /column `v` \(`params\.label`\)/, /a number or string column/);
    await rejectsNaming(decode(file, paramsOf('parquet', { features: ['nope'] })), /columns of shard \S*small\.parquet/, /include `nope` \(`params\.features`\)/);
    const fake = path.join(tmp, 'part-0.parquet');
    fs.copyFileSync(path.join(FIXTURES, 'small.tfrecord'), fake);
    await rejectsNaming(decode(fake, paramsOf('parquet', {})), /shard \S*part-0\.parquet/, /to be a Parquet file, got bytes that are not/);
  });
});

test('through the sharded dataset: TFRecord (.gz) and Parquet shards of one folder load as the same rows', async () => {
  const dir = path.join(tmp, 'both');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(FIXTURES, 'small.tfrecord.gz'), path.join(dir, 'part-0.tfrecord.gz'));
  fs.copyFileSync(path.join(FIXTURES, 'small.parquet'), path.join(dir, 'part-0.parquet'));
  const spec = (format: string, glob: string, features: string[]) => ({
    name: 'sharded',
    params: { uri: pathToFileURL(path.join(dir, glob)).href, format, label: 'label', features, classes: [0, 1, 2] },
  });
  const options = { assertAllowed: () => undefined };
  const tf = await shardedDataset(spec('tfrecord', 'part-*.tfrecord.gz', ['x']), options);
  const pq = await shardedDataset(spec('parquet', 'part-*.parquet', ['v']), options);
  assert.equal(tf.size, expected.rows.length);
  assert.deepEqual(tf.xShape, [3]);
  assert.deepEqual(Array.from(tf.x), Array.from(pq.x));
  assert.deepEqual(Array.from(tf.y), Array.from(pq.y));
});
