/**
 * Issue #3, "exact resume": a run that is killed and resumed ends with the same weights, bit for
 * bit, as a run that never crashed (same seed, same config, same backend).
 *
 * Part 1 (engine level, no Temporal): the real trainer process through TrainerClient, for every
 * optimizer we offer. Uninterrupted to step N vs. to N/2 (mid-epoch), a brand new trainer process,
 * then on to N.
 *
 * Part 2 (end to end): trainModel on a real dev server with a worker PROCESS that the test
 * SIGKILLs (whole process group: worker and trainer) at three moments, a new worker process
 * finishes the run, and the final model equals the uninterrupted run's bytes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parseTrainConfig, OPTIMIZERS, type OptimizerName } from '../src/config/train-config';
import { checkpointKey, epochRecordKey } from '../src/checkpoints/layout';
import type { TrainUntilStepResult as StepResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import type { TrainModelResult } from '../src/workflows';
import {
  startStack,
  startWorkerProcess,
  tempDir,
  uniqueId,
  waitFor,
  type Stack,
  type WorkerProcess,
} from './helpers/temporal';

const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function checkpointDir(runDir: string, step: number): string {
  return path.join(runDir, checkpointKey(step));
}

/**
 * SHA-256 of the objects that hold all training state of a checkpoint, and state.json itself
 * (without `config.runId`, the one field two runs of the same config may differ in).
 */
function checkpointHashes(runDir: string, step: number): Record<string, unknown> {
  const dir = checkpointDir(runDir, step);
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
  delete state.config.runId;
  return {
    'weights.bin': sha(path.join(dir, 'weights.bin')),
    'optimizer.bin': sha(path.join(dir, 'optimizer.bin')),
    'state.json': state,
  };
}

const hasManifest = (runDir: string, step: number): boolean => fs.existsSync(path.join(checkpointDir(runDir, step), 'manifest.json'));

describe('exact resume, engine level (trainer process, no Temporal)', () => {
  const root = tempDir('dt-exact-engine-');
  const N = 60;
  const HALF = 30; // mid-epoch: stepsPerEpoch is 40
  const config = (optimizer: OptimizerName) =>
    parseTrainConfig({
      model: { name: 'mlp', params: { hiddenUnits: [32], dropout: 0.2 } },
      data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 200 } },
      hyperparameters: { optimizer, learningRate: 0.005, batchSize: 32 },
      stepsPerEpoch: 40,
      maxEpochs: 2,
      seed: 11,
      checkpoint: { everySteps: 0, everySeconds: 0 },
    });
  const runUri = (name: string) => pathToFileURL(path.join(root, name)).href;
  const train = (client: TrainerClient, name: string, optimizer: OptimizerName, targetStep: number) =>
    client.request<StepResult>({
      type: 'train',
      request: { runUri: runUri(name), config: config(optimizer), targetStep, learningRate: 0.005 },
    });
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  const uninterrupted = new Map<OptimizerName, StepResult>();
  const resumed = new Map<OptimizerName, StepResult>();

  before(async () => {
    // One trainer process trains every optimizer straight to N.
    const a = new TrainerClient({ log: () => undefined });
    try {
      for (const o of OPTIMIZERS) uninterrupted.set(o, await train(a, `straight-${o}`, o, N));
    } finally {
      await a.close();
    }
    // Another trains each to N/2 and exits; a third, with no state in memory, continues to N.
    const b = new TrainerClient({ log: () => undefined });
    try {
      for (const o of OPTIMIZERS) await train(b, `resumed-${o}`, o, HALF);
    } finally {
      await b.close();
    }
    const c = new TrainerClient({ log: () => undefined });
    try {
      for (const o of OPTIMIZERS) resumed.set(o, await train(c, `resumed-${o}`, o, N));
    } finally {
      await c.close();
    }
  });

  for (const o of OPTIMIZERS) {
    test(`${o}: to ${N} in one go == to ${HALF}, new process, on to ${N} (bitwise)`, () => {
      const r = resumed.get(o)!;
      assert.equal(r.resumedFromStep, HALF);
      assert.equal(r.stepsRun, N - HALF);
      assert.deepEqual(checkpointHashes(path.join(root, `resumed-${o}`), N), checkpointHashes(path.join(root, `straight-${o}`), N));
      // The epoch's mean loss is exact across the resume too (its running sum is in the checkpoint).
      assert.equal(r.loss, uninterrupted.get(o)!.loss);
    });
  }
});

