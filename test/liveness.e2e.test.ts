/**
 * Issue #12, liveness: an activity heartbeats only what its trainer reports, so a trainer that
 * stops making progress (a stalled store call, a paused loop) stops the heartbeats and is caught
 * within the heartbeat timeout; file:// store calls have deadlines; the trainer's dataset cache is
 * bounded in bytes. Real trainer processes and a real file system (a FIFO stands for a file whose
 * read never returns); the activity context is Temporal's MockActivityEnvironment, which records
 * the heartbeats the activity sends.
 *
 *   node --import tsx --test test/liveness.e2e.test.ts
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { callTrainer } from '../src/activities/store-and-trainer';
import { FileCheckpointStore, StoreDeadlineError } from '../src/checkpoints/fs-store';
import { LEASE_KEY } from '../src/checkpoints/layout';
import { parseTrainConfig, type DatasetSpec } from '../src/config/train-config';
import { DatasetRegistry, datasetBytes, syntheticDataset } from '../src/training/dataset-registry';
import type { RequestBody, TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import { ROWS_PER_YIELD, progressMarks } from '../src/training/liveness';
import { csvTable, jsonlTable } from '../src/training/tabular-parse';
import { tempDir } from './helpers/temporal';

const root = tempDir('dt-liveness-');
after(() => fs.rmSync(root, { recursive: true, force: true }));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const config = parseTrainConfig({
  model: { name: 'mlp', params: { hiddenUnits: [8] } },
  data: { train: { name: 'synthetic' }, eval: { name: 'synthetic', split: 'test' } },
  stepsPerEpoch: 40,
  maxEpochs: 1,
  checkpoint: { everySteps: 10, everySeconds: 0 },
});
const holder = { workflowId: 'wf-live', workflowRunId: 'r1', activityId: '1', attempt: 1 };

/** A FIFO where a file should be: opening it for reading blocks until a writer comes (never, here). */
function fifo(file: string): { release(): void } {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  execFileSync('mkfifo', [file]);
  return {
    release() {
      try {
        fs.closeSync(fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        // no reader left
      }
    },
  };
}

/** Runs one trainer request as an activity would, with the times (ms from the start) it heartbeat. */
async function asActivity<T>(trainer: TrainerClient, body: RequestBody): Promise<{ beats: number[]; result: PromiseSettledResult<T>; started: number }> {
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 3000 });
  const started = Date.now();
  const beats: number[] = [];
  env.on('heartbeat', () => beats.push(Date.now() - started));
  const [result] = (await Promise.allSettled([env.run(() => callTrainer<T>(trainer, body))])) as [PromiseSettledResult<T>];
  return { beats, result, started };
}

describe('heartbeats follow the trainer', () => {
  test('a busy trainer heartbeats all along', async () => {
    const trainer = new TrainerClient({ env: { DT_FAULT_STEP_DELAY_MS: '100' }, log: () => undefined });
    try {
      const runUri = pathToFileURL(path.join(root, 'busy')).href;
      const { beats, result } = await asActivity<TrainUntilStepResult>(trainer, { type: 'train', request: { runUri, config, targetStep: 40, learningRate: 0.01, holder } });
      assert.equal(result.status, 'fulfilled', String(result.status === 'rejected' && result.reason));
      const gaps = beats.slice(1).map((t, i) => t - beats[i]!);
      assert.ok(beats.length >= 3, `heartbeats at ${beats.join(', ')} ms`);
      assert.ok(Math.max(...gaps) < 2500, `no gap above 2.5 s while training: ${beats.join(', ')} ms`);
    } finally {
      await trainer.close();
    }
  });

  test('a trainer paused mid-loop (event loop alive, no progress) stops the heartbeats', async () => {
    const logs: string[] = [];
    const trainer = new TrainerClient({ env: { DT_FAULT_PAUSE_BEFORE_STEP: '15' }, log: (m) => logs.push(m) });
    try {
      const runUri = pathToFileURL(path.join(root, 'paused')).href;
      const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 3000 });
      let lastBeat = Date.now();
      env.on('heartbeat', () => (lastBeat = Date.now()));
      const body: RequestBody = { type: 'train', request: { runUri, config, targetStep: 40, learningRate: 0.01 } };
      void env.run(() => callTrainer<TrainUntilStepResult>(trainer, body)).catch(() => undefined);
      const deadline = Date.now() + 60_000;
      while (!logs.some((l) => l.includes('paused before step 15')) && Date.now() < deadline) await sleep(100);
      assert.ok(logs.some((l) => l.includes('paused before step 15')), 'the trainer paused');
      await sleep(5000);
      const silent = Date.now() - lastBeat;
      assert.ok(silent >= 3500, `no heartbeat for ${silent} ms while the trainer made no progress (a 3 s heartbeat timeout fires)`);
      const alive = await Promise.race([trainer.request({ type: 'numTensors' }).then(() => 'answered'), sleep(1500).then(() => 'queued')]);
      assert.equal(alive, 'queued', 'the paused request still holds the trainer');
    } finally {
      await trainer.close();
    }
  });

  test('a trainer stuck in file I/O sends no heartbeats, and the store call fails at its deadline', { timeout: 60_000 }, async () => {
    const runDir = path.join(root, 'stuck');
    const pipe = fifo(path.join(runDir, LEASE_KEY));
    const trainer = new TrainerClient({ env: { DT_STORE_CALL_SECONDS: '4' }, log: () => undefined });
    try {
      await trainer.request({ type: 'describe' });
      const runUri = pathToFileURL(runDir).href;
      const { beats, result, started } = await asActivity<TrainUntilStepResult>(trainer, { type: 'train', request: { runUri, config, targetStep: 40, learningRate: 0.01, holder } });
      const seconds = (Date.now() - started) / 1000;
      assert.equal(result.status, 'rejected');
      assert.match(String((result as PromiseRejectedResult).reason), /getVersioned|get .*lease\.json did not finish within 4 s/);
      assert.ok(seconds >= 4 && seconds < 15, `failed after ${seconds} s`);
      // Loading the dataset may beat once; the 4 s stall itself must be silent.
      const inStall = beats.filter((t) => t > 1500);
      assert.deepEqual(inStall, [], `heartbeats during the stall at ${beats.join(', ')} ms`);
    } finally {
      pipe.release();
      await trainer.close();
    }
  });
});

