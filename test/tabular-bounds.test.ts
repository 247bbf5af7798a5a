/**
 * Tabular data bounded before it is allocated (issue #20): a string column with a value per row is
 * refused naming the column (its one-hot width grew with the rows: 100k rows ended in a RangeError
 * retried 20 times), and rows × encoded width is checked against DT_TRAINER_MAX_BYTES first.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { NonRetryableTrainingError } from '../src/training/protocol';
import { isInputError } from '../src/training/input-errors';
import { checkTabularFits, loadTabular, MAX_TABULAR_FILE_BYTES, PARSE_BYTES_PER_FILE_BYTE } from '../src/training/tabular';
import { MAX_CATEGORIES } from '../src/training/tabular-preprocess';
import { tempDir } from './helpers/temporal';

describe('tabular bounds', () => {
  const dir = tempDir('dt-tabular-bounds-');
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return pathToFileURL(file).href;
  };

  test("a file whose parse would not fit the trainer's memory limit is refused before it is parsed, naming it", async () => {
    const lines = ['a,b,label'];
    for (let i = 0; i < 5_000; i++) lines.push(`${i},${i % 7},${i % 2}`);
    const text = `${lines.join('\n')}\n`;
    const uri = write('parse-big.csv', text);
    const saved = process.env.DT_TRAINER_MAX_BYTES;
    process.env.DT_TRAINER_MAX_BYTES = String(text.length * PARSE_BYTES_PER_FILE_BYTE - 1);
    try {
      const err = await loadTabular('csv', { name: 'csv', params: { uri, label: 'label' } }).then(
        () => assert.fail('the file loaded'),
        (e: unknown) => e as Error,
      );
      assert.ok(err instanceof NonRetryableTrainingError, String(err));
      assert.match(err.message, /`params\.uri` \(.*parse-big\.csv\) to parse within the trainer's memory limit/);
      process.env.DT_TRAINER_MAX_BYTES = String(text.length * PARSE_BYTES_PER_FILE_BYTE);
      assert.equal((await loadTabular('csv', { name: 'csv', params: { uri, label: 'label' } })).size, 5_000);
    } finally {
      if (saved === undefined) delete process.env.DT_TRAINER_MAX_BYTES;
      else process.env.DT_TRAINER_MAX_BYTES = saved;
    }
  });

  test('100,000 rows with a unique string id: refused non-retryably naming the column, in seconds', async () => {
    const lines = ['id,x,label'];
    for (let i = 0; i < 100_000; i++) lines.push(`user-${i},${i % 7},${i % 2 ? 'a' : 'b'}`);
    const uri = write('ids.csv', `${lines.join('\n')}\n`);
    const started = Date.now();
    const err = await loadTabular('csv', { name: 'csv', params: { uri, label: 'label' } }).then(
      () => assert.fail('the file loaded'),
      (e: unknown) => e as Error,
    );
    assert.ok(err instanceof NonRetryableTrainingError, String(err));
    assert.match(err.message, new RegExp(`column \`id\` of .*ids\\.csv to have at most ${MAX_CATEGORIES} distinct values`));
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    // The same file without the id column loads.
    const ok = await loadTabular('csv', { name: 'csv', params: { uri, label: 'label', features: ['x'] } });
    assert.deepEqual(ok.xShape, [1]);
  });

  test('a file past the largest string V8 makes (512 MiB) is refused non-retryably before it is decoded, naming its size', async () => {
    const uri = write('big.csv', `x,label\n${'1,a\n'.repeat(1000)}`);
    const err = await loadTabular('csv', { name: 'csv', params: { uri, label: 'label' } }, { maxFileBytes: 3000 }).then(
      () => assert.fail('the file loaded'),
      (e: unknown) => e as Error,
    );
    assert.ok(err instanceof NonRetryableTrainingError, String(err));
    assert.match(err.message, /`params.uri` to name a file of at most 3000 bytes, got 4008 bytes at .*big\.csv/);
    assert.equal(MAX_TABULAR_FILE_BYTES, 0x1fffffe8);
    assert.ok(isInputError('Error', 'Cannot create a string longer than 0x1fffffe8 characters'), 'the V8 error itself is the input\'s too');
  });

  test('rows × (inputs + outputs) × 4 bytes over the limit is refused before allocating, naming the numbers', () => {
    assert.doesNotThrow(() => checkTabularFits('csv', { uri: 'file:///d.csv', label: 'y' }, 1000, 20, 5, 100_000));
    assert.throws(
      () => checkTabularFits('csv', { uri: 'file:///d.csv', label: 'y' }, 100_000, 20_000, 20_000, 2e9),
      (err: unknown) => err instanceof NonRetryableTrainingError && /DT_TRAINER_MAX_BYTES: 2000000000 bytes.*100000 rows × \(20000 inputs \+ 20000 outputs `y`\) × 4 bytes = 16000000000 bytes/.test(err.message),
    );
  });

  test('a label with a class per row is refused by the same estimate (its one-hot targets)', async () => {
    const lines = ['x,label'];
    for (let i = 0; i < 3000; i++) lines.push(`${i},class-${i}`);
    const uri = write('labels.csv', `${lines.join('\n')}\n`);
    process.env.DT_TRAINER_MAX_BYTES = '10000000';
    try {
      await assert.rejects(loadTabular('csv', { name: 'csv', params: { uri, label: 'label' } }), /DT_TRAINER_MAX_BYTES: 10000000 bytes.*3000 rows × \(1 inputs \+ 3000 outputs `label`\)/);
    } finally {
      delete process.env.DT_TRAINER_MAX_BYTES;
    }
  });
});
