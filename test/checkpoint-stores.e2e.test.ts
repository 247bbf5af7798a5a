/**
 * Checkpoint store contract, run against both implementations, plus store-specific tests.
 *
 *   node --import tsx --test test/checkpoint-stores.e2e.test.ts
 *
 * The GCS half runs the real fake-gcs-server (see test/helpers/gcs-emulator.ts).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { FileCheckpointStore, InvalidKeyError } from '../src/checkpoints/fs-store';
import { GcsCheckpointStore } from '../src/checkpoints/gcs-store';
import { openStore } from '../src/checkpoints/open-store';
import { isTransientError, withRetry } from '../src/checkpoints/retry';
import { PermanentStoreError, PreconditionFailedError, type CheckpointStore } from '../src/checkpoints/store';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';

const execFileAsync = promisify(execFile);
const REPO_ROOT = path.resolve(__dirname, '..');

let counter = 0;
const unique = (label: string): string => `${label}-${process.pid}-${Date.now().toString(36)}-${counter++}`;

/** Binary payload covering every byte value, plus random bytes. */
function binaryPayload(size = 4096): Buffer {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  return Buffer.concat([all, randomBytes(size)]);
}

function isPreconditionFailed(err: unknown): boolean {
  return err instanceof PreconditionFailedError;
}

