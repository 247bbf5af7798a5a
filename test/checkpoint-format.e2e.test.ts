/**
 * The checkpoint format on the real file store: manifest last, checksums, fall-back on damage,
 * retention, no overwrite of committed steps. Plus an end-to-end run whose newest checkpoint is
 * corrupted before a retry: the retry falls back to the one before and the run still ends with
 * the same weights, bit for bit, as an undisturbed run.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import {
  listCheckpointSteps,
  loadLatestCheckpoint,
  readCheckpoint,
  writeCheckpoint,
} from '../src/checkpoints/format';
import { checkpointKey } from '../src/checkpoints/layout';
import { applyRetention } from '../src/checkpoints/retention';
import { openStore } from '../src/checkpoints/open-store';
import type { CheckpointStore } from '../src/checkpoints/store';
import type { TrainModelResult } from '../src/workflows';
import { startStack, startWorkerProcess, tempDir, uniqueId, waitFor, type Stack, type WorkerProcess } from './helpers/temporal';

function objectsFor(step: number, salt = ''): Map<string, Buffer> {
  return new Map([
    ['model.json', Buffer.from(JSON.stringify({ step, salt }))],
    ['weights.bin', Buffer.from(`weights of step ${step}${salt}`.repeat(16))],
    ['optimizer.bin', Buffer.from(`optimizer of step ${step}${salt}`)],
    ['state.json', Buffer.from(JSON.stringify({ step }))],
  ]);
}

const dirs: string[] = [];
function fresh(): { store: CheckpointStore; dir: string } {
  const dir = tempDir('dt-format-');
  dirs.push(dir);
  return { store: openStore(pathToFileURL(dir).href), dir };
}

function flipByte(file: string, at = 7): void {
  const data = fs.readFileSync(file);
  data[at] = data[at]! ^ 0x01;
  fs.writeFileSync(file, data);
}

describe('checkpoint format (file store)', () => {
  after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  test('a checkpoint without its manifest does not exist', async () => {
    const { store } = fresh();
    await writeCheckpoint(store, 10, objectsFor(10));
    // A torn write of step 20: every object but the manifest.
    for (const [name, data] of objectsFor(20)) await store.put(`${checkpointKey(20)}/${name}`, data);
    assert.deepEqual(await listCheckpointSteps(store), [10]);
    const read = await readCheckpoint(store, 20);
    assert.equal(read.ok, false);
    assert.equal(!read.ok && read.reason, 'no manifest');
    const logs: string[] = [];
    const latest = await loadLatestCheckpoint(store, Infinity, (m) => logs.push(m));
    assert.equal(latest?.step, 10);
    assert.deepEqual(logs, [], 'a manifest-less directory is not a damaged checkpoint, just not one');
    // Finishing the torn step later commits it normally.
    const w = await writeCheckpoint(store, 20, objectsFor(20));
    assert.equal(w.written, true);
    assert.deepEqual(await listCheckpointSteps(store), [10, 20]);
  });

  test('a flipped byte in the newest weights.bin is detected; loading falls back to the previous one and says so', async () => {
    const { store, dir } = fresh();
    for (const step of [10, 20, 30]) await writeCheckpoint(store, step, objectsFor(step));
    flipByte(path.join(dir, checkpointKey(30), 'weights.bin'));
    const read = await readCheckpoint(store, 30);
    assert.equal(read.ok, false);
    assert.match(!read.ok ? read.reason : '', /weights\.bin fails its checksum/);
    const logs: string[] = [];
    const latest = await loadLatestCheckpoint(store, Infinity, (m) => logs.push(m));
    assert.equal(latest?.step, 20);
    assert.deepEqual(latest?.objects.get('weights.bin'), objectsFor(20).get('weights.bin'));
    assert.equal(logs.length, 1);
    assert.match(logs[0]!, /checkpoints\/000000000030 is unusable \(weights\.bin fails its checksum.*\); falling back to the previous one/);
  });

  test('a missing object and a garbled manifest are detected too; nothing usable gives undefined', async () => {
    const { store, dir } = fresh();
    for (const step of [10, 20]) await writeCheckpoint(store, step, objectsFor(step));
    fs.rmSync(path.join(dir, checkpointKey(20), 'optimizer.bin'));
    fs.writeFileSync(path.join(dir, checkpointKey(10), 'manifest.json'), '{"format":');
    const logs: string[] = [];
    assert.equal(await loadLatestCheckpoint(store, Infinity, (m) => logs.push(m)), undefined);
    assert.equal(logs.length, 2);
    assert.match(logs[0]!, /000000000020 is unusable \(optimizer\.bin is missing\)/);
    assert.match(logs[1]!, /000000000010 is unusable \(manifest is not valid JSON\)/);
  });

  test('loading honours maxStep (a retried activity never resumes past its target)', async () => {
    const { store } = fresh();
    for (const step of [10, 20, 30]) await writeCheckpoint(store, step, objectsFor(step));
    assert.equal((await loadLatestCheckpoint(store, 25))?.step, 20);
    assert.equal((await loadLatestCheckpoint(store, 9)), undefined);
  });

  test('retention keeps the last K and the protected (best) step, and never the newest', async () => {
    const { store, dir } = fresh();
    const steps = [10, 20, 30, 40, 50, 60, 70];
    for (const step of steps) await writeCheckpoint(store, step, objectsFor(step));
    const deleted = await applyRetention(store, 3, [20]);
    assert.deepEqual(deleted, [10, 30, 40]);
    assert.deepEqual(await listCheckpointSteps(store), [20, 50, 60, 70]);
    // Deleted means gone, objects included, not just un-committed.
    assert.equal(fs.existsSync(path.join(dir, checkpointKey(10))) && fs.readdirSync(path.join(dir, checkpointKey(10))).length > 0, false);
    // keepLast 1 with nothing protected: only the newest remains (protected steps still stay).
    assert.deepEqual(await applyRetention(store, 1, []), [20, 50, 60]);
    assert.deepEqual(await listCheckpointSteps(store), [70]);
    // The newest survives even when something else is protected and keepLast is at its minimum.
    await writeCheckpoint(store, 80, objectsFor(80));
    assert.deepEqual(await applyRetention(store, 1, [70]), []);
    assert.deepEqual(await listCheckpointSteps(store), [70, 80]);
    // Every kept checkpoint still verifies.
    for (const step of [70, 80]) assert.equal((await readCheckpoint(store, step)).ok, true);
  });

  test('writing a step that is already committed does not overwrite it', async () => {
    const { store, dir } = fresh();
    const first = await writeCheckpoint(store, 10, objectsFor(10));
    assert.equal(first.written, true);
    const manifestBefore = fs.readFileSync(path.join(dir, checkpointKey(10), 'manifest.json'));
    const again = await writeCheckpoint(store, 10, objectsFor(10, ' but different'));
    assert.equal(again.written, false);
    assert.equal(again.manifestSha256, first.manifestSha256);
    assert.deepEqual(fs.readFileSync(path.join(dir, checkpointKey(10), 'manifest.json')), manifestBefore);
    const read = await readCheckpoint(store, 10);
    assert.ok(read.ok);
    assert.deepEqual(read.checkpoint.objects.get('weights.bin'), objectsFor(10).get('weights.bin'));
  });

  test('a committed step that fails its checksums is un-committed and written again', async () => {
    const { store, dir } = fresh();
    await writeCheckpoint(store, 10, objectsFor(10));
    flipByte(path.join(dir, checkpointKey(10), 'weights.bin'));
    const again = await writeCheckpoint(store, 10, objectsFor(10));
    assert.equal(again.written, true);
    assert.equal((await readCheckpoint(store, 10)).ok, true);
  });

  test('latest.json only moves forward', async () => {
    const { store } = fresh();
    await writeCheckpoint(store, 30, objectsFor(30));
    await writeCheckpoint(store, 20, objectsFor(20));
    const latest = JSON.parse((await store.get('latest.json'))!.toString('utf8'));
    assert.equal(latest.step, 30);
  });
});

describe('checkpoint format, end to end: the newest checkpoint is corrupted before a retry', () => {
  let stack: Stack;
  const root = tempDir('dt-format-e2e-');
  const rootUri = pathToFileURL(root).href;
  const workers: WorkerProcess[] = [];
  const input = (runId: string) => ({
    runId,
    model: { name: 'mlp', params: { hiddenUnits: [32], dropout: 0.2 } },
    data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 200 } },
    hyperparameters: { optimizer: 'adam', learningRate: 0.003, batchSize: 32 },
    stepsPerEpoch: 30,
    maxEpochs: 2,
    seed: 9,
    checkpoint: { everySteps: 10, everySeconds: 0, keepLast: 20 },
    timeouts: { heartbeatSeconds: 3 },
  });
  const worker = (taskQueue: string, extra: Record<string, string> = {}): WorkerProcess => {
    const w = startWorkerProcess({ TEMPORAL_ADDRESS: stack.address, DT_TASK_QUEUE: taskQueue, DT_CHECKPOINT_URI: rootUri, ...extra });
    workers.push(w);
    return w;
  };
  const modelSha = (result: TrainModelResult): string =>
    createHash('sha256').update(fs.readFileSync(path.join(path.dirname(fileURLToPath(result.modelUri)), 'weights.bin'))).digest('hex');

  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await stack?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('the retry skips the corrupted checkpoint, resumes from the one before, and ends bitwise equal', async () => {
    // The undisturbed run.
    const straightId = uniqueId('straight');
    const tq1 = uniqueId('tq');
    const w1 = worker(tq1);
    const straight = (await (
      await stack.client.workflow.start('trainModel', { taskQueue: tq1, workflowId: straightId, args: [input(straightId)] })
    ).result()) as TrainModelResult;
    await w1.stop();

    // The disturbed run: the trainer holds before step 45 (newest checkpoint: 40). We flip a byte
    // in checkpoint 40's weights.bin, then kill the worker; the retry must fall back to 30.
    const runId = uniqueId('corrupt');
    const runDir = path.join(root, runId);
    const tq2 = uniqueId('tq');
    const first = worker(tq2, { DT_FAULT_PAUSE_BEFORE_STEP: '45' });
    const handle = await stack.client.workflow.start('trainModel', { taskQueue: tq2, workflowId: runId, args: [input(runId)] });
    await waitFor(async () => first.output().includes('fault injection: paused before step 45'), 90_000, 'the trainer to hold before step 45');
    // Checkpoint 40 is written in the background while steps 41–44 train: the pause can come first.
    const committed = () => fs.readdirSync(path.join(runDir, 'checkpoints')).filter((d) => fs.existsSync(path.join(runDir, 'checkpoints', d, 'manifest.json')));
    await waitFor(async () => committed().length >= 4, 30_000, 'checkpoint 40 to commit').catch(() => undefined);
    assert.deepEqual(committed(), ['000000000010', '000000000020', '000000000030', '000000000040']);
    flipByte(path.join(runDir, checkpointKey(40), 'weights.bin'), 100);
    await first.kill();
    const second = worker(tq2);
    const result = (await handle.result()) as TrainModelResult;
    await second.stop();

    assert.match(
      second.output(),
      /checkpoints\/000000000040 is unusable \(weights\.bin fails its checksum \(\d+ bytes, expected \d+\)\); falling back to the previous one/,
    );
    assert.equal(result.step, 60);
    assert.equal(modelSha(result), modelSha(straight), 'final weights equal the undisturbed run');
    // The recomputed step 40 replaced the damaged one.
    const store = openStore(pathToFileURL(runDir).href);
    assert.equal((await readCheckpoint(store, 40)).ok, true);
    assert.deepEqual(
      fs.readFileSync(path.join(runDir, checkpointKey(40), 'weights.bin')),
      fs.readFileSync(path.join(root, straightId, checkpointKey(40), 'weights.bin')),
    );
  });
});
