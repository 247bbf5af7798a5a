/**
 * Issue #14: a run killed twice mid-epoch and resumed writes every epoch exactly once to
 * metrics.jsonl, to TensorBoard (read back with TensorBoard's own reader) and to a real MLflow
 * server (one MLflow run, one value per step), and its learning curve marks the resumes.
 * An MLflow server that is down delays nothing but the end of the run.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { MlflowClient } from '../src/observability/mlflow';
import type { TrainModelResult } from '../src/workflows';
import { startMlflowServer, type MlflowServer } from './helpers/mlflow-server';
import { readTensorBoard } from './helpers/python-tools';
import { startStack, startWorkerProcess, tempDir, uniqueId, waitFor, type Stack, type WorkerProcess } from './helpers/temporal';

const EPOCHS = 4;
const STEPS = 30;

describe('observability: TensorBoard, MLflow and the learning curve after two SIGKILLs', () => {
  let stack: Stack;
  let mlflow: MlflowServer;
  const root = tempDir('dt-observe-');
  const workers: WorkerProcess[] = [];
  const input = (runId: string, experiment: string) => ({
    runId,
    model: { name: 'mlp', params: { hiddenUnits: [32] } },
    data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 300 } },
    hyperparameters: { optimizer: 'adam', learningRate: 0.003, batchSize: 32 },
    stepsPerEpoch: STEPS,
    maxEpochs: EPOCHS,
    seed: 3,
    checkpoint: { everySteps: 10, everySeconds: 0 },
    timeouts: { heartbeatSeconds: 3 },
    tracking: { mlflow: { experiment } },
  });
  const worker = (taskQueue: string, env: Record<string, string> = {}): WorkerProcess => {
    const w = startWorkerProcess({ TEMPORAL_ADDRESS: stack.address, DT_TASK_QUEUE: taskQueue, DT_CHECKPOINT_URI: pathToFileURL(root).href, MLFLOW_TRACKING_URI: mlflow.uri, ...env });
    workers.push(w);
    return w;
  };

  before(async () => {
    [stack, mlflow] = await Promise.all([startStack(), startMlflowServer()]);
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await stack?.close();
    await mlflow?.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('every epoch once everywhere, however often it was resumed', async () => {
    const runId = uniqueId('observed');
    const taskQueue = uniqueId('tq');
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId, 'observe-e2e')] });
    // Killed inside epoch 2 and inside epoch 4: two resumes, each from a mid-epoch checkpoint.
    for (const step of [45, 105]) {
      const w = worker(taskQueue, { DT_FAULT_PAUSE_BEFORE_STEP: String(step) });
      await waitFor(async () => w.output().includes(`paused before step ${step}`), 120_000, `the trainer to reach step ${step}`);
      await w.kill();
    }
    const last = worker(taskQueue);
    const result = (await handle.result()) as TrainModelResult;
    await last.stop();
    assert.equal(result.epochs, EPOCHS);

    const runDir = fileURLToPath(result.runUri);
    const records = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(records.map((r) => r.epoch), [1, 2, 3, 4], 'metrics.jsonl: each epoch once');
    assert.deepEqual(records.map((r) => (r.trainAttempt ?? 1) > 1), [false, true, false, true], 'epochs 2 and 4 were resumed');

    const tb = readTensorBoard(path.join(runDir, 'tensorboard'));
    const series = (run: string, tag: string) => tb[run]![tag]!.map(([step, value]) => [step, value]);
    const f32 = (key: string) => records.map((r) => [r.epoch, Math.fround(r.metrics[key])]);
    assert.deepEqual(series('train', 'epoch_loss'), f32('loss'));
    assert.deepEqual(series('validation', 'epoch_loss'), f32('val_loss'));
    assert.deepEqual(series('validation', 'epoch_accuracy'), f32('val_accuracy'));
    assert.deepEqual(series('train', 'epoch_learning_rate'), records.map((r) => [r.epoch, Math.fround(r.learningRate)]));
    assert.equal(tb._files, 2 * EPOCHS, 'two event files per epoch, none written twice');

    const client = new MlflowClient(mlflow.uri);
    const experimentId = await client.experimentId('observe-e2e');
    const runs = await fetch(`${mlflow.uri}/api/2.0/mlflow/runs/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ experiment_ids: [experimentId] }),
    }).then((r) => r.json() as Promise<{ runs: Array<{ info: { run_id: string; status: string } }> }>);
    assert.equal(runs.runs.length, 1, 'one MLflow run for the run, across two kills');
    const mlflowRun = runs.runs[0]!.info;
    assert.equal(mlflowRun.status, 'FINISHED');
    for (const key of ['loss', 'val_loss', 'val_accuracy', 'learning_rate']) {
      const history = await fetch(`${mlflow.uri}/api/2.0/mlflow/metrics/get-history?run_id=${mlflowRun.run_id}&metric_key=${key}`).then(
        (r) => r.json() as Promise<{ metrics: Array<{ step: string | number; value: number }> }>,
      );
      const points = history.metrics.map((m) => [Number(m.step), m.value]).sort((a, b) => a[0]! - b[0]!);
      const expected = records.map((r) => [r.epoch, key === 'learning_rate' ? r.learningRate : r.metrics[key]]);
      assert.deepEqual(points, expected, `MLflow ${key}: one value per step`);
    }

    const svg = fs.readFileSync(path.join(runDir, 'learning-curve.svg'), 'utf8');
    for (const marker of ['>resumed<', '>best<', '>epoch<', '>val_loss<']) assert.ok(svg.includes(marker), `learning curve shows ${marker}`);
    const png = fs.readFileSync(path.join(runDir, 'learning-curve.png'));
    assert.equal(png.subarray(1, 4).toString('ascii'), 'PNG');
    if (process.env.DT_CURVE_PNG) fs.copyFileSync(path.join(runDir, 'learning-curve.png'), process.env.DT_CURVE_PNG);
  });

  test('a search is one MLflow run with each trial nested under it', async () => {
    const taskQueue = uniqueId('tq');
    const w = worker(taskQueue);
    const handle = await stack.client.workflow.start('hyperparameterSearch', {
      taskQueue,
      workflowId: uniqueId('observed-search'),
      args: [{
        base: {
          model: { name: 'mlp', params: { hiddenUnits: [8] } },
          data: { train: { name: 'synthetic', params: { size: 256 } }, eval: { name: 'synthetic', split: 'test', params: { size: 64 } } },
          stepsPerEpoch: 5,
          maxEpochs: 2,
          tracking: { mlflow: { experiment: 'observe-search' } },
        },
        space: { 'hyperparameters.learningRate': [0.01, 0.001] },
        strategy: 'grid',
        maxParallel: 2,
      }],
    });
    const result = (await handle.result()) as { trials: Array<{ runUri: string }>; searchUri: string };
    await w.stop();
    const client = new MlflowClient(mlflow.uri);
    const experimentId = await client.experimentId('observe-search');
    const runs = await fetch(`${mlflow.uri}/api/2.0/mlflow/runs/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ experiment_ids: [experimentId] }),
    }).then((r) => r.json() as Promise<{ runs: Array<{ info: { run_id: string; status: string }; data: { tags: Array<{ key: string; value: string }> } }> }>);
    const tag = (r: (typeof runs.runs)[number], key: string) => r.data.tags.find((t) => t.key === key)?.value;
    const parent = runs.runs.filter((r) => tag(r, 'durable_train.run_uri') === result.searchUri);
    assert.equal(parent.length, 1, 'one MLflow run for the search');
    const children = runs.runs.filter((r) => tag(r, 'mlflow.parentRunId') === parent[0]!.info.run_id);
    assert.deepEqual(children.map((r) => tag(r, 'durable_train.run_uri')).sort(), result.trials.map((t) => t.runUri).sort(), 'every trial nested under it');
    assert.equal(runs.runs.length, 1 + result.trials.length);
    assert.ok(runs.runs.every((r) => r.info.status === 'FINISHED'));
  });

  test('an MLflow server that is down delays no epoch; the run completes and its metrics are in its folder', async () => {
    const runId = uniqueId('mlflow-down');
    const taskQueue = uniqueId('tq');
    const w = worker(taskQueue, { MLFLOW_TRACKING_URI: 'http://127.0.0.1:9' });
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId, 'down')] });
    const result = (await handle.result()) as TrainModelResult;
    await w.stop();
    assert.equal(result.epochs, EPOCHS);
    const history = await handle.fetchHistory();
    const scheduled = (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    // Training went on while tracking kept failing: every epoch trained after tracking was first tried.
    assert.equal(scheduled.filter((n) => n === 'trainEpoch').length, EPOCHS);
    assert.ok(scheduled.includes('startTracking'));
    assert.ok(fs.existsSync(path.join(fileURLToPath(result.runUri), 'metrics.jsonl')));
  });
});
