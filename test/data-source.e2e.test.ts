/**
 * Sharded data sources (src/data/) against real files and the real GCS emulator: listing (globs,
 * manifests, bounds, the allow-list), the data index (record counts, identity), pinned reads, and
 * the input errors, each non-retryable and naming the field or the shard.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { openStore } from '../src/checkpoints/open-store';
import { RunIdentityMismatchError, checkRunIdentity, runIdentityOf } from '../src/checkpoints/run-identity';
import { parseTrainConfig } from '../src/config/train-config';
import { DATA_INDEX_JSON, buildDataIndex, openDataIndex } from '../src/data/data-index';
import { datasetIdentityOf } from '../src/data/identity';
import { readShardBytes } from '../src/data/reader';
import { listShards } from '../src/data/source';
import { shardedDataset, shardedParamsOf } from '../src/data/streamed';
import { NonRetryableTrainingError } from '../src/training/protocol';
import { AllowList, UriRefusedError } from '../src/trust/allow-list';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { jsonlOf, mnistRows, PIXEL_COLUMNS, writeShards } from './helpers/mnist-shards';

const CLASSES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
/** The params as a user writes them (what a dataset spec carries), and as the trainer parses them. */
const rawParams = (uri: string, extra: Record<string, unknown> = {}) => ({ uri, format: 'jsonl', label: 'y', features: ['pixels'], classes: CLASSES, ...extra });
const params = (uri: string, extra: Record<string, unknown> = {}) => shardedParamsOf({ name: 'sharded', params: rawParams(uri, extra) });
/** A file URI as a user writes it (pathToFileURL would percent-encode a glob's `[`). */
const fileUri = (p: string): string => `file://${p}`;

