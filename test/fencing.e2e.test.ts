/**
 * Fencing on the real stores (file:// and the fake-gcs-server emulator): two writers on one run at
 * once. The moments come from a seed the test prints (DT_TEST_SEED=<n> replays one).
 *
 *   node --import tsx --test test/fencing.e2e.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { GcsCheckpointStore } from '../src/checkpoints/gcs-store';
import { listCheckpointSteps, loadLatestCheckpoint, readCheckpoint, writeCheckpoint } from '../src/checkpoints/format';
import { LeaseLostError, acquireLease, readLease, type LeaseHolder } from '../src/checkpoints/lease';
import { LATEST_KEY, LEASE_KEY, MANIFEST, checkpointObjectKey } from '../src/checkpoints/layout';
import { openStore } from '../src/checkpoints/open-store';
import { applyRetention } from '../src/checkpoints/retention';
import type { CheckpointStore } from '../src/checkpoints/store';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { mulberry32 } from './helpers/seed';
import { tempDir } from './helpers/temporal';


const BASE_SEED = process.env.DT_TEST_SEED !== undefined ? Number(process.env.DT_TEST_SEED) : Date.now() % 1_000_000;
const SEEDS = process.env.DT_TEST_SEED !== undefined ? [BASE_SEED] : [0, 1, 2, 3, 4].map((i) => BASE_SEED + i);
console.log(`[fencing] seeds ${SEEDS.join(', ')} (replay one with DT_TEST_SEED=<seed>)`);

const holder = (attempt: number, activityId = '7'): LeaseHolder => ({ workflowId: 'wf', workflowRunId: 'run-1', activityId, attempt });

/** Each writer's objects carry its name, so a mix of two writers' objects would show. */
function objectsFor(step: number, writer: string): Map<string, Buffer> {
  return new Map([
    ['model.json', Buffer.from(JSON.stringify({ step, writer }))],
    ['weights.bin', Buffer.from(`weights ${step} by ${writer};`.repeat(20))],
    ['optimizer.bin', Buffer.from(`optimizer ${step} by ${writer}`)],
    ['state.json', Buffer.from(JSON.stringify({ step, writer }))],
  ]);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Logs, in one sequence, the lease reads and manifest commits each writer makes. */
function traced(store: CheckpointStore, who: string, events: string[]): CheckpointStore {
  return {
    uri: store.uri,
    uriOf: (k) => store.uriOf(k),
    put: (k, d) => store.put(k, d),
    getVersioned: (k) => store.getVersioned(k),
    list: (p) => store.list(p),
    deletePrefix: (p) => store.deletePrefix(p),
    get: (k) => {
      if (k === LEASE_KEY) events.push(`${who}:lease-check`);
      return store.get(k);
    },
    putIfVersion: async (k, d, v) => {
      await store.putIfVersion(k, d, v);
      if (k.endsWith(`/${MANIFEST}`)) events.push(`${who}:commit ${k}`);
    },
    // The stores' own batch of create-only writes (a checkpoint's objects, its manifest), traced too.
    createObjects: async (objects, options) => {
      const created = await store.createObjects!(objects, options);
      objects.forEach((o, i) => created[i] && o.key.endsWith(`/${MANIFEST}`) && events.push(`${who}:commit ${o.key}`));
      return created;
    },
  };
}

const LAST_STEP = 100;

async function twoWriters(newStore: () => Promise<CheckpointStore>, seed: number): Promise<void> {
  const rand = mulberry32(seed);
  const base = await newStore();
  const events: string[] = [];
  const a = traced(base, 'A', events);
  const b = traced(base, 'B', events);
  const jitter = (): Promise<void> => sleep(Math.floor(rand() * 4));

  // The moment B starts: after A stored a seeded number of objects (4 per step), mid-step or between.
  const startAfterObjects = Math.floor(rand() * 4 * (LAST_STEP / 10 - 1));
  let objectsStored = 0;
  let startB: () => void = () => undefined;
  const bMayStart = new Promise<void>((resolve) => (startB = resolve));
  // A: attempt 1, writes steps 10, 20, ... until it loses its lease.
  const leaseA = await acquireLease(a, holder(1));
  const writerA = (async () => {
    try {
      for (let step = 10; step <= LAST_STEP; step += 10) {
        const afterObject = async (): Promise<void> => {
          if (++objectsStored >= startAfterObjects) startB();
          await jitter();
        };
        await writeCheckpoint(a, step, objectsFor(step, 'A'), { lease: leaseA, afterObject });
      }
    } finally {
      startB();
    }
  })();
  // B: attempt 2, starts while A is still writing, resumes from the newest verified checkpoint
  // and writes on to the end.
  const writerB = (async () => {
    await bMayStart;
    const leaseB = await acquireLease(b, holder(2));
    events.push('B:acquired');
    const from = (await loadLatestCheckpoint(b, LAST_STEP, () => undefined))?.step ?? 0;
    for (let step = from + 10; step <= LAST_STEP; step += 10) {
      await writeCheckpoint(b, step, objectsFor(step, 'B'), { lease: leaseB, afterObject: jitter });
    }
    return { from, token: leaseB.token };
  })();
  const [ra, rb] = await Promise.allSettled([writerA, writerB]);
  assert.equal(rb.status, 'fulfilled', `seed ${seed}: the newer writer finishes (${rb.status === 'rejected' ? String(rb.reason) : ''})`);
  // A may have finished before B took over (a short seeded delay); if it had not, it failed with LeaseLostError.
  const acquiredAt = events.indexOf('B:acquired');
  const aCommitsAfter = events.slice(acquiredAt).filter((e) => e.startsWith('A:commit'));
  if (ra.status === 'rejected') {
    assert.ok(ra.reason instanceof LeaseLostError, `seed ${seed}: the loser fails with LeaseLostError, got ${String(ra.reason)}`);
    assert.match((ra.reason as Error).message, /attempt 1.*taken over by .*attempt 2/);
  } else {
    const lastA = events.lastIndexOf(`A:commit ${checkpointObjectKey(LAST_STEP, MANIFEST)}`);
    assert.ok(lastA < acquiredAt || aCommitsAfter.length <= 1, `seed ${seed}: A went on writing after B took over: ${events.join(' ')}`);
  }
  assert.ok(aCommitsAfter.length <= 1, `seed ${seed}: A committed ${aCommitsAfter.length} steps after B took over`);
  // Fencing: A commits nothing on a lease check made after B took over. (A check that started
  // before the takeover may still commit once: that is the only race, and the format absorbs it.)
  for (const commit of aCommitsAfter) {
    const i = events.indexOf(commit);
    const lastCheck = events.lastIndexOf('A:lease-check', i);
    assert.ok(lastCheck < acquiredAt, `seed ${seed}: ${commit} came from a lease check made after B took over: ${events.join(' ')}`);
  }

  // One clean line: every step once, every manifest verifies, each step's objects from one writer.
  assert.deepEqual(await listCheckpointSteps(base), Array.from({ length: LAST_STEP / 10 }, (_, i) => (i + 1) * 10), `seed ${seed}`);
  for (const step of await listCheckpointSteps(base)) {
    const read = await readCheckpoint(base, step);
    assert.ok(read.ok, `seed ${seed}: step ${step} verifies (${read.ok ? '' : read.reason})`);
    const writers = new Set([...read.checkpoint.objects.values()].map((d) => /by (\w)/.exec(d.toString())?.[1] ?? JSON.parse(d.toString()).writer));
    assert.equal(writers.size, 1, `seed ${seed}: step ${step} mixes writers ${[...writers].join(', ')}`);
    const writer = [...writers][0];
    assert.equal(read.checkpoint.manifest.writer?.holder.attempt, writer === 'A' ? 1 : 2, `seed ${seed}: step ${step}'s manifest names its writer`);
  }
  assert.equal(JSON.parse((await base.get(LATEST_KEY))!.toString()).step, LAST_STEP);
  const aSteps = events.filter((e) => e.startsWith('A:commit')).length;
  console.log(
    `[fencing] ${base.uri.split(':')[0]} seed ${seed}: A committed ${aSteps} steps (${aCommitsAfter.length} in the check-to-commit window), ` +
      `${ra.status === 'rejected' ? 'then failed with LeaseLostError' : 'finished before the takeover'}; B started after A's object ${startAfterObjects}, resumed from step ${rb.value.from} (token ${rb.value.token})`,
  );
  assert.equal((await readLease(base))?.holder.attempt, 2);
}

function fencingSuite(name: string, newStore: () => Promise<CheckpointStore>): void {
  void describe(`${name}: fencing`, () => {
    for (const seed of SEEDS) {
      void test(`two writers at once, seed ${seed}: the loser stops before its next commit, one clean line`, () => twoWriters(newStore, seed));
    }

    void test('a writer older than the holder is refused at once, and never takes the lease back', async () => {
      const store = await newStore();
      await acquireLease(store, holder(3));
      await assert.rejects(acquireLease(store, holder(2)), LeaseLostError);
      const early = { ...holder(1, '9'), scheduledAtMs: 1000 };
      const late = { ...holder(1, '10'), scheduledAtMs: 2000 };
      const l = await acquireLease(store, late);
      await assert.rejects(acquireLease(store, early), LeaseLostError);
      await l.assertHeld();
      assert.equal((await readLease(store))?.token, 2);
    });

    void test('the same attempt acquiring again fences its own earlier acquisition', async () => {
      const store = await newStore();
      const first = await acquireLease(store, holder(1));
      const second = await acquireLease(store, holder(1));
      assert.equal(second.token, first.token + 1);
      await assert.rejects(first.assertHeld(), LeaseLostError);
      await second.assertHeld();
    });

    void test('manifests commit only if absent: two writers racing one step leave one whole checkpoint', async () => {
      const store = await newStore();
      const [x, y] = await Promise.all([writeCheckpoint(store, 10, objectsFor(10, 'X')), writeCheckpoint(store, 10, objectsFor(10, 'Y'))]);
      assert.equal([x, y].filter((r) => r.written).length, 1);
      const loser = x.written ? y : x;
      assert.equal(loser.matches, false, 'the loser learns its memory is not the committed checkpoint');
      const read = await readCheckpoint(store, 10);
      assert.ok(read.ok);
      const winner = x.written ? 'X' : 'Y';
      assert.deepEqual(read.checkpoint.objects, objectsFor(10, winner));
    });

    void test('a stale evaluation (lost lease) never runs retention', async () => {
      const store = await newStore();
      const stale = await acquireLease(store, holder(1));
      for (const step of [10, 20, 30]) await writeCheckpoint(store, step, objectsFor(step, 'A'), { lease: stale });
      await acquireLease(store, holder(2));
      await assert.rejects(applyRetention(store, 1, [], { lease: stale }), LeaseLostError);
      assert.deepEqual(await listCheckpointSteps(store), [10, 20, 30]);
      await assert.rejects(writeCheckpoint(store, 40, objectsFor(40, 'A'), { lease: stale }), LeaseLostError);
      assert.equal(await store.get(checkpointObjectKey(40, MANIFEST)), undefined);
    });
  });
}

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
fencingSuite('file store', async () => {
  const dir = tempDir('dt-fencing-');
  dirs.push(dir);
  return openStore(pathToFileURL(dir).href);
});

void describe('GCS emulator', () => {
  let emu: GcsEmulator;
  let n = 0;
  before(async () => {
    emu = await startGcsEmulator({ buckets: ['fencing'], backend: 'memory' });
  });
  after(async () => {
    await emu?.dispose();
  });
  fencingSuite('GCS store', async () => new GcsCheckpointStore(`gs://fencing/run-${process.pid}-${n++}`, { storage: emu.storage }));
});
