/**
 * The create-only writes of src/checkpoints/write-once.ts on the real file store, and the one table
 * that maps checkpoint-layer errors to Temporal failures (src/activities/failures.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import { activityFailureOf } from '../../src/activities/failures';
import { LeaseLostError } from '../../src/checkpoints/lease';
import { openStore } from '../../src/checkpoints/open-store';
import { PermanentStoreError } from '../../src/checkpoints/store';
import { WouldOverwriteError, createOrRead, writeOnce } from '../../src/checkpoints/write-once';
import { tempDir } from '../helpers/cleanup';

test('writeOnce: created, then the same bytes are a retry, other bytes are refused; racing writers cannot both win', async () => {
  const store = openStore(pathToFileURL(tempDir()).href);
  assert.equal(await writeOnce(store, 'a.json', Buffer.from('one')), 'created');
  assert.equal(await writeOnce(store, 'a.json', Buffer.from('one')), 'same');
  await assert.rejects(writeOnce(store, 'a.json', Buffer.from('two')), (err: unknown) => err instanceof WouldOverwriteError && /Refusing to overwrite .*a\.json/.test(err.message));
  assert.equal((await store.get('a.json'))?.toString(), 'one');

  const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => writeOnce(store, 'race.json', Buffer.from(`writer ${i}`))));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results.map((r) => r.status)));
  const stored = (await store.get('race.json'))!.toString();
  assert.match(stored, /^writer \d$/);
});

test('createOrRead: the first writer\'s bytes stand and every racer reads them', async () => {
  const store = openStore(pathToFileURL(tempDir()).href);
  const seen = await Promise.all(Array.from({ length: 8 }, (_, i) => createOrRead(store, 'first.json', Buffer.from(`writer ${i}`))));
  const stored = (await store.get('first.json'))!.toString();
  assert.deepEqual(new Set(seen.map((b) => b.toString())), new Set([stored]));
});

test('activityFailureOf: a lost lease retries, what the input or the data decides does not, anything else is unchanged', () => {
  const lost = activityFailureOf(new LeaseLostError('file:///r/lease.json', { token: 1, holder: { workflowId: 'w', workflowRunId: 'r', activityId: '1', attempt: 1 } }, undefined));
  assert.ok(lost instanceof ApplicationFailure && !lost.nonRetryable && lost.type === 'LeaseLostError');
  const over = activityFailureOf(new WouldOverwriteError('file:///r/model.json'));
  assert.ok(over instanceof ApplicationFailure && over.nonRetryable && over.type === 'WouldOverwrite');
  const perm = activityFailureOf(new PermanentStoreError('gs://b/x', '403 Forbidden'));
  assert.ok(perm instanceof ApplicationFailure && perm.nonRetryable);
  const other = new Error('ECONNRESET');
  assert.equal(activityFailureOf(other), other);
});
