/**
 * Streamed, sharded training in the real trainer process (TrainerClient, tfjs, real files and the
 * real GCS emulator): MNIST rows from the `mnist` package as JSONL.gz shards.
 *
 *   - file:// and gs:// copies of the same shards train to the same weights (the order depends on
 *     the seed and the record counts only);
 *   - a trainer SIGKILLed mid-epoch (the moment drawn from a printed seed) and resumed by a new
 *     process ends bitwise equal to the uninterrupted run;
 *   - a cache too small for one shard (DT_DATA_CACHE_BYTES=1) gives the same weights;
 *   - one shard in one window gives the same weights as the same file through the in-memory
 *     `jsonl` dataset (same order, same bytes);
 *   - a replaced shard, an empty glob, a shard that is not gzip and a label outside `classes` fail
 *     non-retryably within 10 s, naming the shard or the field.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { parseTrainConfig } from '../src/config/train-config';
import type { TrainUntilStepResult as StepResult } from '../src/training/protocol';
import { TrainerClient, TrainerError } from '../src/training/trainer-client';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { flatJsonlOf, jsonlOf, mnistRows, PIXEL_COLUMNS, writeShards } from './helpers/mnist-shards';
import { mulberry32, testSeed } from './helpers/seed';
import { checkpointHashes, killPausedTrainer } from './helpers/sharded-stack';

const N = 45;
const EVERY = 5;
const CLASSES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const BUCKET = 'train-shards';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-data-streamed-'));
const rootUri = `file://${root}`;
const dataDir = path.join(root, 'data');
const rows = mnistRows(600);

const shardedSpec = (uri: string, extra: Record<string, unknown> = {}) => ({
  name: 'sharded',
  params: { uri, format: 'jsonl', label: 'y', features: ['pixels'], classes: CLASSES, shuffleWindow: 128, ...extra },
});
const config = (train: Record<string, unknown>) =>
  parseTrainConfig({
    model: { name: 'mlp', params: { hiddenUnits: [32], dropout: 0.2 } },
    data: { train, eval: { name: 'mnist', split: 'test', limit: 100 } },
    hyperparameters: { optimizer: 'adam', learningRate: 0.005, batchSize: 32 },
    stepsPerEpoch: 10,
    maxEpochs: 5,
    seed: 13,
    checkpoint: { everySteps: EVERY, everySeconds: 0 },
  });
const fileGlob = `file://${dataDir}/part-*.jsonl.gz`;

const weights = (run: string, step: number): Record<string, string> => checkpointHashes(path.join(root, run), step);

function client(env: Record<string, string> = {}, log: (m: string) => void = () => undefined): TrainerClient {
  const c = new TrainerClient({ log, env });
  c.allowUris([rootUri, `gs://${BUCKET}`]);
  return c;
}
const train = (c: TrainerClient, run: string, train: Record<string, unknown>, targetStep = N) =>
  c.request<StepResult>({ type: 'train', request: { runUri: `${rootUri}/${run}`, config: config(train), targetStep, learningRate: 0.005 } });

/** Expects a non-retryable trainer failure within 10 s whose message matches every pattern. */
async function failsNaming(c: TrainerClient, run: string, spec: Record<string, unknown>, ...patterns: RegExp[]): Promise<void> {
  const started = Date.now();
  await assert.rejects(train(c, run, spec), (err: Error) => {
    assert.ok(err instanceof TrainerError, String(err));
    assert.equal(err.nonRetryable, true, `non-retryable: ${err.message}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
  assert.ok(Date.now() - started < 10_000, `failed after ${Date.now() - started} ms`);
}

describe('streamed sharded training (trainer process)', () => {
  let emu: GcsEmulator;
  let baseline: StepResult;
  let a: TrainerClient;
  before(async () => {
    writeShards(dataDir, rows, 100); // 6 shards of 100 rows; 600 rows is 18.75 steps of 32: 45 steps cross two data epochs
    emu = await startGcsEmulator({ buckets: [BUCKET] });
    for (const name of fs.readdirSync(dataDir)) {
      await emu.storage.bucket(BUCKET).upload(path.join(dataDir, name), { destination: `train/${name}`, resumable: false });
    }
    a = client({ STORAGE_EMULATOR_HOST: emu.endpoint });
    baseline = await train(a, 'straight', shardedSpec(fileGlob));
  });
  after(async () => {
    await a?.close();
    await emu?.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('it trains, and the run folder pins the data index', () => {
    assert.equal(baseline.step, N);
    assert.ok(Number.isFinite(baseline.loss) && baseline.loss < 2.3, `loss ${baseline.loss}`);
    const index = JSON.parse(fs.readFileSync(path.join(root, 'straight', 'data-index.json'), 'utf8'));
    assert.deepEqual(index.shards.map((s: { records: number }) => s.records), [100, 100, 100, 100, 100, 100]);
  });

  test('the same shards on gs:// (the emulator) train to the same weights', async () => {
    const r = await train(a, 'from-gcs', shardedSpec(`gs://${BUCKET}/train/part-*.jsonl.gz`));
    assert.equal(r.loss, baseline.loss);
    assert.deepEqual(weights('from-gcs', N), weights('straight', N));
    const index = JSON.parse(fs.readFileSync(path.join(root, 'from-gcs', 'data-index.json'), 'utf8'));
    assert.ok(index.shards.every((s: { generation?: string; crc32c?: string }) => /^\d+$/.test(s.generation ?? '') && s.crc32c), 'GCS shards are pinned by generation');
  });

  test('a trainer SIGKILLed mid-epoch resumes bitwise equal to the uninterrupted run', async () => {
    const random = mulberry32(testSeed('data-streamed kill'));
    const killAt = 7 + Math.floor(random() * (N - 8)); // somewhere in 7..43: mid-epoch, mid-window, mid-shard
    let paused!: () => void;
    const pausedNow = new Promise<void>((resolve) => (paused = resolve));
    const doomed = client({ DT_FAULT_PAUSE_BEFORE_STEP: String(killAt) }, (m) => {
      if (m.includes(`paused before step ${killAt}`)) paused();
    });
    // The checkpoint before the pause is written in the background: the kill waits until it is committed, so the resume starts there.
    const last = await killPausedTrainer(doomed, pausedNow, train(doomed, 'killed', shardedSpec(fileGlob)), path.join(root, 'killed'), killAt, EVERY);
    const fresh = client();
    try {
      const r = await train(fresh, 'killed', shardedSpec(fileGlob));
      assert.equal(r.resumedFromStep, last, `killed before step ${killAt}`);
      assert.deepEqual(weights('killed', N), weights('straight', N));
      assert.equal(r.loss, baseline.loss);
    } finally {
      await fresh.close();
    }
  });

  test('a cache smaller than one shard (DT_DATA_CACHE_BYTES=1) changes nothing but speed', async () => {
    const tiny = client({ DT_DATA_CACHE_BYTES: '1' });
    try {
      await train(tiny, 'tiny-cache', shardedSpec(fileGlob));
      assert.deepEqual(weights('tiny-cache', N), weights('straight', N));
    } finally {
      await tiny.close();
    }
  });

  test('one shard in one window trains exactly as the same file loaded whole by the `jsonl` dataset', async () => {
    const file = path.join(root, 'whole', 'all.jsonl');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, flatJsonlOf(rows));
    await train(a, 'whole-streamed', shardedSpec(`file://${file}`, { features: PIXEL_COLUMNS, shuffleWindow: 1_000_000 }));
    await train(a, 'whole-in-memory', { name: 'jsonl', params: { uri: `file://${file}`, label: 'y', classes: CLASSES, normalize: 'none' } });
    assert.deepEqual(weights('whole-streamed', N), weights('whole-in-memory', N));
    // And the test can fail: the multi-shard order is another one.
    assert.notDeepEqual(weights('whole-streamed', N), weights('straight', N));
  });

  test('a shard replaced under a run fails the next request non-retryably, naming the shard', async () => {
    const copy = path.join(root, 'copy');
    writeShards(copy, rows, 100);
    const spec = shardedSpec(`file://${copy}/part-*.jsonl.gz`);
    await train(a, 'replaced', spec, 10);
    fs.writeFileSync(path.join(copy, 'part-00003.jsonl.gz'), zlib.gzipSync(jsonlOf(rows.slice(0, 90))));
    await failsNaming(a, 'replaced', spec, /part-00003\.jsonl\.gz/, /changed under the run/);
  });

  test('bad inputs fail non-retryably within 10 s, naming the field', async () => {
    await failsNaming(a, 'bad-empty', shardedSpec(`file://${dataDir}/nothing-*.jsonl.gz`), /`data\.train\.params\.uri`/, /got none/);
    const bad = path.join(root, 'bad');
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, 'part-0.jsonl.gz'), jsonlOf(rows.slice(0, 5)));
    await failsNaming(a, 'bad-gzip', shardedSpec(`file://${bad}/part-*.jsonl.gz`), /part-0\.jsonl\.gz/, /gzip/);
    await failsNaming(a, 'bad-label', shardedSpec(fileGlob, { classes: [0, 1, 2, 3] }), /`data\.train\.params\.label`/, /`data\.train\.params\.classes`/, /got 4/);
    await failsNaming(a, 'bad-uri', shardedSpec(`file://${os.tmpdir()}/elsewhere-*.jsonl.gz`), /params\.uri/, /allowed prefixes/);
  });
});