/** The contract every CheckpointStore must meet. `newStore` returns an empty store each call. */
function contractSuite(name: string, newStore: () => Promise<CheckpointStore>): void {
  void describe(`${name}: CheckpointStore contract`, () => {
    void it('round-trips binary data through put/get/list/deletePrefix', async () => {
      const store = await newStore();
      const a = binaryPayload();
      const b = binaryPayload(10);
      await store.put('run/ckpt-0001/weights.bin', a);
      await store.put('run/ckpt-0001/manifest.json', Buffer.from('{"step":1}'));
      await store.put('run/ckpt-0002/weights.bin', b);
      await store.put('other/x', Buffer.from('x'));

      assert.deepEqual(await store.get('run/ckpt-0001/weights.bin'), a);
      assert.deepEqual(await store.get('run/ckpt-0002/weights.bin'), b);

      // Overwrite replaces the whole object.
      await store.put('run/ckpt-0002/weights.bin', Buffer.from([0, 255, 0]));
      assert.deepEqual(await store.get('run/ckpt-0002/weights.bin'), Buffer.from([0, 255, 0]));

      // Empty objects are objects too.
      await store.put('run/empty', Buffer.alloc(0));
      assert.deepEqual(await store.get('run/empty'), Buffer.alloc(0));

      assert.deepEqual(await store.list(''), [
        'other/x',
        'run/ckpt-0001/manifest.json',
        'run/ckpt-0001/weights.bin',
        'run/ckpt-0002/weights.bin',
        'run/empty',
      ]);
      assert.deepEqual(await store.list('run/ckpt-0001/'), ['run/ckpt-0001/manifest.json', 'run/ckpt-0001/weights.bin']);
      assert.deepEqual(await store.list('nothing-here/'), []);

      await store.deletePrefix('run/ckpt-0001/');
      assert.equal(await store.get('run/ckpt-0001/weights.bin'), undefined);
      assert.deepEqual(await store.list(''), ['other/x', 'run/ckpt-0002/weights.bin', 'run/empty']);

      // Deleting what is not there is not an error.
      await store.deletePrefix('run/ckpt-0001/');
      await store.deletePrefix('never/existed');
      await store.deletePrefix('run/');
      assert.deepEqual(await store.list(''), ['other/x']);
    });

    void it('list matches raw key prefixes (not only whole segments), sorted', async () => {
      const store = await newStore();
      for (const key of ['step-2/a', 'step-10/a', 'step-1/b', 'step-1/a', 'steps.txt']) await store.put(key, Buffer.from(key));
      assert.deepEqual(await store.list('step-1'), ['step-1/a', 'step-1/b', 'step-10/a']);
      assert.deepEqual(await store.list('step-1/'), ['step-1/a', 'step-1/b']);
      assert.deepEqual(await store.list('step'), ['step-1/a', 'step-1/b', 'step-10/a', 'step-2/a', 'steps.txt']);
      assert.deepEqual(await store.list('step-1/a'), ['step-1/a']);
    });

    void it('returns undefined for missing objects', async () => {
      const store = await newStore();
      assert.equal(await store.get('missing/object'), undefined);
      assert.equal(await store.getVersioned('missing/object'), undefined);
      await store.put('present', Buffer.from('p'));
      assert.equal(await store.get('presen'), undefined);
      assert.equal(await store.get('present/child'), undefined);
    });

    void it('uriOf names the object under the root URI', async () => {
      const store = await newStore();
      assert.ok(!store.uri.endsWith('/'), store.uri);
      assert.equal(store.uriOf('a/b.bin'), `${store.uri}/a/b.bin`);
    });

    void it('putIfVersion(undefined) creates only if absent', async () => {
      const store = await newStore();
      await store.putIfVersion('manifest.json', Buffer.from('first'), undefined);
      assert.deepEqual(await store.get('manifest.json'), Buffer.from('first'));

      await assert.rejects(store.putIfVersion('manifest.json', Buffer.from('second'), undefined), (err: unknown) => {
        assert.ok(isPreconditionFailed(err), `expected PreconditionFailedError, got ${String(err)}`);
        assert.equal((err as PreconditionFailedError).uri, store.uriOf('manifest.json'));
        return true;
      });
      assert.deepEqual(await store.get('manifest.json'), Buffer.from('first'));
    });

    void it('putIfVersion succeeds with the current version and changes the version', async () => {
      const store = await newStore();
      await store.put('m', Buffer.from('v1'));
      const v1 = await store.getVersioned('m');
      assert.ok(v1);
      assert.deepEqual(v1.data, Buffer.from('v1'));
      assert.equal(typeof v1.version, 'string');
      assert.ok(v1.version.length > 0);

      await store.putIfVersion('m', Buffer.from('v2'), v1.version);
      const v2 = await store.getVersioned('m');
      assert.ok(v2);
      assert.deepEqual(v2.data, Buffer.from('v2'));
      assert.notEqual(v2.version, v1.version);

      await store.putIfVersion('m', Buffer.from('v3'), v2.version);
      assert.deepEqual(await store.get('m'), Buffer.from('v3'));
    });

    void it('putIfVersion with a stale version throws PreconditionFailedError and keeps the winner', async () => {
      const store = await newStore();
      await store.put('m', Buffer.from('base'));
      const seen = await store.getVersioned('m');
      assert.ok(seen);
      await store.put('m', Buffer.from('someone else')); // the other writer wins
      await assert.rejects(store.putIfVersion('m', Buffer.from('mine'), seen.version), PreconditionFailedError);
      assert.deepEqual(await store.get('m'), Buffer.from('someone else'));

      // A version for an object that does not exist cannot match either.
      await assert.rejects(store.putIfVersion('absent', Buffer.from('x'), seen.version), PreconditionFailedError);
      assert.equal(await store.get('absent'), undefined);
    });

    void it('createObjects: chunks written in order, create-only per object, taken ones left as they are', async () => {
      const store = await newStore();
      assert.ok(store.createObjects, `${name} has a batch of create-only writes`);
      await store.put('c/taken.bin', Buffer.from('first writer'));
      const chunks = [binaryPayload(1000), Buffer.alloc(0), binaryPayload(70_000), Buffer.from('tail')];
      const seen: Array<[number, boolean]> = [];
      const created = await store.createObjects(
        [
          { key: 'c/chunked.bin', data: chunks },
          { key: 'c/taken.bin', data: Buffer.from('second writer') },
          { key: 'c/deeper/one.json', data: Buffer.from('{}') },
        ],
        { afterEach: (i, c) => void seen.push([i, c]) },
      );
      assert.deepEqual(created, [true, false, true]);
      assert.deepEqual([...seen].sort((a, b) => a[0] - b[0]), [[0, true], [1, false], [2, true]]);
      assert.deepEqual(await store.get('c/chunked.bin'), Buffer.concat(chunks));
      assert.deepEqual(await store.get('c/taken.bin'), Buffer.from('first writer'));
      assert.deepEqual(await store.get('c/deeper/one.json'), Buffer.from('{}'));
      // Six batches racing for the same two keys: one winner per key, its bytes whole.
      const racing = await Promise.all(
        Array.from({ length: 6 }, (_, w) => store.createObjects!([{ key: 'r/a', data: [Buffer.from(`a by ${w};`), binaryPayload(20_000)] }, { key: 'r/b', data: Buffer.from(`b by ${w}`) }])),
      );
      for (const k of [0, 1]) assert.equal(racing.filter((r) => r[k]).length, 1, `one creator of ${k === 0 ? 'r/a' : 'r/b'}: ${JSON.stringify(racing)}`);
      const aWinner = racing.findIndex((r) => r[0]);
      assert.match((await store.get('r/a'))!.subarray(0, 10).toString('latin1'), new RegExp(`^a by ${aWinner};`));
      assert.equal((await store.get('r/a'))!.length, `a by ${aWinner};`.length + 256 + 20_000);
      assert.deepEqual(await store.list('r/'), ['r/a', 'r/b']);
    });

    void it('concurrent compare-and-swap from the same version: exactly one wins', async () => {
      const store = await newStore();
      await store.put('counter', Buffer.from('0'));
      const base = await store.getVersioned('counter');
      assert.ok(base);
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) => store.putIfVersion('counter', Buffer.from(`writer-${i}`), base.version)),
      );
      const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(winners.length, 1, `winners: ${JSON.stringify(winners)}`);
      for (const r of results) if (r.status === 'rejected') assert.ok(isPreconditionFailed(r.reason), String(r.reason));
      assert.deepEqual(await store.get('counter'), Buffer.from(`writer-${winners[0]}`));

      const creates = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) => store.putIfVersion('fresh', Buffer.from(`c-${i}`), undefined)),
      );
      assert.equal(creates.filter((r) => r.status === 'fulfilled').length, 1);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// File store