/** Expects a non-retryable failure whose message matches every pattern. */
async function rejectsNaming(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    assert.ok(err instanceof NonRetryableTrainingError || err instanceof UriRefusedError, `${err.name}: ${err.message}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

describe('sharded data on file://', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-data-source-'));
  const data = path.join(root, 'train');
  const rows = mnistRows(230);
  const allow = AllowList.of([fileUri(root)]);
  const assertAllowed = (field: string, uri: string) => allow.assert(field, uri);
  before(() => {
    writeShards(data, rows, 50); // 5 shards: 50, 50, 50, 50, 30
    fs.writeFileSync(path.join(data, 'README.txt'), 'not a shard');
    fs.mkdirSync(path.join(data, 'part-99999.jsonl.gz.d'));
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  test('a glob lists the matching files in name order with their sizes, nothing else', async () => {
    const shards = await listShards(params(fileUri(path.join(data, 'part-*.jsonl.gz'))), { assertAllowed });
    assert.deepEqual(shards.map((s) => path.basename(s.uri)), ['part-00000.jsonl.gz', 'part-00001.jsonl.gz', 'part-00002.jsonl.gz', 'part-00003.jsonl.gz', 'part-00004.jsonl.gz']);
    for (const s of shards) assert.equal(s.size, fs.statSync(new URL(s.uri)).size);
    const two = await listShards(params(fileUri(path.join(data, 'part-0000[13].jsonl.gz'))), { assertAllowed });
    assert.deepEqual(two.map((s) => path.basename(s.uri)), ['part-00001.jsonl.gz', 'part-00003.jsonl.gz']);
  });

  test('an empty glob, a glob over the bound, and a missing folder fail naming `params.uri`', async () => {
    await rejectsNaming(listShards(params(fileUri(path.join(data, 'nothing-*.jsonl'))), { assertAllowed }), /`params\.uri`/, /at least one shard, got none/);
    await rejectsNaming(listShards(params(fileUri(path.join(data, 'part-*'))), { assertAllowed, maxShards: 3 }), /`params\.uri`/, /at most 3 shards/);
    await rejectsNaming(listShards(params(fileUri(path.join(root, 'absent', 'part-*'))), { assertAllowed }), /`params\.uri`/, /existing folder/);
  });

  test('URIs outside the allow-list are refused: the glob, and a shard that is a symlink to elsewhere', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-data-outside-'));
    try {
      writeShards(outside, rows.slice(0, 5), 5);
      await rejectsNaming(listShards(params(fileUri(path.join(outside, 'part-*.jsonl.gz'))), { assertAllowed }), /params\.uri/, /allowed prefixes/);
      const linked = path.join(root, 'linked');
      fs.mkdirSync(linked);
      fs.symlinkSync(path.join(outside, 'part-00000.jsonl.gz'), path.join(linked, 'part-00000.jsonl.gz'));
      await rejectsNaming(listShards(params(fileUri(path.join(linked, 'part-*.jsonl.gz'))), { assertAllowed }), /params\.uri/, /resolves to/);
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });

  test('a manifest lists shards in its order (names relative to its folder); a bad line is refused naming it', async () => {
    const manifest = path.join(data, 'shards.txt');
    fs.writeFileSync(manifest, `# two shards\npart-00003.jsonl.gz\n\n${fileUri(path.join(data, 'part-00001.jsonl.gz'))}\n`);
    const shards = await listShards(params(fileUri(manifest), { manifest: true }), { assertAllowed });
    assert.deepEqual(shards.map((s) => path.basename(s.uri)), ['part-00003.jsonl.gz', 'part-00001.jsonl.gz']);
    fs.writeFileSync(manifest, 'part-00003.jsonl.gz\n../escape.jsonl\n');
    await rejectsNaming(listShards(params(fileUri(manifest), { manifest: true }), { assertAllowed }), /line 2 of the manifest `params\.uri`/);
    fs.writeFileSync(manifest, 'part-00003.jsonl.gz\npart-77777.jsonl.gz\n');
    await rejectsNaming(listShards(params(fileUri(manifest), { manifest: true }), { assertAllowed }), /part-77777\.jsonl\.gz/);
    fs.rmSync(manifest);
  });

  test('the index counts every shard\'s records, records their SHA-256, and decodes the rows exactly', async () => {
    const raw = rawParams(fileUri(path.join(data, 'part-*.jsonl.gz')));
    const p = params(raw.uri);
    const index = await buildDataIndex(p, await listShards(p, { assertAllowed }));
    assert.deepEqual(index.shards.map((s) => s.records), [50, 50, 50, 50, 30]);
    assert.equal(index.records, 230);
    assert.deepEqual(index.layout, { widths: [784], yWidth: 10 });
    for (const s of index.shards) assert.match(s.sha256, /^[0-9a-f]{64}$/);
    // Loaded whole (evaluation), in listing order: the very values of the rows.
    const whole = await shardedDataset({ name: 'sharded', params: raw }, { assertAllowed });
    assert.equal(whole.size, 230);
    for (const i of [0, 77, 229]) {
      assert.deepEqual([...whole.x.subarray(i * 784, (i + 1) * 784)], rows[i]!.pixels.map(Math.fround));
      assert.equal(whole.y.subarray(i * 10, (i + 1) * 10).indexOf(1), rows[i]!.label);
    }
  });

  test('CSV shards, plain and gzip: a header in each, the same rows as JSONL; a missing column is named', async () => {
    for (const gzip of [true, false]) {
      const dir = path.join(root, `csv-${gzip}`);
      writeShards(dir, rows.slice(0, 70), 25, { format: 'csv', gzip });
      const raw = rawParams(fileUri(path.join(dir, `part-*.csv${gzip ? '.gz' : ''}`)), { format: 'csv', features: PIXEL_COLUMNS });
      const p = params(raw.uri, { format: 'csv', features: PIXEL_COLUMNS });
      const index = await buildDataIndex(p, await listShards(p, { assertAllowed }));
      assert.deepEqual(index.shards.map((s) => s.records), [25, 25, 20]);
      const whole = await shardedDataset({ name: 'sharded', params: raw }, { assertAllowed });
      for (const i of [0, 33, 69]) {
        assert.deepEqual([...whole.x.subarray(i * 784, (i + 1) * 784)], rows[i]!.pixels.map(Math.fround));
        assert.equal(whole.y.subarray(i * 10, (i + 1) * 10).indexOf(1), rows[i]!.label);
      }
      const missing = params(fileUri(path.join(dir, `part-*.csv${gzip ? '.gz' : ''}`)), { format: 'csv', features: ['p0', 'colour'] });
      await rejectsNaming(buildDataIndex(missing, await listShards(missing, { assertAllowed })), /part-00000\.csv/, /`colour`/, /`params\.features`/);
    }
  });

  test('bad shards fail naming the shard and the field: not gzip, a label outside `classes`, a wrong type', async () => {
    const bad = path.join(root, 'bad');
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, 'a.jsonl.gz'), jsonlOf(rows.slice(0, 3)));
    const notGzip = params(fileUri(path.join(bad, 'a.jsonl.gz')));
    await rejectsNaming(buildDataIndex(notGzip, await listShards(notGzip, { assertAllowed })), /a\.jsonl\.gz/, /gzip/);
    fs.writeFileSync(path.join(bad, 'b.jsonl.gz'), zlib.gzipSync(jsonlOf(rows.slice(0, 4))));
    const fewClasses = params(fileUri(path.join(bad, 'b.jsonl.gz')), { classes: [0, 1, 2] });
    await rejectsNaming(buildDataIndex(fewClasses, await listShards(fewClasses, { assertAllowed })), /b\.jsonl\.gz line 4/, /`params\.label`/, /`params\.classes`/, /got 3/);
    fs.writeFileSync(path.join(bad, 'c.jsonl'), `${JSON.stringify({ pixels: [1, 2], y: 0 })}\n${JSON.stringify({ pixels: [1, 'x'], y: 0 })}\n`);
    const wrongType = params(fileUri(path.join(bad, 'c.jsonl')));
    await rejectsNaming(buildDataIndex(wrongType, await listShards(wrongType, { assertAllowed })), /c\.jsonl line 2/, /`params\.features`/, /"x"/);
  });

  test('a stored index pins the data: a replaced, deleted or added shard fails naming it', async () => {
    const dir = path.join(root, 'pinned');
    writeShards(dir, rows.slice(0, 60), 20);
    const p = params(fileUri(path.join(dir, 'part-*.jsonl.gz')));
    const store = openStore(fileUri(path.join(root, 'run')));
    const first = await openDataIndex(store, p, { assertAllowed });
    assert.ok(await store.get(DATA_INDEX_JSON), 'the index is stored in the run folder');
    assert.deepEqual(await openDataIndex(store, p, { assertAllowed }), first, 'a later attempt gets the stored index');
    // Same size, other bytes: the listing cannot see it, the pinned read can.
    const shard1 = path.join(dir, 'part-00001.jsonl.gz');
    const original = fs.readFileSync(shard1);
    const flipped = Buffer.from(original);
    flipped[flipped.length - 9] = flipped[flipped.length - 9]! ^ 0xff;
    fs.writeFileSync(shard1, flipped);
    await rejectsNaming(readShardBytes(first.shards[1]!), /part-00001\.jsonl\.gz/, /changed under the run/, /SHA-256/);
    fs.writeFileSync(shard1, zlib.gzipSync(jsonlOf(rows.slice(100, 120))));
    await rejectsNaming(openDataIndex(store, p, { assertAllowed }), /part-00001\.jsonl\.gz/, /changed under the run/);
    fs.writeFileSync(shard1, original);
    fs.writeFileSync(path.join(dir, 'part-00009.jsonl.gz'), zlib.gzipSync(jsonlOf(rows.slice(0, 2))));
    await rejectsNaming(openDataIndex(store, p, { assertAllowed }), /part-00009\.jsonl\.gz now matches/);
    fs.rmSync(path.join(dir, 'part-00009.jsonl.gz'));
    fs.rmSync(path.join(dir, 'part-00002.jsonl.gz'));
    await rejectsNaming(openDataIndex(store, p, { assertAllowed }), /part-00002\.jsonl\.gz/, /deleted/);
  });
});