describe('file:// store deadlines', () => {
  test('a read that never returns fails with StoreDeadlineError at the deadline', async () => {
    const dir = tempDir('dt-deadline-');
    const pipe = fifo(path.join(dir, 'obj'));
    const store = new FileCheckpointStore(pathToFileURL(dir).href, { callDeadlineMs: 700 });
    const started = Date.now();
    try {
      await assert.rejects(store.get('obj'), (err: unknown) => err instanceof StoreDeadlineError && /get file:\/\/.*\/obj did not finish within 0\.7 s/.test(err.message));
      const ms = Date.now() - started;
      assert.ok(ms >= 650 && ms < 3000, `failed after ${ms} ms`);
      await store.put('other', Buffer.from('fine'));
      assert.equal((await store.get('other'))?.toString(), 'fine', 'other calls go on');
    } finally {
      pipe.release();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tabular parsing in chunks', () => {
  const rows = 50_000;
  for (const [name, text, parse] of [
    ['csv', 'a,b,label\n' + Array.from({ length: rows }, (_, i) => `${i},${i * 2},${i % 3}`).join('\n'), (t: string) => csvTable(t, 'file:///x.csv')],
    ['jsonl', Array.from({ length: rows }, (_, i) => JSON.stringify({ a: i, label: i % 3 })).join('\n'), (t: string) => jsonlTable(t, 'file:///x.jsonl', false)],
  ] as const) {
    test(`a large ${name} file lets the event loop run while it is parsed, and marks progress`, async () => {
      let turns = 0;
      let running = true;
      const spin = (): void => {
        turns++;
        if (running) setImmediate(spin);
      };
      setImmediate(spin);
      const marks = progressMarks();
      const table = await parse(text);
      running = false;
      assert.equal(table.rows.length, rows);
      assert.ok(progressMarks() - marks >= rows / ROWS_PER_YIELD - 1, `${progressMarks() - marks} progress marks`);
      assert.ok(turns >= 5, `the event loop turned ${turns} times during parsing`);
    });
  }
});

describe('dataset cache bounded in bytes', () => {
  const spec = (seed: number): DatasetSpec => ({ name: 'synthetic', params: { size: 1000, features: 16, classes: 4, seed } });
  const one = datasetBytes(syntheticDataset(spec(1)));

  test('least recently used datasets are dropped to stay under the limit', async () => {
    const registry = new DatasetRegistry({ maxCacheBytes: 2 * one + 10 }).register('synthetic', syntheticDataset);
    const a = await registry.load(spec(1));
    await registry.load(spec(2));
    assert.equal(await registry.load(spec(1)), a, 'a hit returns the cached dataset');
    await registry.load(spec(3)); // spec(2) is now the least recently used
    await sleep(0);
    const { bytes, keys } = registry.cached();
    assert.equal(bytes, 2 * one);
    assert.deepEqual(keys, [JSON.stringify(spec(1)), JSON.stringify(spec(3))]);
    assert.notEqual(await registry.load(spec(2)), undefined);
    await sleep(0);
    assert.deepEqual(registry.cached().keys, [JSON.stringify(spec(3)), JSON.stringify(spec(2))]);
  });

  test('a dataset larger than the limit is used but not kept', async () => {
    const registry = new DatasetRegistry({ maxCacheBytes: one - 1 }).register('synthetic', syntheticDataset);
    assert.equal((await registry.load(spec(1))).size, 1000);
    await sleep(0);
    assert.deepEqual(registry.cached(), { bytes: 0, keys: [] });
  });

  test('DT_TRAINER_DATASET_CACHE_BYTES is checked', async () => {
    const { datasetCacheBytesFromEnv } = await import('../src/training/dataset-registry');
    assert.equal(datasetCacheBytesFromEnv({ DT_TRAINER_DATASET_CACHE_BYTES: '1234' }), 1234);
    assert.throws(() => datasetCacheBytesFromEnv({ DT_TRAINER_DATASET_CACHE_BYTES: '-1' }), /Expected `DT_TRAINER_DATASET_CACHE_BYTES` to be a whole number of bytes from 0 up, got "-1"/);
  });
});
