/**
 * A worker built the README's way, `plugins: [new DurableTrainPlugin()]` and nothing else: no call
 * to `plugin.trainer.shutdown()` or `plugin.close()`. `worker.shutdown()` in the middle of a
 * training epoch must stop training at its next step and fail the attempt retryably as
 * WorkerShuttingDown (so the run continues on another worker at once), and when `worker.run()`
 * returns, the worker's trainer process must have exited (nothing left to keep Node alive). A
 * second such worker then finishes the run.
 *
 *   node --import tsx --test test/plugin-lifecycle.e2e.test.ts
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NativeConnection, Worker } from '@temporalio/worker';
import { DurableTrainPlugin } from '../src/plugin';
import type { TrainModelResult } from '../src/workflows';
import { tinyInput } from './e2e-support';
import { startStack, tempCheckpointRoot, uniqueId, waitFor, workflowBundle, type Stack } from './helpers/temporal';

const STEPS_PER_EPOCH = 300;
const EPOCHS = 2;

let stack: Stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.close();
});

/** Workers a test started: any still running when it fails are shut down before its connection closes. */
const started: Array<{ worker: Worker; running: Promise<void> }> = [];
async function stopAll(): Promise<void> {
  for (const w of started.splice(0)) {
    if (w.worker.getState() === 'RUNNING') w.worker.shutdown();
    await w.running.catch(() => undefined);
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('worker.shutdown() mid-epoch: training stops and hands the run over, and the trainer exits with worker.run()', async (t) => {
  const taskQueue = uniqueId('tq-plugin');
  const checkpointRoot = tempCheckpointRoot();
  const connection = await NativeConnection.connect({ address: stack.address });
  const bundle = await workflowBundle();
  const newWorker = async () => {
    // 10 ms before every step: an epoch lasts 3 s or more, so the shutdown lands inside one.
    const plugin = new DurableTrainPlugin({ trainer: { env: { ...process.env, DT_FAULT_STEP_DELAY_MS: '10' }, log: () => undefined }, checkpointRoot });
    const worker = await Worker.create({ connection, taskQueue, workflowBundle: bundle, plugins: [plugin], maxConcurrentActivityTaskExecutions: 2 });
    started.push({ worker, running: worker.run() });
    return { plugin, ...started.at(-1)! };
  };
  try {
    const first = await newWorker();
    const input = tinyInput({ stepsPerEpoch: STEPS_PER_EPOCH, maxEpochs: EPOCHS, checkpoint: { everySteps: 0, everySeconds: 0, keepLast: 1000 }, timeouts: { heartbeatSeconds: 30 } });
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: uniqueId('plugin-lifecycle'), args: [input] });
    await waitFor(
      async () => (await handle.describe()).raw.pendingActivities?.some((a) => a.activityType?.name === 'trainEpoch' && a.heartbeatDetails) || undefined,
      60_000,
      'the epoch activity to report training progress',
    );
    const pid = first.plugin.trainer.pids.find((p) => p !== undefined);
    assert.ok(pid !== undefined, 'the trainer process is running');

    const from = Date.now();
    first.worker.shutdown();
    await first.running;
    const ms = Date.now() - from;
    t.diagnostic(`worker.run() returned ${ms} ms after worker.shutdown(); trainer pid ${pid} alive: ${alive(pid)}`);
    assert.equal(first.worker.getState(), 'STOPPED');
    assert.ok(!alive(pid), `the trainer process (pid ${pid}) exited with worker.run(), without plugin.close()`);
    assert.ok(ms < 20_000, `the epoch was stopped, not trained to its end (${ms} ms)`);

    const pending = (await handle.describe()).raw.pendingActivities ?? [];
    const training = pending.find((a) => a.activityType?.name === 'trainEpoch');
    assert.ok(training, `the epoch's activity is pending a retry (${JSON.stringify(pending.map((a) => a.activityType?.name))})`);
    assert.equal(training.lastFailure?.applicationFailureInfo?.type, 'WorkerShuttingDown', training.lastFailure?.message ?? 'no failure');
    assert.equal(training.lastFailure?.applicationFailureInfo?.nonRetryable ?? false, false, 'retryable');

    const second = await newWorker();
    const result = (await handle.result()) as TrainModelResult;
    second.worker.shutdown();
    await second.running;
    assert.equal(result.epochs, EPOCHS);
    assert.equal(result.step, STEPS_PER_EPOCH * EPOCHS);
    for (const p of second.plugin.trainer.pids) assert.ok(p === undefined || !alive(p), `second worker's trainer ${p} exited`);
  } finally {
    await stopAll();
    await connection.close();
  }
});

