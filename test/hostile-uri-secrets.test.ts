/**
 * Secrets in a sharded dataset's URI (pure): credentials in the authority are refused naming the field,
 * and the message shows them masked, never as given (the failure reaches histories, logs and the CLI).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkShardedParams } from '../src/config/sharded-data';
import { Checker } from '../src/config/validate';

test('a sharded uri with user:password@ is refused as data.train.params.uri, the password masked', () => {
  for (const uri of ['https://user:SECRET1@host/x/*.jsonl', 'gs://user:SECRET2@b/x/*.jsonl', 'gs://SECRET3@b/x/{date}/*.jsonl']) {
    const c = new Checker();
    const got = checkShardedParams(c, 'data.train', undefined, { uri, format: 'jsonl', label: 'y', features: ['a'], task: 'regression', ...(uri.includes('{date}') && { window: 3 }) });
    assert.equal(got, undefined, uri);
    const shown = JSON.stringify(c.issues);
    assert.ok(c.issues.some((i) => i.field === 'data.train.params.uri'), `${uri}: ${shown}`);
    assert.doesNotMatch(shown, /SECRET/, uri);
    assert.match(shown, /\*\*\*@/, uri);
  }
});