describe('exact resume, end to end (dev server, worker processes, SIGKILL)', () => {
  let stack: Stack;
  const root = tempDir('dt-exact-e2e-');
  const rootUri = pathToFileURL(root).href;
  const workers: WorkerProcess[] = [];
  let baseline: { model: Record<string, string>; last: Record<string, unknown>; result: TrainModelResult };

  const STEPS_PER_EPOCH = 30;
  const EPOCHS = 3;
  const LAST = STEPS_PER_EPOCH * EPOCHS;
  const input = (runId: string) => ({
    runId,
    model: { name: 'mlp', params: { hiddenUnits: [32], dropout: 0.2 } },
    data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 200 } },
    hyperparameters: { optimizer: 'adam', learningRate: 0.003, batchSize: 32 },
    stepsPerEpoch: STEPS_PER_EPOCH,
    maxEpochs: EPOCHS,
    seed: 5,
    checkpoint: { everySteps: 10, everySeconds: 0, keepLast: 20 },
    timeouts: { heartbeatSeconds: 3 },
  });

  const worker = (taskQueue: string, extra: Record<string, string> = {}): WorkerProcess => {
    const w = startWorkerProcess({ TEMPORAL_ADDRESS: stack.address, DT_TASK_QUEUE: taskQueue, DT_CHECKPOINT_URI: rootUri, ...extra });
    workers.push(w);
    return w;
  };

  const modelHashes = (result: TrainModelResult): Record<string, string> => {
    const modelJson = fileURLToPath(result.modelUri);
    return { 'weights.bin': sha(path.join(path.dirname(modelJson), 'weights.bin')) };
  };

  before(async () => {
    stack = await startStack();
    const runId = uniqueId('straight');
    const taskQueue = uniqueId('tq');
    const w = worker(taskQueue);
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId)] });
    const result = (await handle.result()) as TrainModelResult;
    await w.stop();
    assert.equal(result.step, LAST);
    assert.equal(result.modelStep, LAST);
    baseline = { model: modelHashes(result), last: checkpointHashes(path.join(root, runId), LAST), result };
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await stack?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  /**
   * Starts the run on a worker process with `faultEnv`, waits for `ready` (the moment), SIGKILLs
   * the worker's process group, then lets a fresh worker process (no fault env) finish the run.
   */
  async function killAndResume(
    name: string,
    faultEnv: Record<string, string>,
    ready: (runDir: string, w: WorkerProcess) => boolean,
    afterKill: (runDir: string) => void,
  ): Promise<TrainModelResult> {
    const runId = uniqueId(name);
    const runDir = path.join(root, runId);
    const taskQueue = uniqueId('tq');
    const first = worker(taskQueue, faultEnv);
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId)] });
    await waitFor(async () => ready(runDir, first), 90_000, `the kill moment of ${name}`);
    // The activity is running on the first worker right now.
    const description = await handle.describe();
    const pending = description.raw.pendingActivities ?? [];
    assert.equal(pending.length, 1);
    assert.equal(pending[0]!.activityType?.name, 'trainEpoch');
    await first.kill();
    afterKill(runDir);
    const second = worker(taskQueue);
    const result = (await handle.result()) as TrainModelResult;
    await second.stop();
    // The first attempt really died: the activity was retried.
    const history = await handle.fetchHistory();
    const attempts = (history.events ?? [])
      .filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
    assert.ok(attempts.some((a) => a > 1), `some activity should have been retried, attempts: ${attempts.join(',')}`);
    assert.equal(result.step, LAST);
    assert.deepEqual(checkpointHashes(runDir, LAST), baseline.last, 'last checkpoint (weights, optimizer, state)');
    assert.deepEqual(modelHashes(result), baseline.model, 'final model weights.bin');
    assert.deepEqual(
      result.history.map((h) => h.metrics),
      baseline.result.history.map((h) => h.metrics),
      'every epoch metric',
    );
    return result;
  }

  test('(a) killed mid-epoch, between two checkpoints: resumes from the earlier one, bitwise equal', async () => {
    // The trainer holds before step 45 (checkpoints at 40 and 50): the kill lands between them.
    await killAndResume(
      'mid-epoch',
      { DT_FAULT_PAUSE_BEFORE_STEP: '45' },
      (runDir, w) => w.output().includes('fault injection: paused before step 45') && hasManifest(runDir, 40),
      (runDir) => {
        assert.ok(hasManifest(runDir, 40));
        assert.ok(!fs.existsSync(checkpointDir(runDir, 50)), 'no checkpoint 50 before the kill');
      },
    );
  });

  test('(b) killed right at the start of an epoch activity: bitwise equal', async () => {
    // Epoch 3's activity has started (epoch 2 was trained and evaluated) and holds before its first step.
    await killAndResume(
      'epoch-start',
      { DT_FAULT_PAUSE_BEFORE_STEP: String(2 * STEPS_PER_EPOCH + 1) },
      (runDir, w) => w.output().includes(`fault injection: paused before step ${2 * STEPS_PER_EPOCH + 1}`) && hasManifest(runDir, 60),
      (runDir) => {
        assert.ok(fs.existsSync(path.join(runDir, epochRecordKey(2))), 'epoch 2 was evaluated');
        assert.ok(!fs.existsSync(checkpointDir(runDir, 70)));
      },
    );
  });

  test('(c) killed during a checkpoint write (weights.bin written, no manifest): bitwise equal', async () => {
    await killAndResume(
      'mid-checkpoint',
      { DT_FAULT_KILL_DURING_CHECKPOINT: '50' },
      // The trainer kills its own process group (worker included); the test waits for that.
      (_runDir, w) => w.child.exitCode !== null || w.child.signalCode !== null,
      (runDir) => {
        assert.ok(fs.existsSync(path.join(checkpointDir(runDir, 50), 'weights.bin')), 'weights.bin of 50 was written');
        assert.ok(!fs.existsSync(path.join(checkpointDir(runDir, 50), 'optimizer.bin')), 'the write stopped after weights.bin');
        assert.ok(!hasManifest(runDir, 50), 'the torn checkpoint 50 has no manifest');
      },
    );
  });
});
