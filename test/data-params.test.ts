/**
 * The `sharded` dataset's params, checked when the input is parsed (before any activity): every
 * issue names the field, what was expected and what was received.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTrainConfig } from '../src/config/train-config';
import { ConfigError } from '../src/config/validate';

const input = (train: Record<string, unknown>) => ({
  model: { name: 'mlp', params: { hiddenUnits: [8] } },
  data: { train: { name: 'sharded', ...train }, eval: { name: 'mnist', split: 'test' } },
  hyperparameters: { optimizer: 'adam', learningRate: 0.01, batchSize: 8 },
  stepsPerEpoch: 10,
  maxEpochs: 1,
});
const good = { uri: 'gs://bucket/train/part-*.jsonl.gz', format: 'jsonl', label: 'y', features: ['pixels'], classes: [0, 1] };

function issues(train: Record<string, unknown>): Array<{ field: string; expected: string }> {
  try {
    parseTrainConfig(input(train));
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues.map((i) => ({ field: i.field, expected: i.expected }));
  }
  return [];
}

test('a good sharded spec parses', () => {
  assert.deepEqual(issues({ params: good }), []);
  assert.deepEqual(issues({ params: { ...good, uri: 'file:///data/shards.txt', manifest: true, task: 'regression', classes: undefined, shuffleWindow: 4096 } }), []);
});

test('bad sharded specs name the field', () => {
  const fields = (train: Record<string, unknown>) => issues(train).map((i) => i.field);
  assert.deepEqual(fields({ params: { ...good, classes: undefined } }), ['data.train.params.classes']);
  assert.deepEqual(fields({ params: { ...good, uri: 'gs://bucket/*/part-1.jsonl' } }), ['data.train.params.uri']);
  assert.deepEqual(fields({ params: { ...good, uri: 's3://bucket/x' } }), ['data.train.params.uri']);
  assert.deepEqual(fields({ params: { ...good, format: 'orc' } }), ['data.train.params.format']);
  assert.deepEqual(fields({ params: { ...good, features: ['y'] } }), ['data.train.params.features']);
  assert.deepEqual(fields({ params: { ...good, shuffleWindow: 0 } }), ['data.train.params.shuffleWindow']);
  assert.deepEqual(fields({ params: { ...good, manifest: true } }), ['data.train.params.uri']);
  assert.deepEqual(fields({ params: { ...good, colour: 'red' } }), ['data.train.params.colour']);
  assert.deepEqual(fields({ split: 'train', params: good }), ['data.train.split']);
  assert.deepEqual(fields({}), ['data.train.params']);
});

test('shard globs: one segment, `*` never crosses `/`, classes, literal dots; an unclosed `[` is refused', async () => {
  const { globRegExp, splitGlob } = await import('../src/data/glob');
  const re = globRegExp('part-[0-3]*.jsonl.gz');
  assert.ok(re.test('part-0001.jsonl.gz'));
  assert.ok(!re.test('part-7.jsonl.gz'));
  assert.ok(!re.test('part-0/x.jsonl.gz'));
  assert.ok(!re.test('part-0xjsonlxgz'), 'a dot is literal');
  assert.ok(globRegExp('[!a]b').test('cb') && !globRegExp('[!a]b').test('ab'));
  assert.throws(() => globRegExp('part-[0-3.jsonl'), /unclosed `\[`/);
  assert.deepEqual(splitGlob('gs://b/train/part-*.gz'), { folder: 'gs://b/train', pattern: 'part-*.gz', wild: true, literalPrefix: 'part-' });
});