const fileRoots: string[] = [];
async function newFileStore(): Promise<FileCheckpointStore> {
  const dir = await fsp.mkdtemp(path.join(tmpdir(), 'dt-fs-store-'));
  fileRoots.push(dir);
  return new FileCheckpointStore(`file://${dir}/root`);
}
after(async () => {
  await Promise.all(fileRoots.map((dir) => fsp.rm(dir, { recursive: true, force: true })));
});

contractSuite('FileCheckpointStore', newFileStore);

void describe('FileCheckpointStore specifics', () => {
  void it('rejects keys that could escape the root, and writes nothing outside it', async () => {
    const store = await newFileStore();
    const outside = path.join(path.dirname(store.root), 'escaped');
    const bad = [
      '',
      '../escaped',
      'a/../../escaped',
      '..',
      '/etc/passwd',
      `${outside}`,
      'a//b',
      'a/',
      './a',
      'a/./b',
      'a\\..\\..\\escaped',
      'a\0b',
      '.dt-lock-x',
      'C:/x',
    ];
    for (const key of bad) {
      await assert.rejects(store.put(key, Buffer.from('x')), InvalidKeyError, `put ${JSON.stringify(key)}`);
      await assert.rejects(store.get(key), InvalidKeyError, `get ${JSON.stringify(key)}`);
      await assert.rejects(store.getVersioned(key), InvalidKeyError, `getVersioned ${JSON.stringify(key)}`);
      await assert.rejects(store.putIfVersion(key, Buffer.from('x'), undefined), InvalidKeyError, `putIfVersion ${JSON.stringify(key)}`);
    }
    await assert.rejects(store.list('../'), InvalidKeyError);
    await assert.rejects(store.deletePrefix('../'), InvalidKeyError);
    await assert.rejects(store.list('a/../'), InvalidKeyError);
    await assert.rejects(fsp.access(outside));
    // Keys that merely look odd are fine.
    await store.put('..hidden/x..y', Buffer.from('ok'));
    assert.deepEqual(await store.list(''), ['..hidden/x..y']);
  });

  void it('version is the sha256 of the content', async () => {
    const store = await newFileStore();
    await store.put('k', Buffer.from('hello'));
    const v = await store.getVersioned('k');
    assert.equal(v?.version, '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  });

  void it('leaves no temp or lock files behind, and lists none', async () => {
    const store = await newFileStore();
    for (let i = 0; i < 5; i++) await store.put('d/obj', Buffer.from(String(i)));
    await store.putIfVersion('d/cas', Buffer.from('1'), undefined);
    assert.deepEqual((await fsp.readdir(path.join(store.root, 'd'))).sort(), ['cas', 'obj']);
    assert.deepEqual(await store.list(''), ['d/cas', 'd/obj']);
  });

  void it('deletePrefix prunes emptied directories but keeps the root', async () => {
    const store = await newFileStore();
    await store.put('a/b/c/d', Buffer.from('1'));
    await store.put('a/keep', Buffer.from('2'));
    await store.deletePrefix('a/b');
    assert.deepEqual(await fsp.readdir(path.join(store.root, 'a')), ['keep']);
    await store.deletePrefix('');
    assert.deepEqual(await fsp.readdir(store.root), []);
  });

  void it('waits for a held lock, then gives up; breaks a lock older than the stale limit', async () => {
    const dir = await fsp.mkdtemp(path.join(tmpdir(), 'dt-fs-lock-'));
    fileRoots.push(dir);
    const store = new FileCheckpointStore(dir, { lockWaitMs: 300, staleLockMs: 30_000 });
    await store.put('m', Buffer.from('v1'));
    const lock = path.join(dir, '.dt-lock-m');
    await fsp.writeFile(lock, 'someone else');
    const v1 = await store.getVersioned('m');
    assert.ok(v1);
    const t0 = Date.now();
    await assert.rejects(store.putIfVersion('m', Buffer.from('v2'), v1.version), /Timed out .* waiting for lock/);
    assert.ok(Date.now() - t0 >= 250);
    assert.deepEqual(await store.get('m'), Buffer.from('v1'));

    // The holder died 60 s ago: the lock is stale and gets broken.
    const old = new Date(Date.now() - 60_000);
    await fsp.utimes(lock, old, old);
    await store.putIfVersion('m', Buffer.from('v2'), v1.version);
    assert.deepEqual(await store.get('m'), Buffer.from('v2'));
    await assert.rejects(fsp.access(lock)); // released
  });

  void it('create-only is exclusive across processes without a lock (link): one creator per key', async () => {
    const store = await newFileStore();
    const processes = 4;
    const keys = 40;
    const script = `
      const { FileCheckpointStore } = require(${JSON.stringify(path.join(REPO_ROOT, 'src/checkpoints/fs-store.ts'))});
      (async () => {
        const store = new FileCheckpointStore(${JSON.stringify(store.uri)});
        const mine = [];
        for (let i = 0; i < ${keys}; i += 4) {
          const batch = [0, 1, 2, 3].map((j) => ({ key: 'k/' + (i + j), data: [Buffer.from('by ' + process.pid + ' '), Buffer.alloc(5000, i + j)] }));
          const created = await store.createObjects(batch);
          created.forEach((c, j) => c && mine.push(i + j));
        }
        process.stdout.write(JSON.stringify({ pid: process.pid, mine }));
      })().catch((e) => { console.error(e); process.exit(1); });
    `;
    const runs = await Promise.all(Array.from({ length: processes }, () => execFileAsync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: REPO_ROOT, timeout: 60_000 })));
    const claims = runs.map((r) => JSON.parse(r.stdout) as { pid: number; mine: number[] });
    const all = claims.flatMap((c) => c.mine).sort((a, b) => a - b);
    assert.deepEqual(all, Array.from({ length: keys }, (_, i) => i), 'every key created exactly once');
    for (const { pid, mine } of claims) {
      for (const i of mine) assert.deepEqual(await store.get(`k/${i}`), Buffer.concat([Buffer.from(`by ${pid} `), Buffer.alloc(5000, i)]));
    }
    assert.deepEqual((await fsp.readdir(path.join(store.root, 'k'))).filter((f) => f.startsWith('.dt-')), [], 'no temp file left');
  });

  void it('compare-and-swap is exclusive across processes (no lost updates)', async () => {
    const store = await newFileStore();
    await store.put('counter', Buffer.from('0'));
    const processes = 3;
    const increments = 15;
    const script = `
      const { FileCheckpointStore } = require(${JSON.stringify(path.join(REPO_ROOT, 'src/checkpoints/fs-store.ts'))});
      const { PreconditionFailedError } = require(${JSON.stringify(path.join(REPO_ROOT, 'src/checkpoints/store.ts'))});
      (async () => {
        const store = new FileCheckpointStore(${JSON.stringify(store.uri)});
        let conflicts = 0;
        for (let i = 0; i < ${increments}; ) {
          const cur = await store.getVersioned('counter');
          try {
            await store.putIfVersion('counter', Buffer.from(String(Number(cur.data.toString()) + 1)), cur.version);
            i++;
          } catch (e) {
            if (!(e instanceof PreconditionFailedError)) throw e;
            conflicts++;
          }
        }
        process.stdout.write(String(conflicts));
      })().catch((e) => { console.error(e); process.exit(1); });
    `;
    const runs = await Promise.all(
      Array.from({ length: processes }, () =>
        execFileAsync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: REPO_ROOT, timeout: 60_000 }),
      ),
    );
    assert.equal((await store.get('counter'))?.toString(), String(processes * increments));
    for (const r of runs) assert.match(r.stdout, /^\d+$/);
  });
});

