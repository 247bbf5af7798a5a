/**
 * One URI validator: what an input may name (config/uri.ts, checked by the workflow) is a subset of
 * what the worker's normal form accepts (config/normal-uri.ts, used by the allow-list), never the
 * other way round, and an accepted input is already in normal form (no alias the worker would read
 * as another folder). Cases: every shape the hostile suites use.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_URI_LENGTH } from '../src/config/bounds';
import { MAX_RESOLVED_URI_LENGTH, normaliseUri } from '../src/config/normal-uri';
import { parseTrainConfig } from '../src/config/train-config';
import { shownUri, uriSyntaxProblem } from '../src/config/uri';
import { withField } from './bad-inputs';

const CASES = [
  'file:///tmp/runs', 'file:///tmp/runs/', 'gs://bucket/runs', 'gs://bucket', 'gs://my.bucket.name/x', 'gs://b_b-1/x/y',
  'file:///', 'file:///../../etc', 'file:///tmp/./r', 'file:///tmp//r', 'file:///tmp/r?x', 'file:///tmp/r#', 'file:///tmp/a%2Fb',
  'file:///tmp/%41', 'gs://ab/x', 'gs://Bucket/x', 'gs://', 'gs://a..b/x', `gs://${'a'.repeat(64)}/x`, `gs://${'a'.repeat(63)}/x`,
  'file:///tmp/a\nb', 'file:///tmp/a\\b', 'file:///tmp/\u202Eevil', 'file://host/x', `file:///tmp/${'a'.repeat(1100)}`,
];

test('an input URI the config accepts is one the worker accepts, already in its normal form', () => {
  let accepted = 0;
  for (const uri of CASES) {
    // checkStoreUri refuses any other scheme before the syntax check.
    if (!(uri.startsWith('file:///') || uri.startsWith('gs://')) || uriSyntaxProblem(uri, 'folder') !== undefined) continue;
    accepted++;
    const normal = normaliseUri(uri);
    assert.ok(normal.ok, `${JSON.stringify(uri)}: accepted as input, refused by the normal form (${normal.ok ? '' : normal.reason})`);
    assert.equal(normal.canonical, uri.replace(/\/$/, ''), `${JSON.stringify(uri)} is not in normal form`);
  }
  assert.equal(accepted, 7, 'the seven well-formed URIs are accepted');
});

test('inputs are bounded below what the worker resolves beneath them', () => {
  assert.ok(MAX_URI_LENGTH < MAX_RESOLVED_URI_LENGTH);
  assert.match(uriSyntaxProblem(`gs://${'a'.repeat(64)}/x`, 'folder') ?? '', /invalid GCS bucket name/);
  assert.equal(uriSyntaxProblem(`gs://${'a'.repeat(63)}/x`, 'folder'), undefined);
  assert.match(uriSyntaxProblem('file:///tmp/%41', 'folder') ?? '', /percent-escapes/);
});

test('a refused URI never shows a token or credentials it carried', () => {
  const secret = 'SECRET-7f3a';
  const inputs = [
    withField('checkpoint.uri', `gs://bucket/runs?token=${secret}`),
    withField('warmStartFrom', `file:///tmp/r#${secret}`),
    withField('checkpoint.uri', `https://user:${secret}@example.com/runs`),
    withField('data.train', { name: 'sharded', params: { uri: `gs://bucket/x/*.jsonl?sig=${secret}`, format: 'jsonl', label: 'y', features: ['a'], classes: [0, 1] } }),
  ];
  for (const input of inputs) {
    const err = (() => {
      try {
        parseTrainConfig(input);
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    assert.ok(err, 'refused');
    assert.doesNotMatch(err.message, new RegExp(secret), err.message);
  }
  assert.equal(shownUri(`gs://b/x?token=${secret}`), 'gs://b/x?***');
});
