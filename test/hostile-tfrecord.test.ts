/**
 * A hostile TFRecord shard (pure, in process): one record whose int64_list packs more than
 * MAX_LIST_VALUES one-byte varints. As JS numbers that is 8 bytes of heap per byte of shard (a 512 MiB
 * record: 4 GiB at once, a fatal out-of-memory on every attempt); it fails non-retryably naming the
 * shard and the record.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ShardedParams } from '../src/config/sharded-data';
import { MAX_LIST_VALUES } from '../src/data/formats/example-proto';
import { maskedCrc32c } from '../src/data/formats/tfrecord';
import { decodeShardBytes } from '../src/data/records';

const varint = (n: number): number[] => {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
};
const field = (no: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([(no << 3) | 2, ...varint(body.length)]), body]);

function record(data: Buffer): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(data.length));
  const head = Buffer.alloc(4);
  head.writeUInt32LE(maskedCrc32c(len));
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(maskedCrc32c(data));
  return Buffer.concat([len, head, data, tail]);
}

/** tf.train.Example { features { feature { key: name, value { int64_list { value: packed } } } } } */
const example = (name: string, packed: Buffer): Buffer => field(1, field(1, Buffer.concat([field(1, Buffer.from(name)), field(2, field(3, field(1, packed)))])));

const params: ShardedParams = { uri: 'gs://b/x/*.tfrecord', manifest: false, format: 'tfrecord', label: 'y', features: ['a'], task: 'regression', classes: undefined, shuffleWindow: 64 };

test('a TFRecord int64_list of more than MAX_LIST_VALUES values fails non-retryably naming shard and record', async () => {
  const shard = Buffer.concat([record(example('a', Buffer.alloc(MAX_LIST_VALUES + 2))), record(example('y', Buffer.from([1])))]);
  console.log(`shard: ${shard.length} bytes, record 0 an int64_list of ${MAX_LIST_VALUES + 2} zeros`);
  const started = Date.now();
  await assert.rejects(decodeShardBytes(shard, 'gs://b/x/bomb.tfrecord', params), (err: Error) => {
    assert.equal(err.name, 'NonRetryableTrainingError', `${err.name}: ${err.message}`);
    assert.match(err.message, /gs:\/\/b\/x\/bomb\.tfrecord record 0/);
    assert.match(err.message, new RegExp(`int64_list of more than ${MAX_LIST_VALUES} values`));
    return true;
  });
  assert.ok(Date.now() - started < 10_000, 'within 10 s');
});
