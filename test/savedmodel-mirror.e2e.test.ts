/**
 * Issue #20: the local mirror of a gs:// SavedModel (src/training/savedmodel/mirror.ts), against the
 * real GCS emulator (fake-gcs-server). It lives in the worker's cache (DT_CACHE_DIR here), in a
 * folder of mode 0700, keyed by the objects' generations, and is verified against the checksums
 * the bucket lists every time it is used: a byte changed, a file added or swapped for a link is
 * downloaded again, never loaded; a new generation in the bucket is a new mirror.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GcsCheckpointStore } from '../src/checkpoints/gcs-store';
import { parseTrainConfig } from '../src/config/train-config';
import type { TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient, TrainerError } from '../src/training/trainer-client';
import { localSavedModelDir, workerCacheDir } from '../src/training/savedmodel/mirror';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { tempDir } from './helpers/temporal';

const FIXTURES = path.resolve(__dirname, 'fixtures/savedmodel');
const SOURCE = path.resolve(__dirname, 'fixtures/savedmodel/broken-per-example-loss');
const URI = 'gs://dt-e2e/models/tiny';
const DATA = 'variables/variables.data-00000-of-00001';

function filesOf(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();
}

describe('the mirror of a gs:// SavedModel', () => {
  let emulator: GcsEmulator;
  let cache: string;
  const logs: string[] = [];
  const savedCacheEnv = process.env.DT_CACHE_DIR;
  const open = (uri: string) => new GcsCheckpointStore(uri, { storage: emulator.storage });
  const mirror = () => localSavedModelDir(URI, open, (m) => logs.push(m));
  const sourceFiles = filesOf(SOURCE);

  before(async () => {
    emulator = await startGcsEmulator({ buckets: ['dt-e2e'] });
    cache = tempDir('dt-mirror-cache-');
    process.env.DT_CACHE_DIR = cache;
    const store = open(URI);
    for (const f of sourceFiles) await store.put(f, fs.readFileSync(path.join(SOURCE, f)));
  });
  after(async () => {
    if (savedCacheEnv === undefined) delete process.env.DT_CACHE_DIR;
    else process.env.DT_CACHE_DIR = savedCacheEnv;
    await emulator?.dispose();
    fs.rmSync(cache, { recursive: true, force: true });
  });

  const assertSameAsSource = (dir: string) => {
    assert.deepEqual(filesOf(dir).filter((f) => f !== '.mirror.json'), sourceFiles);
    for (const f of sourceFiles) assert.ok(fs.readFileSync(path.join(dir, f)).equals(fs.readFileSync(path.join(SOURCE, f))), `${f} differs from the bucket's`);
  };

  test('without DT_CACHE_DIR the cache is ~/.cache/durable-train, not the temp directory', () => {
    assert.equal(workerCacheDir({}), path.join(os.homedir(), '.cache', 'durable-train'));
    assert.throws(() => workerCacheDir({ DT_CACHE_DIR: 'relative/dir' }), /Expected `DT_CACHE_DIR` to be an absolute path, got "relative\/dir"/);
  });

  let first: string;
  test('first use: mirrored into <DT_CACHE_DIR>/savedmodels (mode 0700), files 0600, byte for byte', async () => {
    first = await mirror();
    assert.equal(path.dirname(first), path.join(cache, 'savedmodels'));
    assert.equal(fs.statSync(path.dirname(first)).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(first, DATA)).mode & 0o777, 0o600);
    assertSameAsSource(first);
    assert.deepEqual(logs, []);
  });

  test('reused as is when intact (nothing downloaded again)', async () => {
    const before = fs.statSync(path.join(first, DATA));
    assert.equal(await mirror(), first);
    const now = fs.statSync(path.join(first, DATA));
    assert.equal(now.ino, before.ino);
    assert.equal(now.mtimeMs, before.mtimeMs);
    assert.deepEqual(logs, []);
  });

  test('a byte of the variables changed in the mirror: downloaded again, the bucket\'s bytes are what is used', async () => {
    const file = path.join(first, DATA);
    const bytes = fs.readFileSync(file);
    const at = bytes.length >> 1;
    bytes[at] = bytes[at]! ^ 0x01;
    fs.writeFileSync(file, bytes);
    assert.equal(await mirror(), first);
    assert.match(logs.pop() ?? '', /the local mirror of gs:\/\/dt-e2e\/models\/tiny .* is not what the bucket holds \(variables\/variables\.data-00000-of-00001 does not match its checksum\); downloading it again/);
    assertSameAsSource(first);
  });

  test('saved_model.pb swapped for another graph of the same size, a planted file, a symlink: each downloaded again', async () => {
    const pb = path.join(first, 'saved_model.pb');
    const other = Buffer.alloc(fs.statSync(pb).size, 0x41);
    fs.writeFileSync(pb, other);
    await mirror();
    assert.match(logs.pop() ?? '', /saved_model\.pb does not match its checksum/);
    assertSameAsSource(first);

    fs.mkdirSync(path.join(first, 'assets'));
    fs.writeFileSync(path.join(first, 'assets', 'planted.txt'), 'x');
    await mirror();
    assert.match(logs.pop() ?? '', /files were added or removed/);
    assertSameAsSource(first);

    fs.rmSync(path.join(first, DATA));
    fs.symlinkSync(path.join(SOURCE, DATA), path.join(first, DATA));
    await mirror();
    assert.match(logs.pop() ?? '', /it holds a link or special file/);
    assertSameAsSource(first);
    assert.ok(!fs.lstatSync(path.join(first, DATA)).isSymbolicLink());
  });

  test('a folder mode loosened by someone is made 0700 again', async () => {
    fs.chmodSync(path.join(cache, 'savedmodels'), 0o777);
    await mirror();
    assert.equal(fs.statSync(path.join(cache, 'savedmodels')).mode & 0o777, 0o700);
  });

  test('a new generation in the bucket is a new mirror; the older one and abandoned downloads are removed', async () => {
    const abandoned = path.join(cache, 'savedmodels', '.tmp-abandoned-1234-beef');
    fs.mkdirSync(abandoned);
    fs.writeFileSync(path.join(abandoned, 'saved_model.pb'), 'half');
    const hoursAgo = new Date(Date.now() - 2 * 3600_000);
    fs.utimesSync(abandoned, hoursAgo, hoursAgo);
    await open(URI).put('durable-train.json', fs.readFileSync(path.join(SOURCE, 'durable-train.json')));
    const second = await mirror();
    assert.notEqual(second, first);
    assertSameAsSource(second);
    assert.ok(!fs.existsSync(first), 'the mirror of the older generations is still there');
    assert.deepEqual(fs.readdirSync(path.join(cache, 'savedmodels')), [path.basename(second)]);
  });
});

describe('gs:// SavedModels in the real trainer process', () => {
  let emulator: GcsEmulator;
  let client: TrainerClient;
  const cache = tempDir('dt-mirror-trainer-cache-');
  const runs = tempDir('dt-mirror-trainer-runs-');
  const upload = async (name: string) => {
    const store = new GcsCheckpointStore(`gs://dt-e2e/models/${name}`, { storage: emulator.storage });
    for (const f of filesOf(path.join(FIXTURES, name))) await store.put(f, fs.readFileSync(path.join(FIXTURES, name, f)));
    return store.uri;
  };
  const tiny = { name: 'synthetic', params: { features: 4, classes: 3, size: 64 } };
  const config = (uri: string, data: Record<string, unknown>) =>
    parseTrainConfig({
      model: { kind: 'savedmodel', uri },
      data,
      hyperparameters: { learningRate: 0.01, batchSize: 16 },
      stepsPerEpoch: 2,
      maxEpochs: 1,
      seed: 1,
      checkpoint: { everySteps: 0, everySeconds: 0 },
    });
  let run = 0;
  const train = (uri: string, data: Record<string, unknown>) =>
    client.request<TrainUntilStepResult>({ type: 'train', request: { runUri: `file://${path.join(runs, `run-${run++}`)}`, config: config(uri, data), targetStep: 2, learningRate: 0.01 } });

  before(async () => {
    emulator = await startGcsEmulator({ buckets: ['dt-e2e'] });
    client = new TrainerClient({ log: () => undefined, env: { STORAGE_EMULATOR_HOST: emulator.endpoint, DT_CACHE_DIR: cache } });
  });
  after(async () => {
    await client?.close();
    await emulator?.dispose();
    fs.rmSync(cache, { recursive: true, force: true });
    fs.rmSync(runs, { recursive: true, force: true });
  });

  test('the shipped SavedModel trains from its private mirror', async () => {
    const uri = await upload('mnist-cnn');
    const result = await train(uri, { train: { name: 'mnist', split: 'train', limit: 64 }, eval: { name: 'mnist', split: 'test', limit: 64 } });
    assert.equal(result.step, 2);
    const mirrors = fs.readdirSync(path.join(cache, 'savedmodels'));
    assert.equal(mirrors.length, 1);
    assert.ok(fs.readFileSync(path.join(cache, 'savedmodels', mirrors[0]!, 'saved_model.pb')).equals(fs.readFileSync(path.join(FIXTURES, 'mnist-cnn/saved_model.pb'))));
  });

  test('the hostile SavedModel from gs:// is refused before it is loaded, naming ReadFile', async () => {
    const uri = await upload('hostile-copies-a-file');
    const err = await train(uri, { train: tiny, eval: tiny }).then(
      () => assert.fail('the hostile SavedModel trained'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof TrainerError, String(err));
    assert.equal(err.name, 'UnsafeSavedModel');
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /The SavedModel at gs:\/\/dt-e2e\/models\/hostile-copies-a-file is refused: .*`ReadFile`/);
  });
});
