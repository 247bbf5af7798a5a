/**
 * Issue #12, fencing: two trainer processes on one run at once. Attempt 1 (a slow trainer, the
 * zombie) is still training when attempt 2 starts on the same run; attempt 2 takes the lease over
 * and trains to the end, attempt 1 stops before its next commit with LeaseLostError (and, when
 * the seed also cancels it, writes no extra checkpoint). The run folder holds one clean line of
 * checkpoints and the last one equals an uninterrupted run's bit for bit, on file:// and gs://.
 * The moment attempt 2 starts (and whether attempt 1 is cancelled) comes from a printed seed.
 *
 *   node --import tsx --test test/two-trainers.e2e.test.ts      (DT_TEST_SEED=<n> replays one)
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { listCheckpointSteps, readCheckpoint } from '../src/checkpoints/format';
import { GcsCheckpointStore } from '../src/checkpoints/gcs-store';
import { readLease, type LeaseHolder } from '../src/checkpoints/lease';
import { OPTIMIZER_BIN, STATE_JSON, WEIGHTS_BIN } from '../src/checkpoints/layout';
import { sha256 } from '../src/checkpoints/digest';
import { openStore } from '../src/checkpoints/open-store';
import type { CheckpointStore } from '../src/checkpoints/store';
import { parseTrainConfig } from '../src/config/train-config';
import type { Progress, TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient, TrainerError } from '../src/training/trainer-client';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { mulberry32, testSeed } from './helpers/seed';
import { tempDir } from './helpers/temporal';

const SEED = testSeed('two-trainers');


const N = 60;
const EVERY = 10;
const config = parseTrainConfig({
  model: { name: 'mlp', params: { hiddenUnits: [32], dropout: 0.2 } },
  data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 200 } },
  hyperparameters: { optimizer: 'adam', learningRate: 0.003, batchSize: 32 },
  stepsPerEpoch: 40,
  maxEpochs: 2,
  seed: 5,
  checkpoint: { everySteps: EVERY, everySeconds: 0, keepLast: 100 },
});
const holder = (attempt: number): LeaseHolder => ({ workflowId: 'wf-two', workflowRunId: 'run-1', activityId: '3', attempt });
const train = (client: TrainerClient, runUri: string, h: LeaseHolder | undefined, opts: { onProgress?: (p: Progress) => void; signal?: AbortSignal } = {}) =>
  client.request<TrainUntilStepResult>({ type: 'train', request: { runUri, config, targetStep: N, learningRate: 0.003, ...(h && { holder: h }) } }, opts);

/**
 * The training state of a checkpoint: SHA-256 of weights and optimizer slots, and what state.json
 * says about the trajectory (layer names are left out: tfjs numbers them per process).
 */
async function stateOf(store: CheckpointStore, step: number): Promise<Record<string, unknown>> {
  const read = await readCheckpoint(store, step);
  assert.ok(read.ok, `${store.uri} step ${step}: ${read.ok ? '' : read.reason}`);
  const { objects } = read.checkpoint;
  const state = JSON.parse(objects.get(STATE_JSON)!.toString('utf8')) as Record<string, unknown>;
  return {
    [WEIGHTS_BIN]: sha256(objects.get(WEIGHTS_BIN)!),
    [OPTIMIZER_BIN]: sha256(objects.get(OPTIMIZER_BIN)!),
    step: state.step,
    learningRate: state.learningRate,
    dataCursor: state.dataCursor,
    epochLoss: state.epochLoss,
  };
}

interface Outcome {
  readonly scenario: string;
  readonly seed: number;
  readonly outcome: string;
  readonly recoverSeconds: number;
}
const table: Outcome[] = [];
after(() => {
  console.log('[two-trainers] scenario | store | seed | outcome | seconds from takeover to the end');
  for (const r of table) console.log(`[two-trainers] ${r.scenario} | ${r.seed} | ${r.outcome} | ${r.recoverSeconds.toFixed(1)}`);
});

