/**
 * A hostile JSONL shard (pure, in process): one line holding an array of millions of numbers. Parsed,
 * it takes about 4× its text in heap at once (a 512 MiB shard: a fatal out-of-memory of the process,
 * on a decode thread too, on every attempt); it fails non-retryably naming the shard and the line.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ShardedParams } from '../src/config/sharded-data';
import { decodeOffThread } from '../src/data/decode-pool';
import { decodeShardBytes, MAX_JSONL_LINE_CHARS } from '../src/data/records';
import { NonRetryableTrainingError } from '../src/training/protocol';
import { MAX_CSV_FIELDS } from '../src/training/tabular-parse';

const params: ShardedParams = { uri: 'gs://b/x/*.jsonl', manifest: false, format: 'jsonl', label: 'y', features: ['a'], task: 'regression', classes: undefined, shuffleWindow: 64 };

test('a JSONL line longer than MAX_JSONL_LINE_CHARS fails non-retryably before JSON.parse, naming shard and line, here and on the decode pool', async () => {
  const numbers = MAX_JSONL_LINE_CHARS / 2 + 8;
  const bomb = () => Buffer.from(`{"a":1,"y":2}\n{"a":[${'0,'.repeat(numbers)}0],"y":1}\n`);
  console.log(`shard: ${bomb().length} bytes, line 2 an array of ${numbers + 1} numbers`);
  for (const [how, run] of [
    ['main thread', () => decodeShardBytes(bomb(), 'gs://b/x/bomb.jsonl', params)],
    ['decode pool', () => decodeOffThread(bomb(), 'gs://b/x/bomb.jsonl', params)],
  ] as const) {
    const started = Date.now();
    await assert.rejects(run(), (err: Error) => {
      assert.equal(err.name, 'NonRetryableTrainingError', `${how}: ${err.name}: ${err.message}`);
      assert.match(err.message, /line 2 of shard gs:\/\/b\/x\/bomb\.jsonl/);
      assert.match(err.message, new RegExp(`at most ${MAX_JSONL_LINE_CHARS} characters`));
      return true;
    });
    assert.ok(Date.now() - started < 10_000, `${how}: within 10 s`);
  }
  // an ordinary line of 1,001 numbers still decodes
  const fine = (await decodeShardBytes(Buffer.from(`{"a":[${'1,'.repeat(1000)}1],"y":2}\n`), 'gs://b/x/ok.jsonl', params)).shard!;
  assert.equal(fine.x.length, 1001);
});

test('a CSV record of more than MAX_CSV_FIELDS fields fails non-retryably while it is read, naming shard and line', async () => {
  const csv: ShardedParams = { ...params, format: 'csv', uri: 'gs://b/x/*.csv' };
  const bomb = Buffer.from(`a,y\n1,2\n${'0,'.repeat(MAX_CSV_FIELDS + 1)}0\n`);
  console.log(`shard: ${bomb.length} bytes, line 3 ${MAX_CSV_FIELDS + 2} fields`);
  const started = Date.now();
  await assert.rejects(decodeShardBytes(bomb, 'gs://b/x/bomb.csv', csv), (err: Error) => {
    assert.equal(err.name, 'NonRetryableTrainingError', `${err.name}: ${err.message}`);
    assert.ok(err instanceof NonRetryableTrainingError);
    assert.match(err.message, /gs:\/\/b\/x\/bomb\.csv line 3: more than 1048576 fields/);
    return true;
  });
  assert.ok(Date.now() - started < 10_000, 'within 10 s');
});
