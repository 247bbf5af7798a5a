/**
 * Data windows (issue #21 point 8), pure parts: the window params of a `sharded` spec (checked when
 * the input is parsed, each issue naming its field), the day arithmetic, the resolution a workflow
 * does at its start, and the listing of a resolved window's globs on file://.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { parseUtcDay, windowDays, windowEndAt, windowUris } from '../../src/config/data-window';
import { checkShardedParams } from '../../src/config/sharded-data';
import { parseTrainConfig } from '../../src/config/train-config';
import { Checker, ConfigError } from '../../src/config/validate';
import { listShards } from '../../src/data/source';
import { resolveDataWindows } from '../../src/workflows/data-window';

const TEMPLATE = 'gs://bucket/events/dt={date}/part-*.jsonl.gz';
const good = { uri: TEMPLATE, window: 3, format: 'jsonl', label: 'y', features: ['x'], classes: [0, 1] };
const input = (params: Record<string, unknown>, evalParams?: Record<string, unknown>) => ({
  model: { name: 'mlp', params: { hiddenUnits: [8] } },
  data: { train: { name: 'sharded', params }, eval: evalParams ? { name: 'sharded', params: evalParams } : { name: 'mnist', split: 'test' } },
  hyperparameters: { optimizer: 'adam', learningRate: 0.01, batchSize: 8 },
  stepsPerEpoch: 10,
  maxEpochs: 1,
});

function issues(params: Record<string, unknown>): Array<{ field: string; expected: string }> {
  try {
    parseTrainConfig(input(params));
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues.map((i) => ({ field: i.field, expected: i.expected }));
  }
  return [];
}
const fields = (params: Record<string, unknown>) => issues(params).map((i) => i.field);

test('days: UTC calendar arithmetic across month, year and leap-day boundaries', () => {
  assert.equal(windowEndAt(new Date('2026-03-01T00:30:00Z'), 1), '2026-02-28');
  assert.equal(windowEndAt(new Date('2024-03-01T23:59:59Z'), 1), '2024-02-29');
  assert.equal(windowEndAt(new Date('2027-01-01T03:00:00Z'), 0), '2027-01-01');
  // A time zone east of UTC does not move the day: only the instant's UTC day counts.
  assert.equal(windowEndAt(new Date('2026-12-07T23:30:00-05:00'), 0), '2026-12-08');
  assert.deepEqual(windowDays('2027-01-02', 4), ['2026-12-30', '2026-12-31', '2027-01-01', '2027-01-02']);
  assert.equal(parseUtcDay('2026-02-30'), undefined);
  assert.equal(parseUtcDay('2026-2-3'), undefined);
  assert.deepEqual(windowUris('file:///d/{yyyy}/{mm}/{dd}/p-{yyyymmdd}-*.csv', '2026-12-31', 2), [
    'file:///d/2026/12/30/p-20261230-*.csv',
    'file:///d/2026/12/31/p-20261231-*.csv',
  ]);
});

test('window params parse, and each bad one is named', () => {
  assert.deepEqual(issues(good), []);
  assert.deepEqual(issues({ ...good, windowLag: 0, windowEnd: '2026-12-07' }), []);
  assert.deepEqual(fields({ ...good, window: 0 }), ['data.train.params.window']);
  assert.deepEqual(fields({ ...good, window: 367 }), ['data.train.params.window']);
  assert.deepEqual(fields({ ...good, window: 2.5 }), ['data.train.params.window']);
  assert.deepEqual(fields({ ...good, windowLag: -1 }), ['data.train.params.windowLag']);
  assert.deepEqual(fields({ ...good, windowEnd: '2026-02-30' }), ['data.train.params.windowEnd']);
  assert.deepEqual(fields({ ...good, windowEnd: '07/12/2026' }), ['data.train.params.windowEnd']);
  // A placeholder without a window, a window without a placeholder, a placeholder that is not one.
  assert.deepEqual(fields({ ...good, window: undefined }), ['data.train.params.window']);
  assert.deepEqual(fields({ ...good, uri: 'gs://bucket/events/part-*.jsonl.gz' }), ['data.train.params.uri']);
  assert.deepEqual(fields({ ...good, uri: 'gs://bucket/events/dt={date}/h={hour}/part-*.jsonl.gz' }), ['data.train.params.uri']);
  // `{yyyy}` alone names the same glob for every day of a week.
  assert.deepEqual(fields({ ...good, uri: 'gs://bucket/{yyyy}/{mm}/part-*.jsonl.gz' }), ['data.train.params.uri']);
  // Wildcards stay in the last segment, placeholders or not.
  assert.deepEqual(fields({ ...good, uri: 'gs://bucket/dt={date}*/part-*.jsonl.gz' }), ['data.train.params.uri']);
  for (const k of ['windowLag', 'windowEnd', 'uris']) {
    assert.deepEqual(fields({ ...good, uri: 'gs://bucket/t/part-*.jsonl.gz', window: undefined, [k]: k === 'windowLag' ? 1 : k === 'uris' ? ['gs://bucket/x'] : '2026-12-07' }), [`data.train.params.${k}`]);
  }
  // `uris` is what the workflow writes: it must be the window's own globs, never a list of the caller's.
  assert.deepEqual(fields({ ...good, uris: windowUris(TEMPLATE, '2026-12-07', 3) }), ['data.train.params.uris']);
  assert.deepEqual(issues({ ...good, windowEnd: '2026-12-07', uris: windowUris(TEMPLATE, '2026-12-07', 3) }), []);
  assert.deepEqual(fields({ ...good, windowEnd: '2026-12-07', uris: ['gs://bucket/secret/part-*.jsonl.gz'] }), ['data.train.params.uris']);
  assert.deepEqual(fields({ ...good, windowEnd: '2026-12-07', uris: windowUris(TEMPLATE, '2026-12-06', 3) }), ['data.train.params.uris']);
});