// ---------------------------------------------------------------------------------------------
// openStore

void describe('openStore', () => {
  void it('picks the implementation by scheme and resolves paths', () => {
    const f = openStore('file:///tmp/dt-open/a/');
    assert.ok(f instanceof FileCheckpointStore);
    assert.equal(f.root, '/tmp/dt-open/a');
    assert.equal(f.uri, 'file:///tmp/dt-open/a');

    const abs = openStore('/tmp/dt-open/b');
    assert.ok(abs instanceof FileCheckpointStore);
    assert.equal(abs.root, '/tmp/dt-open/b');

    const rel = openStore('ckpt/dir');
    assert.ok(rel instanceof FileCheckpointStore);
    assert.equal(rel.root, path.resolve(process.cwd(), 'ckpt/dir'));
    assert.equal((openStore('./x', { cwd: '/srv' }) as FileCheckpointStore).root, '/srv/x');

    const g = openStore('gs://my-bucket/runs/exp1/', { gcs: { apiEndpoint: 'http://127.0.0.1:1', projectId: 'p' } });
    assert.ok(g instanceof GcsCheckpointStore);
    assert.equal(g.uri, 'gs://my-bucket/runs/exp1');
    assert.equal(g.uriOf('k'), 'gs://my-bucket/runs/exp1/k');
    assert.equal(openStore('gs://my-bucket', { gcs: { apiEndpoint: 'http://127.0.0.1:1' } }).uri, 'gs://my-bucket');
  });

  void it('refuses unknown schemes, naming the URI and the supported ones', () => {
    for (const uri of ['s3://bucket/x', 'http://example.invalid/x', 'gcs://bucket']) {
      assert.throws(
        () => openStore(uri),
        (err: unknown) => err instanceof Error && err.message.includes(uri) && err.message.includes('file://') && err.message.includes('gs://'),
      );
    }
    assert.throws(() => openStore(''), /file:\/\//);
    assert.throws(() => openStore('gs://'), /gs:\/\//);
    assert.throws(() => openStore('file://host/x'), /file:\/\/host\/x/);
  });
});

// ---------------------------------------------------------------------------------------------
// retry

void describe('withRetry', () => {
  const transient = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });

  void it('retries transient errors with growing backoff, then succeeds', async () => {
    const delays: number[] = [];
    let calls = 0;
    const result = await withRetry(
      async () => {
        if (++calls < 4) throw transient;
        return 'ok';
      },
      { baseMs: 100, maxMs: 1000, isTransient: isTransientError, sleep: async (ms) => void delays.push(ms), random: () => 0.999 },
    );
    assert.equal(result, 'ok');
    assert.equal(calls, 4);
    assert.equal(delays.length, 3);
    assert.ok(delays[0]! >= 50 && delays[0]! <= 100, String(delays));
    assert.ok(delays[1]! > delays[0]! && delays[2]! > delays[1]!, String(delays));
  });

  void it('throws permanent errors at once, and stops at retries and at the deadline', async () => {
    let calls = 0;
    const permanent = Object.assign(new Error('forbidden'), { code: 403 });
    await assert.rejects(withRetry(async () => { calls++; throw permanent; }, { isTransient: isTransientError }), /forbidden/);
    assert.equal(calls, 1);

    calls = 0;
    await assert.rejects(withRetry(async () => { calls++; throw transient; }, { retries: 2, baseMs: 1, isTransient: isTransientError }), /ECONNREFUSED/);
    assert.equal(calls, 3);

    calls = 0;
    const t0 = Date.now();
    await assert.rejects(withRetry(async () => { calls++; throw transient; }, { baseMs: 20, maxMs: 40, deadlineMs: 300, isTransient: isTransientError }));
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 250 && elapsed < 1500, `elapsed ${elapsed}`);
    assert.ok(calls > 3);
  });

  void it('classifies errors', () => {
    for (const code of [408, 429, 500, 502, 503, 504]) assert.ok(isTransientError({ code }), String(code));
    for (const code of [400, 401, 403, 404, 412]) assert.ok(!isTransientError({ code }), String(code));
    for (const code of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE']) assert.ok(isTransientError({ code }), code);
    assert.ok(isTransientError(new Error('socket hang up')));
    assert.ok(isTransientError(new Error('fetch failed', { cause: { code: 'ECONNRESET' } })));
    assert.ok(!isTransientError(new Error('bad things')));
    assert.ok(!isTransientError(undefined));
  });
});