function suite(storeName: string, env: () => NodeJS.ProcessEnv, runUriOf: (name: string) => string, storeOf: (uri: string) => CheckpointStore): void {
  void describe(`two trainers on one run (${storeName})`, () => {
    let zombie: TrainerClient;
    let retry: TrainerClient;
    before(async () => {
      zombie = new TrainerClient({ env: { ...env(), DT_FAULT_STEP_DELAY_MS: '120' }, log: () => undefined });
      retry = new TrainerClient({ env: env(), log: () => undefined });
    });
    after(async () => {
      await zombie?.close();
      await retry?.close();
    });

    void test(`seed ${SEED}: the old attempt stops before its next commit; one clean line; final weights == uninterrupted`, async () => {
      const rand = mulberry32(SEED + (storeName === 'gs://' ? 1 : 0));
      // The uninterrupted run warms the retry's process (tfjs, mnist), so its takeover is prompt.
      const straightUri = runUriOf(`straight-${SEED}`);
      await train(retry, straightUri, undefined);
      const startAt = 5 + Math.floor(rand() * 40); // attempt 1's step when attempt 2 starts
      const cancelZombie = rand() < 0.5;
      const runUri = runUriOf(`run-${SEED}`);
      let startRetry: () => void = () => undefined;
      const retryMayStart = new Promise<void>((resolve) => (startRetry = resolve));
      const abort = new AbortController();
      const first = train(zombie, runUri, holder(1), {
        signal: abort.signal,
        onProgress: (p) => {
          if (p.step >= startAt) startRetry();
        },
      });
      first.catch(() => startRetry());
      await retryMayStart;
      const takeoverAt = Date.now();
      const second = train(retry, runUri, holder(2));
      // Attempt 2 is under way (it takes the lease first thing); a heartbeat-timed-out attempt is cancelled.
      if (cancelZombie) setTimeout(() => abort.abort(), 500);
      const [r1, r2] = await Promise.allSettled([first, second]);
      const recoverSeconds = (Date.now() - takeoverAt) / 1000;
      assert.equal(r2.status, 'fulfilled', `attempt 2 finishes: ${r2.status === 'rejected' ? String(r2.reason) : ''}`);
      assert.equal(r2.value.step, N);
      assert.equal(r1.status, 'rejected', 'attempt 1 was still training when attempt 2 took over, so it must lose');
      assert.ok(r1.reason instanceof TrainerError && r1.reason.name === 'LeaseLostError', `attempt 1 fails with LeaseLostError, got ${String(r1.reason)}`);
      assert.match(r1.reason.message, /attempt 1.*taken over by .*attempt 2/);

      const store = storeOf(runUri);
      const steps = await listCheckpointSteps(store);
      // Every checkpoint is on the cadence: a cancelled zombie wrote no extra one at its stopping step.
      assert.deepEqual(steps, Array.from({ length: N / EVERY }, (_, i) => (i + 1) * EVERY), `steps ${steps.join(', ')}`);
      let lateFromZombie = 0;
      for (const step of steps) {
        const read = await readCheckpoint(store, step);
        assert.ok(read.ok, `step ${step} verifies: ${read.ok ? '' : read.reason}`);
        const { manifest } = read.checkpoint;
        // Each step's objects come from one writer: canonical names (equal bytes from either) or one writer's own folder.
        const dirs = new Set(Object.values(manifest.objects).map((e) => (e.key ?? '').split('/')[0]).filter(Boolean));
        assert.ok(dirs.size <= 1, `step ${step} mixes writers' folders ${[...dirs].join(', ')}`);
        assert.ok(manifest.writer, `step ${step} names its writer`);
        if (manifest.writer.holder.attempt === 1 && step > r2.value.resumedFromStep) lateFromZombie++;
      }
      // Only the check-to-commit race can let the zombie commit once after the takeover.
      assert.ok(lateFromZombie <= 1, `the zombie committed ${lateFromZombie} steps after attempt 2 resumed from ${r2.value.resumedFromStep}`);
      assert.equal((await readLease(store))?.holder.attempt, 2);
      assert.deepEqual(await stateOf(store, N), await stateOf(storeOf(straightUri), N), 'final checkpoint == the uninterrupted run');
      table.push({
        scenario: `${storeName} attempt 2 starts at attempt 1's step ${startAt}${cancelZombie ? ', attempt 1 cancelled' : ''}`,
        seed: SEED,
        outcome: `attempt 1 LeaseLostError; attempt 2 resumed from ${r2.value.resumedFromStep}, ${r2.value.stepsRun} steps; zombie commits after takeover ${lateFromZombie}; bitwise equal`,
        recoverSeconds,
      });
    });
  });
}

const root = tempDir('dt-two-trainers-');
after(() => fs.rmSync(root, { recursive: true, force: true }));
suite(
  'file://',
  () => ({}),
  (name) => pathToFileURL(path.join(root, name)).href,
  (uri) => openStore(uri),
);

let emu: GcsEmulator | undefined;
void describe('GCS emulator', () => {
  before(async () => {
    emu = await startGcsEmulator({ buckets: ['dt-checkpoints'], backend: 'memory' });
  });
  after(async () => {
    await emu?.dispose();
  });
  suite(
    'gs://',
    () => ({ STORAGE_EMULATOR_HOST: emu!.endpoint }),
    (name) => `gs://dt-checkpoints/two-trainers-${process.pid}/${name}`,
    (uri) => new GcsCheckpointStore(uri, { storage: emu!.storage }),
  );
});
