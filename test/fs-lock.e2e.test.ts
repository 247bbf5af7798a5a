/**
 * The file store's lock when its holder is gone (issue #15): a lock left by a process that died on
 * this host is broken at once, not after the 30 s stale limit; a live holder's lock is waited for.
 * And a lease released by its holder says so, and is taken over by the next attempt.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fsp, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { lockHolderIsDead } from '../src/checkpoints/fs-lock';
import { FileCheckpointStore } from '../src/checkpoints/fs-store';
import { acquireLease, readLease, releaseLease, type LeaseHolder } from '../src/checkpoints/lease';
import { PreconditionFailedError } from '../src/checkpoints/store';
import { removeDirs, tempDir } from './helpers/cleanup';
import { mulberry32, testSeed } from './helpers/seed';

const dirs: string[] = [];
after(() => removeDirs(...dirs));

function newStore(): { store: FileCheckpointStore; dir: string } {
  const dir = tempDir('dt-fs-lock-');
  dirs.push(dir);
  return { store: new FileCheckpointStore(dir, { lockWaitMs: 1000, staleLockMs: 30_000 }), dir };
}

/** The pid of a process that has exited (and was reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

const token = (pid: number, host = os.hostname()): string =>
  JSON.stringify({ host, pidNs: readlinkSync('/proc/self/ns/pid'), pid, nonce: 'abc' });

void describe('file store lock with a dead holder', () => {
  void it('breaks at once a lock whose holder died on this host', async () => {
    const { store, dir } = newStore();
    await store.put('m', Buffer.from('v1'));
    const v1 = (await store.getVersioned('m'))!;
    const lock = path.join(dir, '.dt-lock-m');
    const pid = deadPid();
    await fsp.writeFile(lock, token(pid));
    assert.equal(lockHolderIsDead(token(pid)), true);
    const t0 = Date.now();
    await store.putIfVersion('m', Buffer.from('v2'), v1.version);
    assert.ok(Date.now() - t0 < 900, `took ${Date.now() - t0} ms`);
    assert.deepEqual(await store.get('m'), Buffer.from('v2'));
    await assert.rejects(fsp.access(lock)); // ours, released
  });

  void it('waits for a live holder, another host or an unreadable token (those go stale by age only)', async () => {
    const { store, dir } = newStore();
    await store.put('m', Buffer.from('v1'));
    const v1 = (await store.getVersioned('m'))!;
    const lock = path.join(dir, '.dt-lock-m');
    for (const content of [token(process.ppid), token(deadPid(), 'some-other-host'), 'garbled', '']) {
      assert.equal(lockHolderIsDead(content), false, content);
      await fsp.writeFile(lock, content);
      await assert.rejects(store.putIfVersion('m', Buffer.from('v2'), v1.version), /Timed out .* waiting for lock/);
      assert.equal(await fsp.readFile(lock, 'utf8'), content, 'the live lock is left in place');
    }
    assert.deepEqual(await store.get('m'), Buffer.from('v1'));
  });

  void it('breaks a lock path that is no lock file (a dangling symlink, a folder) within its wait, without spinning', async () => {
    for (const make of [(lock: string) => fsp.symlink('/nonexistent-dt-target', lock), (lock: string) => fsp.mkdir(lock)]) {
      const { store, dir } = newStore();
      await store.put('m', Buffer.from('v1'));
      const v1 = (await store.getVersioned('m'))!;
      const lock = path.join(dir, '.dt-lock-m');
      await make(lock);
      const cpu0 = process.cpuUsage();
      const t0 = Date.now();
      await store.putIfVersion('m', Buffer.from('v2'), v1.version);
      assert.ok(Date.now() - t0 < 900, `took ${Date.now() - t0} ms`);
      const cpu = process.cpuUsage(cpu0);
      assert.ok((cpu.user + cpu.system) / 1000 < 500, `used ${(cpu.user + cpu.system) / 1000} ms of CPU`);
      assert.deepEqual(await store.get('m'), Buffer.from('v2'));
      assert.deepEqual((await fsp.readdir(dir)).filter((f) => f.includes('dt-')), [], 'no lock, breaker or moved-aside file left');
    }
  });

  void it('two breakers of one dead lock never both hold it, nor take a live holder\'s lock (seeded interleavings)', async () => {
    const seed = testSeed('fs-lock breakers');
    const rand = mulberry32(seed);
    for (let round = 0; round < 20; round++) {
      const { dir } = newStore();
      const stores = [0, 1, 2].map(() => new FileCheckpointStore(dir, { lockWaitMs: 5000, staleLockMs: 30_000 }));
      await stores[0]!.put('m', Buffer.from('0'));
      await fsp.writeFile(path.join(dir, '.dt-lock-m'), token(deadPid()));
      // Three writers increment one counter by compare-and-swap at seeded moments: a lost update
      // (two holders at once) shows as a final count below the number of successful writes.
      let ok = 0;
      await Promise.all(stores.map(async (s, i) => {
        await new Promise((r) => setTimeout(r, Math.floor(rand() * 5)));
        for (let n = 0; n < 3; n++) {
          for (;;) {
            const cur = (await s.getVersioned('m'))!;
            try {
              await s.putIfVersion('m', Buffer.from(String(Number(cur.data.toString()) + 1)), cur.version);
              ok++;
              break;
            } catch (err) {
              if (!(err instanceof PreconditionFailedError)) throw new Error(`writer ${i} round ${round} (seed ${seed}): ${String(err)}`);
            }
          }
        }
      }));
      assert.equal(Number((await stores[0]!.get('m'))!.toString()), ok, `round ${round} (seed ${seed}): every successful write counted once`);
    }
  });
});

void describe('lease release', () => {
  const holder = (attempt: number): LeaseHolder => ({ workflowId: 'w', workflowRunId: 'r', activityId: '1', attempt });

  void it('marks the lease released for its own attempt only; the next attempt takes it over', async () => {
    const { store } = newStore();
    const first = await acquireLease(store, holder(1));
    assert.equal(await releaseLease(store, holder(2)), false, 'not the holder');
    assert.equal((await readLease(store))?.releasedAt, undefined);
    assert.equal(await first.release(), true);
    const released = await readLease(store);
    assert.equal(typeof released?.releasedAt, 'string');
    assert.equal(released?.token, first.token);
    assert.equal(await first.release(), true, 'idempotent');
    const second = await acquireLease(store, holder(2));
    assert.equal(second.token, first.token + 1);
    assert.equal((await readLease(store))?.releasedAt, undefined);
    assert.equal(await first.release(), false, 'taken over: nothing to give back');
  });
});