// ---------------------------------------------------------------------------------------------
// GCS store on fake-gcs-server

void describe('GcsCheckpointStore on fake-gcs-server', () => {
  const BUCKET = 'dt-checkpoints';
  let emu: GcsEmulator | undefined;

  before(async () => {
    emu = await startGcsEmulator({ buckets: [BUCKET], backend: 'memory' });
  });
  after(async () => {
    await emu?.dispose();
  });

  contractSuite('GcsCheckpointStore', async () => {
    assert.ok(emu);
    return new GcsCheckpointStore(`gs://${BUCKET}/${unique('contract')}`, { storage: emu.storage });
  });

  void it('works at the bucket root (no prefix) and keeps prefixed stores apart', async () => {
    assert.ok(emu);
    const rootStore = new GcsCheckpointStore(`gs://${BUCKET}`, { storage: emu.storage });
    const a = new GcsCheckpointStore(`gs://${BUCKET}/${unique('iso')}`, { storage: emu.storage });
    const key = unique('top');
    await rootStore.put(key, Buffer.from('r'));
    await a.put(key, Buffer.from('a'));
    assert.deepEqual(await rootStore.get(key), Buffer.from('r'));
    assert.deepEqual(await a.get(key), Buffer.from('a'));
    assert.deepEqual(await a.list(''), [key]);
    assert.ok((await rootStore.list(key)).includes(key));
    await rootStore.deletePrefix(key);
    assert.equal(await rootStore.get(key), undefined);
    assert.deepEqual(await a.get(key), Buffer.from('a'));
  });

  void it('version is the object generation', async () => {
    assert.ok(emu);
    const store = new GcsCheckpointStore(`gs://${BUCKET}/${unique('gen')}`, { storage: emu.storage });
    await store.put('g', Buffer.from('1'));
    const v = await store.getVersioned('g');
    assert.ok(v);
    const [meta] = await emu.storage.bucket(BUCKET).file(`${store.prefix}/g`).getMetadata();
    assert.equal(v.version, String(meta.generation));
    assert.match(v.version, /^\d+$/);
    // A version that is not a generation (e.g. a sha256 from the file store) never matches.
    await assert.rejects(store.putIfVersion('g', Buffer.from('2'), 'ab'.repeat(32)), PreconditionFailedError);
  });

  void it('a missing bucket is a PermanentStoreError naming the gs:// URI, without retrying', async () => {
    assert.ok(emu);
    let retries = 0;
    const store = new GcsCheckpointStore('gs://dt-no-such-bucket/run', {
      storage: emu.storage,
      retry: { onRetry: () => void retries++ },
    });
    const ops: Array<[string, () => Promise<unknown>]> = [
      ['put', () => store.put('k', Buffer.from('x'))],
      ['get', () => store.get('k')],
      ['getVersioned', () => store.getVersioned('k')],
      ['putIfVersion', () => store.putIfVersion('k', Buffer.from('x'), undefined)],
      ['list', () => store.list('')],
      ['deletePrefix', () => store.deletePrefix('')],
    ];
    for (const [name, op] of ops) {
      await assert.rejects(op(), (err: unknown) => {
        assert.ok(err instanceof PermanentStoreError, `${name}: ${String(err)}`);
        assert.match(err.message, /gs:\/\/dt-no-such-bucket\/run/);
        assert.match(err.uri, /^gs:\/\/dt-no-such-bucket\/run/);
        return true;
      });
    }
    assert.equal(retries, 0);
  });

  void it("the library's own auto-retry is off, so our retry loop is in control", () => {
    assert.ok(emu);
    assert.equal(emu.storage.retryOptions.autoRetry, false);
    const store = new GcsCheckpointStore(`gs://${BUCKET}`, { apiEndpoint: emu.endpoint, projectId: 'p' });
    assert.equal(store.storage.retryOptions.autoRetry, false);
  });

  void it('honours STORAGE_EMULATOR_HOST, with or without /storage/v1', async () => {
    assert.ok(emu);
    const saved = process.env.STORAGE_EMULATOR_HOST;
    try {
      for (const value of [emu.endpoint, `${emu.endpoint}/storage/v1`, `127.0.0.1:${emu.port}`]) {
        process.env.STORAGE_EMULATOR_HOST = value;
        const store = new GcsCheckpointStore(`gs://${BUCKET}/${unique('env')}`);
        await store.put('k', Buffer.from(value));
        assert.deepEqual(await store.get('k'), Buffer.from(value), value);
        assert.deepEqual(await store.list(''), ['k'], value);
      }
    } finally {
      if (saved === undefined) delete process.env.STORAGE_EMULATOR_HOST;
      else process.env.STORAGE_EMULATOR_HOST = saved;
    }
  });
});

