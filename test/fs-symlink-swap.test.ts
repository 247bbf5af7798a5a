/**
 * file:// store writes are resolved against the real path the allow-list checked, at each open: a
 * folder of a run swapped for a symlink to a place outside the allow-list after the store was
 * opened (between two checkpoint writes, say) fails the write with a clear error, and nothing is
 * written, renamed or deleted outside. Real files, real symlinks, the real checkpoint writer.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { writeCheckpoint } from '../src/checkpoints/format';
import { FileCheckpointStore, WriteRefusedError } from '../src/checkpoints/fs-store';
import { guardedOpenStore } from '../src/checkpoints/open-store';
import { AllowList } from '../src/trust/allow-list';
import { SANDBOX, removeDirs, tempDir } from './helpers/cleanup';

const objectsFor = (step: number) =>
  new Map([
    ['model.json', Buffer.from(JSON.stringify({ step }))],
    ['weights.bin', Buffer.from(`weights of step ${step}`.repeat(64))],
    ['optimizer.bin', Buffer.from(`optimizer of step ${step}`)],
    ['state.json', Buffer.from(JSON.stringify({ step }))],
  ]);

/** Every file under `dir` with its bytes: what "nothing changed outside" compares. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const full = path.join(e.parentPath, e.name);
    out[path.relative(dir, full)] = e.isFile() ? fs.readFileSync(full).toString('base64') : e.isDirectory() ? '<dir>' : `<${e.isSymbolicLink() ? 'link' : 'other'}>`;
  }
  return out;
}

describe('a symlink swapped in after the check', () => {
  const allowed = tempDir('dt-swap-');
  // Outside the allow-list: beside this process's sandbox, not in it.
  const outside = fs.mkdtempSync(path.join(path.dirname(SANDBOX), 'dt-outside-'));
  const allow = AllowList.of([pathToFileURL(SANDBOX).href]);
  const open = guardedOpenStore(allow, (uri) => new FileCheckpointStore(uri));
  after(() => removeDirs(allowed, outside));

  let n = 0;
  const run = () => {
    const dir = path.join(allowed, `run-${++n}`);
    return { dir, store: open(pathToFileURL(dir).href) };
  };
  /** Moves `dir/name` outside (the attacker keeps its bytes there) and leaves a symlink to it in its place. */
  const swap = (dir: string, name: string): string => {
    const target = path.join(outside, `${path.basename(dir)}-${name}`);
    if (fs.existsSync(path.join(dir, name))) fs.renameSync(path.join(dir, name), target);
    else fs.mkdirSync(target);
    fs.symlinkSync(target, path.join(dir, name));
    return target;
  };
  const refused = (what: RegExp) => (err: unknown) => {
    assert.ok(err instanceof WriteRefusedError, String(err));
    assert.match(err.message, what);
    assert.match(err.message, /never follow a symlink below the allow-listed real path/);
    return true;
  };

  test('the outside folder is outside the allow-list (the attack needs the swap)', () => {
    assert.equal(allow.check(pathToFileURL(outside).href).ok, false);
    assert.throws(() => open(pathToFileURL(outside).href), /allowed prefixes/);
  });

  test("a run's checkpoints folder swapped between two checkpoint writes: the second fails, nothing is written outside", async () => {
    const { dir, store } = run();
    await writeCheckpoint(store, 10, objectsFor(10));
    const target = swap(dir, 'checkpoints');
    const before = snapshot(outside);
    await assert.rejects(writeCheckpoint(store, 20, objectsFor(20)), refused(new RegExp(`${pathToFileURL(dir).href}/checkpoints is not the folder the store was opened on`)));
    assert.deepEqual(snapshot(outside), before, 'nothing was written outside');
    assert.deepEqual(fs.readdirSync(target), ['000000000010']);
    // Retention through the link deletes nothing outside either.
    await assert.rejects(store.deletePrefix('checkpoints/'), refused(/Refused to delete through a folder that is now a symlink/));
    assert.deepEqual(snapshot(outside), before, 'nothing was deleted outside');
  });

  test('the run folder itself swapped after the store was opened: latest.json and the lease are not written through it', async () => {
    const { dir, store } = run();
    await store.put('latest.json', Buffer.from('{"step":10}'));
    await store.putIfVersion('lease.json', Buffer.from('a'), undefined);
    const moved = `${dir}-moved`;
    fs.renameSync(dir, moved);
    fs.mkdirSync(path.join(outside, 'victim-run'));
    fs.symlinkSync(path.join(outside, 'victim-run'), dir);
    const before = snapshot(outside);
    await assert.rejects(store.put('latest.json', Buffer.from('{"step":20}')), refused(/run-\d+ is not the folder/));
    await assert.rejects(store.putIfVersion('lease.json', Buffer.from('b'), undefined), refused(/run-\d+ is not the folder/));
    await assert.rejects(store.put('metrics/epoch-00000001.json', Buffer.from('{}')), refused(/run-\d+ is not the folder/));
    assert.deepEqual(snapshot(outside), before);
  });

  test('a folder the run has not made yet, planted as a symlink: refused before any mkdir below it', async () => {
    const { dir, store } = run();
    await store.put('run.json', Buffer.from('{}'));
    swap(dir, 'metrics');
    const before = snapshot(outside);
    await assert.rejects(store.put('metrics/sub/epoch-00000001.json', Buffer.from('{}')), refused(/\/metrics is not the folder/));
    assert.deepEqual(snapshot(outside), before, 'not even an empty folder outside');
  });

  test('a symlink as the object itself is replaced, not written through', async () => {
    const { dir, store } = run();
    await store.put('run.json', Buffer.from('{}'));
    fs.writeFileSync(path.join(outside, 'precious'), 'do not touch');
    fs.symlinkSync(path.join(outside, 'precious'), path.join(dir, 'latest.json'));
    await store.put('latest.json', Buffer.from('{"step":1}'));
    assert.equal(fs.readFileSync(path.join(outside, 'precious'), 'utf8'), 'do not touch');
    assert.equal(fs.lstatSync(path.join(dir, 'latest.json')).isFile(), true);
  });

  test('a symlink resolved when the store is opened is fine: writes go to its real path', async () => {
    const real = path.join(allowed, 'real-root');
    fs.mkdirSync(real);
    fs.symlinkSync(real, path.join(allowed, 'link-root'));
    const store = open(pathToFileURL(path.join(allowed, 'link-root', 'run')).href);
    await writeCheckpoint(store, 10, objectsFor(10));
    await writeCheckpoint(store, 20, objectsFor(20));
    assert.deepEqual(fs.readdirSync(path.join(real, 'run', 'checkpoints')), ['000000000010', '000000000020']);
    assert.deepEqual(await store.list('checkpoints/000000000020/m'), ['checkpoints/000000000020/manifest.json', 'checkpoints/000000000020/model.json']);
  });
});
