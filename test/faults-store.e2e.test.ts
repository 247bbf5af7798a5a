/**
 * Issue #12, the fault suite (2/2): faults of the run's surroundings, each on a real dev server
 * with real worker processes and ending in a COMPLETED run whose exported weights, last
 * checkpoint's optimizer state and every epoch's metrics are bitwise equal to a clean run's:
 *
 *   - a GCS black hole: a TCP proxy in front of fake-gcs-server accepts connections and never
 *     answers, for 90 s (longer than the store's 60 s retry deadline);
 *   - a disk that fails every write with ENOSPC for a while (DT_FAULT_ENOSPC_WHILE, fault-hooks.ts);
 *   - the dev server stopped and restarted mid-epoch.
 *
 * When each fault starts (after which checkpoint) and how long it lasts come from a printed seed.
 *
 *   node --import tsx --test test/faults-store.e2e.test.ts      (DT_TEST_SEED=<n> replays a draw)
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { MANIFEST, METRICS_JSONL, METRICS_PREFIX, OPTIMIZER_BIN, checkpointObjectKey, joinUri, weightsKey } from '../src/checkpoints/layout';
import type { TrainModelResult } from '../src/workflows';
import { comparable, sha256 } from './e2e-support';
import {
  EVERY,
  LAST,
  STEPS_PER_EPOCH,
  assertSameRun,
  faultInput,
  fileRun,
  progressMarkers,
  useFaultSuite,
  type Outcome,
} from './helpers/fault-suite';
import { mulberry32, testSeed } from './helpers/seed';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy';
import { resultThroughOutages } from './helpers/restart';
import { tempDir, uniqueId, waitFor } from './helpers/temporal';

const SUITE = 'faults-store';
const SEED = testSeed(SUITE);
const rand = mulberry32(SEED);
const BUCKET = 'dt-outage';
const HOLE_MS = 90_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** A checkpoint step inside epochs 2 to 4 that is not an epoch's end (the fault lands mid-epoch). */
const midEpochCheckpoint = (): number => {
  let s: number;
  do s = STEPS_PER_EPOCH + EVERY * (1 + Math.floor(rand() * ((3 * STEPS_PER_EPOCH) / EVERY - 1)));
  while (s % STEPS_PER_EPOCH === 0);
  return s;
};

/** The failures retried attempts started after (ActivityTaskStarted carries the previous attempt's). */
async function retriedAfter(handle: WorkflowHandle): Promise<string[]> {
  const events = (await handle.fetchHistory()).events ?? [];
  return events.flatMap((e) => (e.activityTaskStartedEventAttributes?.lastFailure?.message ? [e.activityTaskStartedEventAttributes.lastFailure.message] : []));
}

