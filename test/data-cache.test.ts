/**
 * The streamed source's memory and read-ahead (src/data/streamed.ts ShardedSource) on real files:
 * the decoded shards it holds stay within DT_DATA_CACHE_BYTES (beyond it only by the shards the
 * current batch reads), the batches are the same whatever the cache size, and with read-ahead a
 * step waits for a read only at the start (when the previous step's reads have had time to land).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { buildDataIndex } from '../src/data/data-index';
import { listShards } from '../src/data/source';
import { openStore } from '../src/checkpoints/open-store';
import { ShardedSource, dataCacheBytesFromEnv, openShardedSource, shardedParamsOf } from '../src/data/streamed';
import { mnistRows, writeShards } from './helpers/mnist-shards';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-data-cache-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const rows = mnistRows(1000);
writeShards(root, rows, 50); // 20 shards of 50 rows
const params = shardedParamsOf({
  name: 'sharded',
  params: { uri: `file://${root}/part-*.jsonl.gz`, format: 'jsonl', label: 'y', features: ['pixels'], classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], shuffleWindow: 64 },
});
const any = { assertAllowed: () => undefined };
const B = 16;
const STEPS = 160; // 2560 examples: two and a half passes over the data
const SHARD_BYTES = 50 * (784 + 10) * 4;

async function batches(source: ShardedSource, onStep?: () => Promise<void>): Promise<string[]> {
  const x = new Float32Array(B * 784);
  const y = new Float32Array(B * 10);
  const out: string[] = [];
  for (let step = 1; step <= STEPS; step++) {
    await source.prepare(step);
    source.fill(step, x, y);
    out.push(Buffer.from(x.buffer).toString('base64').slice(0, 64) + Buffer.from(y.buffer).toString('base64'));
    await onStep?.();
  }
  return out;
}

test('memory stays within the cache limit, beyond it only by the current batch, and batches do not depend on it', async () => {
  const index = await buildDataIndex(params, await listShards(params, any));
  const roomy = new ShardedSource(index, params, B, 9, { cacheBytes: 1e9 });
  const want = await batches(roomy);
  for (const shards of [0, 1, 3, 5]) {
    const limit = shards * SHARD_BYTES;
    const source = new ShardedSource(index, params, B, 9, { cacheBytes: limit });
    let most = 0;
    const got = await batches(source, async () => {
      await source.held().settled;
      const after = source.held();
      // Once reads land: within the limit, or only the shards the current batch reads.
      assert.ok(after.bytes <= Math.max(limit, after.pinnedBytes), `holds ${after.bytes} bytes (${after.shards.length} shards; the batch's: ${after.pinnedBytes}) with a limit of ${limit}`);
      most = Math.max(most, after.bytes);
    });
    assert.deepEqual(got, want, `cache of ${shards} shards`);
    if (shards >= 5) assert.ok(most <= limit, `held ${most} bytes with a limit of ${limit}`);
  }
});

test('read-ahead: when each step leaves time for reads, only the first step waits for one', async () => {
  const index = await buildDataIndex(params, await listShards(params, any));
  const source = new ShardedSource(index, params, B, 9, { cacheBytes: 8 * SHARD_BYTES });
  // The time a training step takes, here: until every read in flight has landed.
  await batches(source, async () => {
    await source.held().settled;
  });
  assert.equal(source.stats.waits, 1, `${source.stats.waits} of ${STEPS} steps waited for a read (${source.stats.reads} shard reads)`);
  const none = new ShardedSource(index, params, B, 9, { cacheBytes: 0 });
  await batches(none, async () => {
    await none.held().settled;
  });
  assert.ok(none.stats.waits > 10, `without room to read ahead, steps wait (${none.stats.waits})`);
});

test('`limit` keeps the first N records in listing order: each of them once per epoch, nothing else', async () => {
  const index = await buildDataIndex(params, await listShards(params, any));
  const source = new ShardedSource(index, params, B, 9, { cacheBytes: 1e9, limit: 130 });
  assert.equal(source.shapes().size, 130);
  for (let epoch = 0; epoch < 2; epoch++) {
    const seen = new Set<number>();
    for (let p = 0; p < 130; p++) {
      const at = source.order.locate(epoch * 130 + p);
      seen.add(at.shard * 50 + at.offset); // 50 records per shard
    }
    assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 130 }, (_, i) => i));
  }
});

test('a shuffle window larger than the cache is logged at the start, with what to change', async () => {
  process.env.DT_ALLOWED_URIS = `file://${root}`;
  const run = fs.mkdtempSync(path.join(root, 'run-'));
  const spec = { name: 'sharded', params: { uri: `file://${root}/part-*.jsonl.gz`, format: 'jsonl', label: 'y', features: ['pixels'], classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], shuffleWindow: 400 } };
  const logged: string[] = [];
  await openShardedSource(openStore(`file://${run}`), spec, B, 1, { cacheBytes: 4 * SHARD_BYTES, log: (m) => logged.push(m) });
  assert.ok(logged.some((m) => /shuffle window of 400 records .* more than the cache .* lower `shuffleWindow` or raise the cache/.test(m)), logged.join('\n'));
  logged.length = 0;
  await openShardedSource(openStore(`file://${run}`), spec, B, 1, { cacheBytes: 12 * SHARD_BYTES, log: (m) => logged.push(m) });
  assert.ok(!logged.some((m) => m.includes('shuffle window')), logged.join('\n'));
});

test('DT_DATA_CACHE_BYTES: a whole number of bytes, else a clear error', () => {
  assert.equal(dataCacheBytesFromEnv({ DT_DATA_CACHE_BYTES: '1048576' }), 1048576);
  assert.ok(dataCacheBytesFromEnv({}) > 0);
  assert.throws(() => dataCacheBytesFromEnv({ DT_DATA_CACHE_BYTES: '1.5GB' }), /`DT_DATA_CACHE_BYTES` to be a whole number of bytes from 0 up, got "1.5GB"/);
});
