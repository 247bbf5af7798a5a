/**
 * Issue #21 point 2: shard parsing on worker threads (src/data/decode-pool.ts). Pure: worker
 * threads in this process, real MNIST rows from the `mnist` package as JSONL.gz and CSV shards.
 *
 *   - the pool decodes to exactly the rows the main thread decodes (every float, the layout), and
 *     an input error comes back non-retryable with the main thread's message;
 *   - the decoded rows arrive as transferred Float32Array buffers (the worker keeps no copy) and
 *     the shard's bytes are handed over, not copied;
 *   - bench (no timing asserts): the streamed source trains through an epoch of a step loop shaped
 *     like step-loop.ts (a few ms of synchronous work per step, a yield every 10 ms), reading ahead
 *     with parsing on the main thread and then on the pool; the step-time stalls of each are
 *     printed, and the batches of both are checked equal.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { buildDataIndex } from '../src/data/data-index';
import { DecodePool } from '../src/data/decode-pool';
import { decodeShardBytes } from '../src/data/records';
import { listShards } from '../src/data/source';
import { ShardedSource, shardedParamsOf } from '../src/data/streamed';
import type { DatasetSpec } from '../src/config/train-config';
import { csvOf, jsonlOf, mnistRows } from './helpers/mnist-shards';

const CLASSES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-decode-pool-'));
const spec = (name: string, extra: Record<string, unknown> = {}): DatasetSpec => ({
  name: 'sharded',
  params: { uri: `file://${root}/${name}`, format: 'jsonl', label: 'y', features: ['pixels'], classes: CLASSES, ...extra },
});

describe('decode pool', () => {
  const pool = new DecodePool(2);
  const rows = mnistRows(6000);
  before(() => {
    process.env.DT_ALLOWED_URIS = `file://${root}`;
    fs.mkdirSync(path.join(root, 'big'));
    for (let k = 0; k < 3; k++) fs.writeFileSync(path.join(root, 'big', `part-${k}.jsonl.gz`), zlib.gzipSync(jsonlOf(rows.slice(k * 2000, (k + 1) * 2000))));
    fs.writeFileSync(path.join(root, 'small.csv'), csvOf(rows.slice(0, 300)));
    fs.writeFileSync(path.join(root, 'bad.jsonl'), jsonlOf(rows.slice(0, 3)).replace('"y":2', '"y":12'));
  });
  after(async () => {
    await pool.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('the pool decodes exactly what the main thread decodes, into transferred buffers', async () => {
    for (const [file, extra] of [
      ['big/part-1.jsonl.gz', {}],
      ['small.csv', { format: 'csv', features: Array.from({ length: 784 }, (_, k) => `p${k}`) }],
    ] as const) {
      const params = shardedParamsOf(spec(file, extra));
      const uri = `file://${root}/${file}`;
      const here = await decodeShardBytes(fs.readFileSync(path.join(root, file)), uri, params);
      const bytes = fs.readFileSync(path.join(root, file));
      const there = await pool.decode(bytes, uri, params);
      assert.equal(bytes.byteLength, 0, 'the shard bytes were handed over (transferred), not copied');
      assert.deepEqual(there.layout, here.layout);
      assert.equal(there.shard!.records, here.shard!.records);
      assert.ok(there.shard!.x instanceof Float32Array && there.shard!.y instanceof Float32Array);
      assert.equal(Buffer.compare(Buffer.from(there.shard!.x.buffer), Buffer.from(here.shard!.x.buffer)), 0, `${file}: features bit for bit`);
      assert.equal(Buffer.compare(Buffer.from(there.shard!.y.buffer), Buffer.from(here.shard!.y.buffer)), 0, `${file}: targets bit for bit`);
    }
  });

  test('an input error comes back non-retryable, with the message the main thread gives', async () => {
    const params = shardedParamsOf(spec('bad.jsonl'));
    const uri = `file://${root}/bad.jsonl`;
    const here = await decodeShardBytes(fs.readFileSync(path.join(root, 'bad.jsonl')), uri, params).then(
      () => assert.fail('decoded'),
      (e: Error) => e,
    );
    await assert.rejects(pool.decode(fs.readFileSync(path.join(root, 'bad.jsonl')), uri, params), (err: Error) => {
      assert.equal(err.name, 'NonRetryableTrainingError');
      assert.equal(err.message, here.message);
      assert.match(err.message, /params\.classes/);
      return true;
    });
  });

  test('bench: step-time stalls with parsing on the main thread and on the pool (printed)', async () => {
    const params = shardedParamsOf(spec('big/part-*.jsonl.gz', { shuffleWindow: 1000 }));
    const index = { ...(await buildDataIndex(params, await listShards(params))), format: 'durable-train/data-index@1' as const };
    const B = 32;
    const WORK_MS = 4;
    const EPOCHS = 3;
    const steps = Math.floor((EPOCHS * index.records) / B);
    // Two shards' rows fit the cache: every window's shards are read (again) ahead of use.
    const cacheBytes = 2 * 2000 * (784 + 10) * 4 + 1024;
    const run = async (decodePool: DecodePool | null) => {
      const source = new ShardedSource(index, params, B, 7, { cacheBytes, decodePool });
      const x = new Float32Array(B * 784);
      const y = new Float32Array(B * 10);
      /** Per step: wall time from the end of one step to the end of the next, minus its own work and its wait for data. */
      const blocked: number[] = [];
      let waited = 0;
      const batches: Buffer[] = [];
      let lastYield = performance.now();
      let last = 0;
      for (let step = 1; step <= steps; step++) {
        const from = performance.now();
        await source.prepare(step);
        const wait = performance.now() - from;
        if (step > 1) waited += wait;
        source.fill(step, x, y);
        if (step % 20 === 0) batches.push(Buffer.from(x.buffer.slice(0)));
        const until = performance.now() + WORK_MS;
        while (performance.now() < until); // a training step's synchronous native work
        const now = performance.now();
        if (step > 1) blocked.push(Math.max(0, now - last - wait - WORK_MS));
        last = now;
        if (now - lastYield >= 10) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          lastYield = performance.now();
        }
      }
      const wall = performance.now();
      source.close();
      blocked.sort((a, b) => a - b);
      return {
        batches,
        reads: source.stats.reads,
        waits: source.stats.waits,
        waited,
        blocked: blocked.reduce((a, b) => a + b, 0),
        p99: blocked[Math.floor(blocked.length * 0.99)]!,
        max: blocked[blocked.length - 1]!,
        wall,
      };
    };
    const inline = await run(null);
    const pooled = await run(pool);
    const row = (name: string, r: typeof inline) =>
      `${name.padEnd(12)} ${String(r.reads).padStart(5)} ${String(r.waits).padStart(5)} ${r.waited.toFixed(0).padStart(9)} ${r.blocked.toFixed(0).padStart(10)} ${r.p99.toFixed(1).padStart(8)} ${r.max.toFixed(1).padStart(8)}`;
    console.log(`decode bench: ${steps} steps (${EPOCHS} epochs) of ${WORK_MS} ms work, batch ${B}, 3 shards of 2000 MNIST rows (JSONL.gz), window 1000, cache of 2 shards, ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(1)}`);
    console.log('"blocked": time between steps beyond their work and their wait for data (the main thread busy elsewhere: parsing)');
    console.log(`${'parsing on'.padEnd(12)} reads waits waited ms blocked ms   p99 ms   max ms`);
    console.log(row('main thread', inline));
    console.log(row(`pool (${pool.size})`, pooled));
    assert.equal(pooled.batches.length, inline.batches.length);
    pooled.batches.forEach((b, k) => assert.equal(Buffer.compare(b, inline.batches[k]!), 0, `batch ${(k + 1) * 20} equal either way`));
    assert.ok(pool.stats.decoded >= pooled.reads, 'the pooled run decoded on the pool');
  });
});