test('checkShardedParams: a plain URI lists itself; a window lists its globs once resolved, nothing before', () => {
  const parse = (p: Record<string, unknown>) => checkShardedParams(new Checker(), 'd', undefined, p as never);
  assert.deepEqual(parse({ ...good, uri: 'gs://bucket/t/part-*.jsonl.gz', window: undefined })!.uris, ['gs://bucket/t/part-*.jsonl.gz']);
  const unresolved = parse(good)!;
  assert.equal(unresolved.uris, undefined);
  assert.deepEqual(unresolved.window, { days: 3, lag: 1, end: undefined });
  const resolved = parse({ ...good, windowEnd: '2026-12-07' })!;
  assert.deepEqual(resolved.uris, [
    'gs://bucket/events/dt=2026-12-05/part-*.jsonl.gz',
    'gs://bucket/events/dt=2026-12-06/part-*.jsonl.gz',
    'gs://bucket/events/dt=2026-12-07/part-*.jsonl.gz',
  ]);
});

test('resolveDataWindows: train and eval resolved at the nominal time, the result parses, a second resolution is a no-op', () => {
  const evalParams = { ...good, window: 1, windowLag: 0 };
  const raw = input(good, evalParams);
  const at = new Date('2026-12-08T03:00:00Z');
  const r = resolveDataWindows(raw, at)!;
  assert.deepEqual(
    r.windows.map((w) => [w.field, w.windowEnd, w.uris.length]),
    [
      ['data.train', '2026-12-07', 3],
      ['data.eval', '2026-12-08', 1],
    ],
  );
  const config = parseTrainConfig(r.input);
  const trainParams = config.data.train.params as Record<string, unknown>;
  assert.equal(trainParams.windowEnd, '2026-12-07');
  assert.deepEqual(trainParams.uris, windowUris(TEMPLATE, '2026-12-07', 3));
  assert.equal(resolveDataWindows(r.input, new Date('2027-06-01T00:00:00Z')), undefined, 'a resolved input never resolves again');
  // The input is not changed in place (the workflow keeps its own argument as it was recorded).
  assert.equal((raw.data.train.params as Record<string, unknown>).windowEnd, undefined);
  // A pinned windowEnd, a plain URI and an in-memory dataset are left alone.
  assert.equal(resolveDataWindows(input({ ...good, windowEnd: '2026-01-01' }), at), undefined);
  assert.equal(resolveDataWindows(input({ ...good, uri: 'gs://b/t/*.jsonl', window: undefined }), at), undefined);
});

test('listShards: a window lists its days oldest first, each in name order; a missing day fails naming its glob', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-window-'));
  try {
    for (const day of ['2026-12-05', '2026-12-06', '2026-12-07']) {
      fs.mkdirSync(path.join(root, `dt=${day}`));
      for (const k of [1, 0]) fs.writeFileSync(path.join(root, `dt=${day}`, `part-${k}.jsonl`), `{"x":${k},"y":0}\n`);
    }
    const template = `${pathToFileURL(root).href}/dt={date}/part-*.jsonl`;
    const params = (end: string, days: number) => checkShardedParams(new Checker(), 'd', undefined, { ...good, uri: template, window: days, windowEnd: end })!;
    const allow = { assertAllowed: () => undefined };
    const shards = await listShards(params('2026-12-07', 2), allow);
    assert.deepEqual(
      shards.map((s) => path.relative(root, new URL(s.uri).pathname)),
      ['dt=2026-12-06/part-0.jsonl', 'dt=2026-12-06/part-1.jsonl', 'dt=2026-12-07/part-0.jsonl', 'dt=2026-12-07/part-1.jsonl'],
    );
    await assert.rejects(listShards(params('2026-12-08', 2), allow), /`params\.uri`.*dt=2026-12-08\/part-\*\.jsonl/);
    // The bound is over the whole window, not per day.
    await assert.rejects(listShards(params('2026-12-07', 3), { ...allow, maxShards: 5 }), /at most/);
    // An unresolved window never lists its template.
    const unresolved = checkShardedParams(new Checker(), 'd', undefined, { ...good, uri: template })!;
    await assert.rejects(listShards(unresolved, allow), /`params\.windowEnd`/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
