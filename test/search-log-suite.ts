/**
 * The search log's contract (src/checkpoints/search-log.ts, src/activities/search-log.ts), run
 * against a real store: file:// in test/search-log.test.ts, the GCS emulator in
 * test/search-log.e2e.test.ts. The activity runs in Temporal's activity context
 * (MockActivityEnvironment), which is where it takes the caller's workflow id from.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createSearchLogActivities, type AppendSearchLogInput } from '../src/activities/search-log';
import { SEARCH_JSON, searchLogKey } from '../src/checkpoints/layout';
import { readSearchLog } from '../src/checkpoints/search-log';
import { SEARCH_FORMAT, type SearchRecord } from '../src/checkpoints/search-identity';
import type { CheckpointStore } from '../src/checkpoints/store';
import { mulberry32, testSeed } from './helpers/seed';

export interface LogStores {
  /** A fresh, empty search folder URI. */
  newSearchUri(): string;
  /** Opens a store; each call a new client (a second writer is another process's client). */
  openStore(uri: string): CheckpointStore;
}

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(() => assert.fail('Expected a failure'), (e: unknown) => e);
  assert.ok(err instanceof ApplicationFailure, String(err));
  return err;
}

/** search.json owned by `owners`, as claimSearchFolder writes it. */
async function ownedBy(store: CheckpointStore, owners: string[]): Promise<void> {
  const record: SearchRecord = { format: SEARCH_FORMAT, fingerprint: 'f', identity: {}, createdAt: new Date(0).toISOString(), owners };
  await store.put(SEARCH_JSON, Buffer.from(JSON.stringify(record)));
}

/** `inner`, with every write waiting for `hold` first: a worker stalled between its decision and its write. */
function holdWrites(inner: CheckpointStore, hold: () => Promise<void>): CheckpointStore {
  return Object.assign(Object.create(inner) as CheckpointStore, {
    put: async (key: string, data: Buffer) => {
      await hold();
      return inner.put(key, data);
    },
    putIfVersion: async (key: string, data: Buffer, v: string | undefined) => {
      await hold();
      return inner.putIfVersion(key, data, v);
    },
  });
}

const trialRow = (trial: number, extra: Record<string, unknown> = {}) => ({ kind: 'trial', trial, status: 'completed', value: 1 / trial, params: { lr: 0.001 * trial }, ...extra });