describe(`${SUITE} (seed ${SEED})`, { timeout: 600_000 }, () => {
  let emu: GcsEmulator;
  let proxy: TcpProxy;
  const suite = useFaultSuite(SUITE, SEED, { own: true, env: () => ({ STORAGE_EMULATOR_HOST: proxy.endpoint }) });
  const { root, taskQueue, rows, workers } = suite;
  const gsRoot = `gs://${BUCKET}/${uniqueId('faults')}`;
  let fileReference: Outcome;
  let gsReference: Outcome;

  const start = (runId: string, checkpointUri?: string) =>
    suite.stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [faultInput(runId, checkpointUri)] });

  /** Object names under a gs:// run URI, relative to it (read around the proxy). */
  const gsKeys = async (runUri: string, prefix = ''): Promise<string[]> => {
    const base = runUri.slice(`gs://${BUCKET}/`.length);
    const [files] = await emu.storage.bucket(BUCKET).getFiles({ prefix: `${base}/${prefix}` });
    return files.map((f) => f.name.slice(base.length + 1)).sort();
  };
  const gsObject = async (runUri: string, key: string): Promise<Buffer> =>
    (await emu.storage.bucket(BUCKET).file(`${runUri.slice(`gs://${BUCKET}/`.length)}/${key}`).download())[0];
  const gsMarkers = async (runUri: string): Promise<Set<string>> => new Set((await gsKeys(runUri)).filter((k) => k.endsWith(`/${MANIFEST}`) || k.startsWith(METRICS_PREFIX)));

  async function gsOutcome(result: TrainModelResult): Promise<{ outcome: Outcome; jsonl: string; records: string[] }> {
    return {
      outcome: {
        exportedWeights: sha256(await gsObject(result.runUri, weightsKey())),
        lastOptimizer: sha256(await gsObject(result.runUri, checkpointObjectKey(LAST, OPTIMIZER_BIN))),
        history: comparable(result.history),
      },
      jsonl: (await gsObject(result.runUri, METRICS_JSONL)).toString('utf8'),
      records: await gsKeys(result.runUri, METRICS_PREFIX),
    };
  }

  /** Resolves, once `markers()` holds something it did not at the call, with the seconds since `from`. */
  function nextProgress(markers: () => Promise<Set<string>>, from: () => number, done: () => boolean): Promise<number> {
    return markers().then(async (seen) => {
      await waitFor(async () => done() || [...(await markers())].some((k) => !seen.has(k)), 300_000, 'progress after a fault');
      return (Date.now() - from()) / 1000;
    });
  }

  before(async () => {
    emu = await startGcsEmulator({ buckets: [BUCKET], backend: 'memory' });
    proxy = await startTcpProxy(emu.port);
    workers.start();
    const [file, gs] = [uniqueId('clean-file'), uniqueId('clean-gs')];
    const fileResult = (await (await start(file)).result()) as TrainModelResult;
    const gsResult = (await (await start(gs, gsRoot)).result()) as TrainModelResult;
    const f = fileRun(fileResult);
    fileReference = f.outcome;
    assertSameRun(fileResult, f.outcome, fileReference, f.jsonl, f.records);
    const g = await gsOutcome(gsResult);
    gsReference = g.outcome;
    assertSameRun(gsResult, g.outcome, gsReference, g.jsonl, g.records);
    assert.deepEqual(gsReference, fileReference, 'a clean gs:// run equals a clean file:// run');
  });
  after(async () => {
    await proxy?.close();
    await emu?.dispose();
  });

  test(`GCS black hole for ${HOLE_MS / 1000} s (connections accepted, never answered): completed, bitwise equal`, async (t) => {
    const at = midEpochCheckpoint();
    const runId = uniqueId('black-hole');
    const handle = await start(runId, gsRoot);
    const runUri = joinUri(gsRoot, runId);
    await waitFor(async () => (await gsKeys(runUri)).includes(checkpointObjectKey(at, MANIFEST)), 120_000, `checkpoint ${at} in the bucket`);
    proxy.hold();
    const holeAt = Date.now();
    let done = false;
    const finished = handle.result().finally(() => (done = true)) as Promise<TrainModelResult>;
    await sleep(HOLE_MS);
    assert.ok(!done, 'the run cannot finish while its store is a black hole');
    const held = proxy.heldConnections;
    proxy.pass();
    const passAt = Date.now();
    const recover = nextProgress(() => gsMarkers(runUri), () => holeAt, () => done);
    const result = await finished;
    const g = await gsOutcome(result);
    assertSameRun(result, g.outcome, gsReference, g.jsonl, g.records);
    const failures = await retriedAfter(handle);
    t.diagnostic(`held ${held} connections; retried after: ${failures.join(' | ').slice(0, 800)}`);
    assert.ok(held > 0, 'the black hole held connections');
    assert.ok(failures.length > 0, 'an activity failed in the black hole and was retried');
    const seconds = await recover;
    rows.push({
      fault: `GCS black hole ${HOLE_MS / 1000} s`,
      moment: `after checkpoint ${at} (epoch ${Math.ceil(at / STEPS_PER_EPOCH)})`,
      outcome: `${held} connections held; ${failures.length} attempts retried; COMPLETED, bitwise equal`,
      recoverSeconds: seconds,
    });
    t.diagnostic(`training again ${seconds.toFixed(1)} s after the hole opened, ${(seconds - (passAt - holeAt) / 1000).toFixed(1)} s after it closed`);
  });

  test('ENOSPC on every write for a while: the writes fail retryably, completed, bitwise equal', async (t) => {
    const at = midEpochCheckpoint();
    const forMs = 5_000 + Math.floor(rand() * 15_000);
    const flag = path.join(tempDir('dt-enospc-'), 'disk-full');
    const w = workers.start({ DT_FAULT_ENOSPC_WHILE: flag });
    const runId = uniqueId('enospc');
    const runDir = path.join(root, runId);
    // This worker alone takes the run's tasks: the clean one stops.
    await workers.started[0]!.stop();
    const handle = await start(runId);
    await waitFor(async () => fs.existsSync(path.join(runDir, checkpointObjectKey(at, MANIFEST))), 120_000, `checkpoint ${at}`);
    fs.writeFileSync(flag, '');
    const fullAt = Date.now();
    await sleep(forMs);
    fs.rmSync(flag);
    let done = false;
    const finished = handle.result().finally(() => (done = true)) as Promise<TrainModelResult>;
    const recover = nextProgress(async () => progressMarkers(runDir), () => fullAt, () => done);
    const result = await finished;
    const f = fileRun(result);
    assertSameRun(result, f.outcome, fileReference, f.jsonl, f.records);
    const failures = (await retriedAfter(handle)).filter((m) => m.includes('ENOSPC'));
    t.diagnostic(`retried after ENOSPC: ${failures.length}; ${failures[0]?.slice(0, 300) ?? ''}`);
    assert.ok(failures.length > 0, 'a write failed with ENOSPC and its activity was retried');
    const seconds = await recover;
    rows.push({
      fault: `ENOSPC on every write for ${(forMs / 1000).toFixed(1)} s`,
      moment: `after checkpoint ${at}`,
      outcome: `${failures.length} attempts failed with ENOSPC and retried; COMPLETED, bitwise equal`,
      recoverSeconds: seconds,
    });
    await w.stop();
  });

  test('the dev server restarted mid-epoch: completed, bitwise equal', async (t) => {
    const at = midEpochCheckpoint();
    const downMs = 2_000 + Math.floor(rand() * 4_000);
    // Slow steps (weights unchanged) so that the epoch is still running when the server goes.
    const w = workers.start({ DT_FAULT_STEP_DELAY_MS: '100' });
    const runId = uniqueId('server-restart');
    const runDir = path.join(root, runId);
    const handle = await start(runId);
    await waitFor(async () => fs.existsSync(path.join(runDir, checkpointObjectKey(at, MANIFEST))), 120_000, `checkpoint ${at}`);
    const stoppedAt = Date.now();
    await suite.stack.server!.stop();
    await sleep(downMs);
    const before = progressMarkers(runDir);
    await suite.stack.server!.restart();
    t.diagnostic(`the server was down for ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s`);
    let done = false;
    const finished = resultThroughOutages<TrainModelResult>(handle, 240_000).finally(() => (done = true));
    await waitFor(async () => done || [...progressMarkers(runDir)].some((k) => !before.has(k)), 240_000, 'progress after the restart');
    const seconds = (Date.now() - stoppedAt) / 1000;
    const result = await finished;
    const f = fileRun(result);
    assertSameRun(result, f.outcome, fileReference, f.jsonl, f.records);
    rows.push({ fault: `dev server down ${(downMs / 1000).toFixed(1)} s, restarted`, moment: `after checkpoint ${at} (mid-epoch)`, outcome: 'COMPLETED, bitwise equal', recoverSeconds: seconds });
    await w.stop();
  });
});