void describe('GcsCheckpointStore across an emulator outage', () => {
  const BUCKET = 'dt-outage';
  let emu: GcsEmulator | undefined;

  before(async () => {
    emu = await startGcsEmulator({ buckets: [BUCKET], backend: 'filesystem' });
  });
  after(async () => {
    await emu?.dispose();
  });

  void it('a put started while the emulator is down succeeds via retries once it is back', { timeout: 60_000 }, async () => {
    assert.ok(emu);
    const retried: unknown[] = [];
    const store = new GcsCheckpointStore(`gs://${BUCKET}/run`, {
      storage: emu.storage,
      retry: { baseMs: 100, maxMs: 1000, onRetry: ({ error }) => void retried.push(error) },
    });
    const before = binaryPayload(1000);
    await store.put('ckpt-1/weights.bin', before);

    await emu.stop();
    assert.equal(emu.running, false);

    // With a short deadline the outage is reported as a (non-permanent) failure naming the object.
    const impatient = new GcsCheckpointStore(`gs://${BUCKET}/run`, { storage: emu.storage, retry: { baseMs: 50, deadlineMs: 500 } });
    await assert.rejects(impatient.put('x', Buffer.from('x')), (err: unknown) => {
      assert.ok(err instanceof Error && !(err instanceof PermanentStoreError), String(err));
      assert.match(err.message, /gs:\/\/dt-outage\/run\/x/);
      return true;
    });

    const during = binaryPayload(2000);
    const t0 = Date.now();
    const pending = store.put('ckpt-2/weights.bin', during);
    const restarted = new Promise<void>((resolve, reject) => {
      setTimeout(() => emu!.restart().then(resolve, reject), 3000);
    });
    await pending;
    await restarted;
    const elapsed = Date.now() - t0;

    assert.ok(elapsed >= 2900, `put finished after ${elapsed} ms, before the emulator was back`);
    assert.ok(retried.length > 0, 'expected the put to be retried');
    assert.ok(retried.every((e) => isTransientError(e)), 'only transient errors are retried');
    assert.deepEqual(await store.get('ckpt-2/weights.bin'), during);
    // Data written before the outage survived the restart (filesystem backend).
    assert.deepEqual(await store.get('ckpt-1/weights.bin'), before);
    assert.deepEqual(await store.list(''), ['ckpt-1/weights.bin', 'ckpt-2/weights.bin']);
  });
});