export function searchLogSuite(name: string, stores: LogStores): void {
  /** The activities of one worker, over `openStore`; `as(workflowId, attempt)` runs one attempt in its context. */
  function worker(openStore: (uri: string) => CheckpointStore = (u) => stores.openStore(u)) {
    const activities = createSearchLogActivities({ openStore });
    return {
      append: (input: AppendSearchLogInput, workflowId: string, attempt = 1) =>
        new MockActivityEnvironment({ workflowExecution: { workflowId, runId: `run-${workflowId}` }, attempt }).run(activities.appendSearchLog, input) as ReturnType<typeof activities.appendSearchLog>,
      read: (input: Parameters<typeof activities.readSearchLog>[0]) => new MockActivityEnvironment().run(activities.readSearchLog, input) as ReturnType<typeof activities.readSearchLog>,
    };
  }

  void describe(`${name}: search log`, () => {
    test('appends segments create-only and reads them back in order, page by page', async () => {
      const searchUri = stores.newSearchUri();
      const store = stores.openStore(searchUri);
      await ownedBy(store, ['search-a']);
      const w = worker();
      for (let seq = 0; seq < 5; seq++) {
        const rows = [trialRow(2 * seq + 1), trialRow(2 * seq + 2, { note: 'ünïcode ✓' })];
        assert.deepEqual(await w.append({ searchUri, seq, rows }, 'search-a'), { key: searchLogKey(seq) });
      }
      assert.equal((await store.get('log/000000000003.jsonl'))!.toString(), `${JSON.stringify(trialRow(7))}\n${JSON.stringify(trialRow(8, { note: 'ünïcode ✓' }))}\n`);
      const all = await readSearchLog(store);
      assert.deepEqual(all.rows.map((r) => r.trial), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.deepEqual({ nextSeq: all.nextSeq, end: all.end, segments: all.segments }, { nextSeq: 5, end: true, segments: 5 });
      // Pages stop before the segment that would pass maxRows, and go on from nextSeq.
      const first = await w.read({ searchUri, maxRows: 3 });
      assert.deepEqual([first.rows.map((r) => r.trial), first.nextSeq, first.end], [[1, 2], 1, false]);
      const second = await w.read({ searchUri, fromSeq: first.nextSeq, maxRows: 4 });
      assert.deepEqual([second.rows.map((r) => r.trial), second.nextSeq], [[3, 4, 5, 6], 3]);
      const rest = await w.read({ searchUri, fromSeq: second.nextSeq });
      assert.deepEqual([rest.rows.map((r) => r.trial), rest.nextSeq, rest.end], [[7, 8, 9, 10], 5, true]);
      // A segment past a gap is not read until the gap is filled.
      await w.append({ searchUri, seq: 6, rows: [trialRow(14)] }, 'search-a');
      assert.deepEqual((await readSearchLog(store, { fromSeq: 5 })).rows, []);
      await w.append({ searchUri, seq: 5, rows: [trialRow(12)] }, 'search-a');
      assert.deepEqual((await readSearchLog(store, { fromSeq: 5 })).rows.map((r) => r.trial), [12, 14]);
    });

    test('a retry with the same rows succeeds and changes nothing; other rows under a taken seq fail as WouldOverwrite naming the key', async () => {
      const searchUri = stores.newSearchUri();
      const store = stores.openStore(searchUri);
      await ownedBy(store, ['search-a']);
      const w = worker();
      const input = { searchUri, seq: 0, rows: [trialRow(1), trialRow(2)] };
      await w.append(input, 'search-a', 1);
      const before = (await store.getVersioned(searchLogKey(0)))!;
      assert.deepEqual(await w.append(input, 'search-a', 2), { key: searchLogKey(0) });
      const f = await failure(w.append({ ...input, rows: [trialRow(1), trialRow(2, { value: 0 })] }, 'search-a', 3));
      assert.equal(f.type, 'WouldOverwrite');
      assert.equal(f.nonRetryable, true);
      assert.match(f.message, /log\/000000000000\.jsonl/);
      const after = (await store.getVersioned(searchLogKey(0)))!;
      assert.deepEqual([after.data, after.version], [before.data, before.version]);
    });

    test('a zombie attempt that writes after its retry: the same rows succeed, other rows are refused, the log keeps the retry\'s', async () => {
      const seed = testSeed(`${name} search-log zombie`);
      const random = mulberry32(seed);
      const searchUri = stores.newSearchUri();
      await ownedBy(stores.openStore(searchUri), ['search-a']);
      // The zombie's store holds its write until released: the worker that lost its lease on the attempt, still running.
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let held!: () => void;
      const holding = new Promise<void>((r) => (held = r));
      const zombieStore = (uri: string): CheckpointStore => holdWrites(stores.openStore(uri), async () => {
        held();
        await released;
      });
      const seqs = 1 + Math.floor(random() * 4);
      for (let seq = 0; seq < seqs; seq++) await worker().append({ searchUri, seq, rows: [trialRow(seq + 1)] }, 'search-a');
      const seq = seqs;
      const input = { searchUri, seq, rows: [trialRow(100), trialRow(101)] };
      const zombie = worker(zombieStore).append(input, 'search-a', 1);
      await holding;
      await worker().append(input, 'search-a', 2);
      release();
      assert.deepEqual(await zombie, { key: searchLogKey(seq) });
      // A zombie of a replay that decided other rows (it must not happen; if it does, nothing is lost).
      let releaseOther!: () => void;
      const releasedOther = new Promise<void>((r) => (releaseOther = r));
      const other = worker((uri) => holdWrites(stores.openStore(uri), () => releasedOther)).append({ ...input, seq: seq + 1, rows: [trialRow(200)] }, 'search-a', 1);
      await worker().append({ ...input, seq: seq + 1, rows: [trialRow(102)] }, 'search-a', 2);
      releaseOther();
      assert.equal((await failure(other)).type, 'WouldOverwrite');
      const page = await readSearchLog(stores.openStore(searchUri));
      assert.deepEqual(page.rows.map((r) => r.trial), [...Array.from({ length: seqs }, (_, i) => i + 1), 100, 101, 102]);
    });

    test('two writers racing for the same segments: exactly one wins each, the other fails WouldOverwrite, no row is lost or mixed', async () => {
      const searchUri = stores.newSearchUri();
      await ownedBy(stores.openStore(searchUri), ['search-a', 'search-b']);
      const a = worker();
      const b = worker();
      const SEGMENTS = 12;
      const winners: string[] = [];
      for (let seq = 0; seq < SEGMENTS; seq++) {
        const outcomes = await Promise.allSettled([
          a.append({ searchUri, seq, rows: [trialRow(seq, { writer: 'a' })] }, 'search-a'),
          b.append({ searchUri, seq, rows: [trialRow(seq, { writer: 'b' })] }, 'search-b'),
        ]);
        const won = outcomes.map((o) => o.status === 'fulfilled');
        assert.equal(won.filter(Boolean).length, 1, `segment ${seq}: ${JSON.stringify(outcomes.map((o) => (o.status === 'rejected' ? String(o.reason) : 'ok')))}`);
        const lost = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
        assert.ok(lost.reason instanceof ApplicationFailure && lost.reason.type === 'WouldOverwrite', String(lost.reason));
        winners.push(won[0] ? 'a' : 'b');
      }
      const page = await readSearchLog(stores.openStore(searchUri));
      assert.deepEqual(page.rows.map((r) => r.writer), winners);
      assert.deepEqual(page.rows.map((r) => r.trial), Array.from({ length: SEGMENTS }, (_, i) => i));
      // Two writers with the same rows (two attempts of one append) both succeed.
      const same = { searchUri, seq: SEGMENTS, rows: [trialRow(99)] };
      await Promise.all([a.append(same, 'search-a'), b.append(same, 'search-a')]);
      assert.equal((await readSearchLog(stores.openStore(searchUri), { fromSeq: SEGMENTS })).rows.length, 1);
    });

    test('only an owner appends: the workflow id comes from the activity context, a folder without search.json is refused', async () => {
      const searchUri = stores.newSearchUri();
      const store = stores.openStore(searchUri);
      const w = worker();
      const input = { searchUri, seq: 0, rows: [trialRow(1)] };
      const unclaimed = await failure(w.append(input, 'search-a'));
      assert.equal(unclaimed.type, 'NotSearchOwner');
      assert.equal(unclaimed.nonRetryable, true);
      await ownedBy(store, ['search-a']);
      // An input naming the owner does not make the caller one.
      const intruder = await failure(w.append({ ...input, workflowId: 'search-a' } as AppendSearchLogInput, 'search-evil'));
      assert.equal(intruder.type, 'NotSearchOwner');
      assert.match(intruder.message, /search-evil/);
      assert.deepEqual(await store.list('log/'), []);
      await w.append(input, 'search-a');
      assert.deepEqual(await store.list('log/'), [searchLogKey(0)]);
    });

    test('bounds: seq, rows, a row over 16 KiB, a segment over 1 MiB, nesting: InvalidConfig naming the field, nothing written', async () => {
      const searchUri = stores.newSearchUri();
      const store = stores.openStore(searchUri);
      await ownedBy(store, ['search-a']);
      const w = worker();
      const cases: Array<[string, Partial<AppendSearchLogInput> & Record<string, unknown>, RegExp]> = [
        ['negative seq', { seq: -1 }, /`seq`.*whole number from 0 to 999999999999.*`-1`/],
        ['fractional seq', { seq: 1.5 }, /`seq`/],
        ['seq past 12 digits', { seq: 1e12 }, /`seq`/],
        ['no rows', { rows: [] }, /`rows`.*non-empty array/],
        ['rows not an array', { rows: 'x' as unknown as [] }, /`rows`/],
        ['a row that is not an object', { rows: [trialRow(1), [1, 2] as unknown as Record<string, unknown>] }, /`rows\[1\]`.*a JSON object/],
        ['a row over 16 KiB', { rows: [trialRow(1), trialRow(2, { blob: 'x'.repeat(16 * 1024) })] }, /`rows\[1\]`.*at most 16384 bytes.*got 1\d{4} bytes/],
        ['a row far over 16 KiB', { rows: [trialRow(2, { blob: 'x'.repeat(1_000_000) })] }, /`rows\[0\]`.*at most 16384 bytes/],
        ['a segment over 1 MiB', { rows: Array.from({ length: 80 }, (_, i) => trialRow(i, { blob: 'y'.repeat(15_000) })) }, /`rows`.*at most 1048576 bytes.*in 80 rows/],
        ['rows nested 100 deep', { rows: [{ deep: JSON.parse('['.repeat(100) + ']'.repeat(100)) as unknown }] }, /`rows\[0\]\.deep.*at most 64 levels/],
      ];
      for (const [what, change, message] of cases) {
        const f = await failure(w.append({ searchUri, seq: 0, rows: [trialRow(1)], ...change } as AppendSearchLogInput, 'search-a'));
        assert.equal(f.type, 'InvalidConfig', what);
        assert.equal(f.nonRetryable, true, what);
        assert.match(f.message, message, `${what}: ${f.message}`);
      }
      assert.deepEqual(await store.list('log/'), []);
      // At the bounds: a 16 KiB row and a segment just under 1 MiB are accepted.
      const base = JSON.stringify(trialRow(1, { blob: '' })).length;
      await w.append({ searchUri, seq: 0, rows: [trialRow(1, { blob: 'z'.repeat(16 * 1024 - base) })] }, 'search-a');
      assert.equal((await store.get(searchLogKey(0)))!.length, 16 * 1024 + 1);
    });

    test('a damaged segment is reported naming it, not skipped', async () => {
      const searchUri = stores.newSearchUri();
      const store = stores.openStore(searchUri);
      await store.put(searchLogKey(0), Buffer.from('{"trial":1}\n'));
      await store.put(searchLogKey(1), Buffer.from('{"trial":2}\n{"tri'));
      await assert.rejects(readSearchLog(store), /log\/000000000001\.jsonl is not a search log segment/);
      const f = await failure(worker().read({ searchUri, fromSeq: 1 }));
      assert.equal(f.type, 'SearchLogCorrupt');
    });
  });
}
