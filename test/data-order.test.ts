/**
 * The order of a sharded dataset (src/data/order.ts), pure: every example once per epoch, the same
 * position whatever step a run resumes at, windows bounded, and the in-memory order when the data
 * is one shard and one window.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ShardedOrder, shardOrder } from '../src/data/order';
import { BatchSampler } from '../src/training/rng';

const key = (p: { shard: number; offset: number }): string => `${p.shard}:${p.offset}`;

const layouts: Array<{ name: string; counts: number[]; window: number }> = [
  { name: 'even shards, window divides', counts: [10, 10, 10, 10], window: 8 },
  { name: 'uneven shards, window does not divide', counts: [7, 1, 13, 4, 9], window: 5 },
  { name: 'empty shards among them', counts: [0, 6, 0, 0, 11, 3, 0], window: 4 },
  { name: 'window larger than the data', counts: [3, 5, 2], window: 1000 },
  { name: 'window of one (shard order only)', counts: [4, 2, 6], window: 1 },
  { name: 'one shard', counts: [37], window: 6 },
];

for (const { name, counts, window } of layouts) {
  test(`every record exactly once per epoch, in range: ${name}`, () => {
    const order = new ShardedOrder(counts, 42, window);
    const n = order.size;
    assert.equal(n, counts.reduce((a, b) => a + b, 0));
    const epochs: string[][] = [];
    for (let epoch = 0; epoch < 3; epoch++) {
      const seen = new Set<string>();
      const sequence: string[] = [];
      for (let p = 0; p < n; p++) {
        const at = order.locate(epoch * n + p);
        assert.ok(at.shard >= 0 && at.shard < counts.length, `shard ${at.shard}`);
        assert.ok(at.offset >= 0 && at.offset < counts[at.shard]!, `offset ${at.offset} of shard ${at.shard} (${counts[at.shard]} records)`);
        seen.add(key(at));
        sequence.push(key(at));
      }
      assert.equal(seen.size, n, `epoch ${epoch} visits ${seen.size} distinct records of ${n}`);
      epochs.push(sequence);
    }
    if (n > 3) assert.notDeepEqual(epochs[0], epochs[1], 'each epoch has its own order');
  });

  test(`windows are bounded: each reads a contiguous run of the epoch's shard sequence: ${name}`, () => {
    const order = new ShardedOrder(counts, 7, window);
    for (let epoch = 0; epoch < 2; epoch++) {
      const { order: shards, starts } = order.epochLayout(epoch);
      const rank = new Map([...shards].map((s, k) => [s, k]));
      for (let w = 0; w < order.windowsPerEpoch; w++) {
        const from = w * window;
        const to = Math.min(from + window, order.size);
        const touched = new Set<number>();
        for (let p = from; p < to; p++) {
          const at = order.locate(epoch * order.size + p);
          // Its position in the epoch's concatenation of shards lies inside the window.
          const q = starts[rank.get(at.shard)!]! + at.offset;
          assert.ok(q >= from && q < to, `example ${p} of epoch ${epoch} reads position ${q}, outside window [${from}, ${to})`);
          touched.add(at.shard);
        }
        assert.deepEqual([...touched].sort((a, b) => a - b), order.windowShards(epoch, w).sort((a, b) => a - b));
      }
    }
  });
}

test('resumed at any step, a fresh order gives the same examples as one that ran from the start', () => {
  const counts = [9, 14, 3, 22, 8];
  const batch = 5;
  const running = new ShardedOrder(counts, 1234, 6);
  const stream: string[][] = [];
  for (let step = 1; step <= 50; step++) {
    stream.push(Array.from({ length: batch }, (_, k) => key(running.locate((step - 1) * batch + k))));
  }
  for (let resumeAt = 1; resumeAt <= 50; resumeAt += 7) {
    const fresh = new ShardedOrder(counts, 1234, 6);
    for (let step = resumeAt; step <= 50; step++) {
      const got = Array.from({ length: batch }, (_, k) => key(fresh.locate((step - 1) * batch + k)));
      assert.deepEqual(got, stream[step - 1], `step ${step} after resuming at ${resumeAt}`);
    }
  }
});

test('the position of a far step is computed, not replayed (a trillion examples in: well under a second)', () => {
  const counts = Array.from({ length: 2000 }, (_, i) => 50_000 + (i % 7));
  const order = new ShardedOrder(counts, 5, 65_536);
  const started = performance.now();
  const at = order.locate(1e12 + 17);
  const again = new ShardedOrder(counts, 5, 65_536).locate(1e12 + 17);
  assert.deepEqual(at, again);
  assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);
});

test('one shard in one window is exactly the in-memory sampler order (rng.ts)', () => {
  for (const [n, batch, seed] of [[100, 8, 11], [37, 5, 3], [1, 1, 9]] as const) {
    const order = new ShardedOrder([n], seed, n);
    const sampler = new BatchSampler(n, batch, seed);
    for (let step = 0; step < Math.ceil((3 * n) / batch); step++) {
      const want = [...sampler.indices(step)];
      const got = Array.from({ length: batch }, (_, k) => order.locate(step * batch + k).offset);
      assert.deepEqual(got, want, `step ${step}`);
    }
  }
});

test('seeds and shard orders: another seed, another order; the shard order is a permutation', () => {
  const a = new ShardedOrder([10, 10, 10], 1, 4);
  const b = new ShardedOrder([10, 10, 10], 2, 4);
  const seq = (o: ShardedOrder) => Array.from({ length: 30 }, (_, g) => key(o.locate(g)));
  assert.notDeepEqual(seq(a), seq(b));
  const perm = [...shardOrder(50, 3, 4)].sort((x, y) => x - y);
  assert.deepEqual(perm, Array.from({ length: 50 }, (_, i) => i));
  assert.notDeepEqual([...shardOrder(50, 3, 4)], [...shardOrder(50, 3, 5)]);
});

test('bad layouts are refused with what was expected and received', () => {
  assert.throws(() => new ShardedOrder([0, 0], 1, 4), /at least one example/);
  assert.throws(() => new ShardedOrder([3, -1], 1, 4), /shard 1 .* got -1/);
  assert.throws(() => new ShardedOrder([3], 1, 0), /shuffle window .* got 0/);
  assert.throws(() => new ShardedOrder([3], 1, 2).locate(-1), /example index .* got -1/);
});