describe('sharded data on gs:// (the GCS emulator)', () => {
  let emu: GcsEmulator;
  const BUCKET = 'shards';
  const rows = mnistRows(90);
  const put = async (name: string, text: string) => {
    await emu.storage.bucket(BUCKET).file(name).save(zlib.gzipSync(text), { resumable: false });
  };
  const any = { assertAllowed: () => undefined };
  before(async () => {
    emu = await startGcsEmulator({ buckets: [BUCKET] });
    for (let k = 0; k < 3; k++) await put(`train/part-${k}.jsonl.gz`, jsonlOf(rows.slice(k * 30, (k + 1) * 30)));
    await put('train/other.jsonl.gz', jsonlOf(rows.slice(0, 1)));
    await put('train/sub/part-9.jsonl.gz', jsonlOf(rows.slice(0, 1)));
  });
  after(async () => emu?.dispose());

  test('a glob lists the bucket\'s matching objects with generation, size and CRC32C', async () => {
    const shards = await listShards(params(`gs://${BUCKET}/train/part-*.jsonl.gz`), { ...any, storage: emu.storage });
    assert.deepEqual(shards.map((s) => s.uri), [0, 1, 2].map((k) => `gs://${BUCKET}/train/part-${k}.jsonl.gz`));
    for (const s of shards) {
      const [meta] = await emu.storage.bucket(BUCKET).file(s.uri.slice(`gs://${BUCKET}/`.length)).getMetadata();
      assert.equal(s.generation, String(meta.generation));
      assert.equal(s.size, Number(meta.size));
      assert.equal(s.crc32c, meta.crc32c);
    }
    await rejectsNaming(listShards(params(`gs://${BUCKET}/train/none-*.jsonl.gz`), { ...any, storage: emu.storage }), /`params\.uri`/, /got none/);
    await rejectsNaming(listShards(params(`gs://${BUCKET}/train/part-*.jsonl.gz`), { ...any, storage: emu.storage, maxShards: 2 }), /at most 2 shards/);
  });

  test('reads are pinned to the recorded generation: a replaced object fails naming the shard', async () => {
    const p = params(`gs://${BUCKET}/train/part-*.jsonl.gz`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-data-gcs-run-'));
    try {
      const store = openStore(fileUri(dir));
      const index = await openDataIndex(store, p, { ...any, storage: emu.storage });
      assert.deepEqual(index.shards.map((s) => s.records), [30, 30, 30]);
      const read = await readShardBytes(index.shards[1]!, emu.storage);
      assert.equal(read.sha256, index.shards[1]!.sha256);
      await put('train/part-1.jsonl.gz', jsonlOf(rows.slice(0, 30)));
      await rejectsNaming(readShardBytes(index.shards[1]!, emu.storage), /gs:\/\/shards\/train\/part-1\.jsonl\.gz/, /generation .* no longer exists/);
      await rejectsNaming(openDataIndex(store, p, { ...any, storage: emu.storage }), /part-1\.jsonl\.gz/, /replaced/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the dataset identity in the run fingerprint: a replaced object is a different run', async () => {
    const spec = { name: 'sharded', params: { uri: `gs://${BUCKET}/train/part-*.jsonl.gz`, format: 'jsonl', label: 'y', features: ['pixels'], classes: CLASSES } };
    const config = parseTrainConfig({
      model: { name: 'mlp', params: { hiddenUnits: [8] } },
      data: { train: spec, eval: { name: 'mnist', split: 'test' } },
      hyperparameters: { optimizer: 'adam', learningRate: 0.01, batchSize: 8 },
      stepsPerEpoch: 10,
      maxEpochs: 1,
    });
    // In-memory datasets keep the identity they always had: no `dataset` field.
    assert.equal(await datasetIdentityOf(config.data.eval), undefined);
    assert.equal('dataset' in runIdentityOf(config), false);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-data-identity-'));
    try {
      const store = openStore(fileUri(dir));
      const identity = await datasetIdentityOf(config.data.train, { ...any, storage: emu.storage });
      assert.equal(identity?.shards.length, 3);
      assert.deepEqual(await checkRunIdentity(store, config, undefined, identity), { created: true });
      assert.deepEqual(await checkRunIdentity(store, config, undefined, await datasetIdentityOf(config.data.train, { ...any, storage: emu.storage })), { created: false });
      await put('train/part-2.jsonl.gz', jsonlOf(rows.slice(0, 30)));
      const changed = await datasetIdentityOf(config.data.train, { ...any, storage: emu.storage });
      await assert.rejects(checkRunIdentity(store, config, undefined, changed), (err: Error) => {
        assert.ok(err instanceof RunIdentityMismatchError);
        assert.match(err.message, /`dataset\.shards\.2\.generation`|`dataset\.shards`/);
        return true;
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('shard reads through a GCS outage', () => {
  let emu: GcsEmulator;
  before(async () => {
    emu = await startGcsEmulator({ buckets: ['outage'], backend: 'filesystem' });
  });
  after(async () => emu?.dispose());

  test('a read while the server is down is retried (the checkpoint store\'s policy) and gets the pinned bytes', async () => {
    const text = jsonlOf(mnistRows(20));
    await emu.storage.bucket('outage').file('train/part-0.jsonl.gz').save(zlib.gzipSync(text), { resumable: false });
    const [shard] = await listShards(params('gs://outage/train/part-*.jsonl.gz'), { assertAllowed: () => undefined, storage: emu.storage });
    await emu.stop();
    const started = Date.now();
    const reading = readShardBytes(shard!, emu.storage);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await emu.restart();
    const { bytes } = await reading;
    assert.ok(Date.now() - started >= 2000);
    assert.equal(zlib.gunzipSync(bytes).toString('utf8'), text);
  });
});