test('one plugin on two workers: one stopping leaves the other training; after both, a new worker starts a new trainer', async () => {
  const connection = await NativeConnection.connect({ address: stack.address });
  const bundle = await workflowBundle();
  const plugin = new DurableTrainPlugin({ trainer: { log: () => undefined }, checkpointRoot: tempCheckpointRoot() });
  const start = async (taskQueue: string) => {
    const worker = await Worker.create({ connection, taskQueue, workflowBundle: bundle, plugins: [plugin], maxConcurrentActivityTaskExecutions: 2 });
    started.push({ worker, running: worker.run() });
    return started.at(-1)!;
  };
  const train = async (taskQueue: string): Promise<TrainModelResult> =>
    (await stack.client.workflow.start('trainModel', { taskQueue, workflowId: uniqueId('shared-plugin'), args: [tinyInput({ stepsPerEpoch: 5, maxEpochs: 2 })] })).result() as Promise<TrainModelResult>;
  try {
    const [qa, qb] = [uniqueId('tq-a'), uniqueId('tq-b')];
    const [a, b] = await Promise.all([start(qa), start(qb)]);
    assert.equal((await train(qa)).epochs, 2);
    const pid = plugin.trainer.pids[0];
    assert.ok(pid !== undefined && alive(pid));
    a.worker.shutdown();
    await a.running;
    assert.ok(alive(pid), 'the shared trainer outlives the first worker');
    assert.equal((await train(qb)).epochs, 2, 'the other worker still trains');
    assert.equal(plugin.trainer.pids[0], pid, 'on the same trainer');
    b.worker.shutdown();
    await b.running;
    await waitFor(async () => !alive(pid) || undefined, 10_000, `trainer ${pid} to exit with the last worker`);

    const c = await start(qa);
    assert.equal((await train(qa)).epochs, 2, 'a worker run after that trains');
    const next = plugin.trainer.pids[0];
    assert.ok(next !== undefined && next !== pid, 'on a new trainer process');
    c.worker.shutdown();
    await c.running;
    assert.ok(!alive(next));
  } finally {
    await stopAll();
    await connection.close();
  }
});

test('a rolling restart on one plugin: the worker started during the old one\'s drain trains once the drain is over', async (t) => {
  const connection = await NativeConnection.connect({ address: stack.address });
  const bundle = await workflowBundle();
  const plugin = new DurableTrainPlugin({ trainer: { env: { ...process.env, DT_FAULT_STEP_DELAY_MS: '10' }, log: () => undefined }, checkpointRoot: tempCheckpointRoot() });
  const create = (taskQueue: string) => Worker.create({ connection, taskQueue, workflowBundle: bundle, plugins: [plugin], maxConcurrentActivityTaskExecutions: 2 });
  const [qa, qb] = [uniqueId('tq-old'), uniqueId('tq-new')];
  let b: Worker | undefined;
  try {
    const a = await create(qa);
    started.push({ worker: a, running: a.run() });
    const long = await stack.client.workflow.start('trainModel', {
      taskQueue: qa,
      workflowId: uniqueId('rolling-old'),
      args: [tinyInput({ stepsPerEpoch: STEPS_PER_EPOCH, maxEpochs: 1, checkpoint: { everySteps: 0, everySeconds: 0, keepLast: 1000 }, timeouts: { heartbeatSeconds: 30 } })],
    });
    await waitFor(
      async () => (await long.describe()).raw.pendingActivities?.some((p) => p.activityType?.name === 'trainEpoch' && p.heartbeatDetails) || undefined,
      60_000,
      'the old worker to train',
    );
    b = await create(qb);
    // The old worker's drain, started as src/worker.ts starts it on SIGTERM (the plugin's own
    // watch may not see a worker that stops within its 100 ms poll), and the new worker started inside it.
    const drained = plugin.trainer.shutdown('the old worker is stopping');
    assert.ok(plugin.trainer.shutdownReason, 'draining');
    started.push({ worker: b, running: b.run() });
    await drained;
    a.shutdown();
    await started[started.length - 2]!.running;
    const handle = await stack.client.workflow.start('trainModel', { taskQueue: qb, workflowId: uniqueId('rolling-new'), args: [tinyInput({ stepsPerEpoch: 5, maxEpochs: 2 })] });
    const result = (await Promise.race([
      handle.result(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the new worker did not finish a 2-epoch run in 90 s (its trainers still drained?)')), 90_000).unref()),
    ])) as TrainModelResult;
    t.diagnostic(`the new worker's run: ${result.status} after ${result.epochs} epochs`);
    assert.equal(result.status, 'completed');
    assert.equal(plugin.trainer.shutdownReason, undefined, 'no drain left behind');
    await long.terminate('test over');
  } finally {
    if (b?.getState() === 'INITIALIZED') started.push({ worker: b, running: b.run() });
    await stopAll();
    await connection.close();
  }
});
