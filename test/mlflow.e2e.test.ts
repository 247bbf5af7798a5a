import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MlflowClient, type MlflowError, type MlflowMetric } from '../src/observability/mlflow';
import { startMlflowServer, type MlflowServer } from './helpers/mlflow-server';

let server: MlflowServer;
before(async () => {
  server = await startMlflowServer();
});
after(async () => server?.stop());

const epoch = (step: number): MlflowMetric[] => [
  { key: 'loss', value: 1 / step, step, timestamp: 1_800_000_000_000 + step },
  { key: 'val_loss', value: 1.1 / step, step, timestamp: 1_800_000_000_000 + step },
];

test('one MLflow run per run key, params once, one value per step however often the epochs are sent again', async () => {
  const mlflow = new MlflowClient(server.uri);
  const experimentId = await mlflow.experimentId('durable-train-test');
  assert.equal(await mlflow.experimentId('durable-train-test'), experimentId, 'the experiment is found again, not created twice');
  const start = { experimentId, runKey: 'file:///runs/mnist-1', runName: 'mnist-1', startTime: 1_800_000_000_000, params: { 'hyperparameters.learningRate': '0.001' } };
  const first = await mlflow.ensureRun(start);
  assert.equal(first.created, true);
  // A retried activity, a restarted worker, continue-as-new: the same key finds the same run.
  const again = await mlflow.ensureRun({ ...start, params: { 'hyperparameters.learningRate': '0.5' } });
  assert.deepEqual(again, { runId: first.runId, created: false });
  assert.equal(await mlflow.logMissing(first.runId, [1, 2, 3].flatMap(epoch)), 6);
  // Killed mid-epoch 4 and resumed: epochs 1..5 are sent again; only 4 and 5 are new.
  assert.equal(await mlflow.logMissing(first.runId, [1, 2, 3, 4, 5].flatMap(epoch)), 4);
  assert.equal(await mlflow.logMissing(first.runId, [1, 2, 3, 4, 5].flatMap(epoch)), 0);
  assert.deepEqual([...(await mlflow.loggedSteps(first.runId, 'val_loss'))].sort((a, b) => a - b), [1, 2, 3, 4, 5]);
  const child = await mlflow.ensureRun({ ...start, runKey: 'file:///runs/search/trial-1', runName: 'trial-1', parentRunId: first.runId });
  assert.notEqual(child.runId, first.runId);
  await mlflow.setStatus(first.runId, 'FINISHED', 1_800_000_100_000);
  const run = await mlflow.getRun(first.runId);
  assert.equal(run.status, 'FINISHED');
  assert.deepEqual(run.params, { 'hyperparameters.learningRate': '0.001' }, 'params are logged once, by the creating call');
  assert.equal((await mlflow.getRun(child.runId)).tags['mlflow.parentRunId'], first.runId);
});

test("an input's parentRunId must name a durable-train run of the same experiment", async () => {
  const mlflow = new MlflowClient(server.uri);
  const mine = await mlflow.experimentId('durable-train-parents');
  const other = await mlflow.experimentId('someone-elses');
  const start = { experimentId: mine, runName: 'child', startTime: 1_800_000_000_000, params: {} };
  const ours = await mlflow.ensureRun({ ...start, runKey: 'file:///runs/search-p' });
  const theirs = await mlflow.ensureRun({ experimentId: other, runKey: 'file:///runs/theirs', runName: 'theirs', startTime: 1_800_000_000_000, params: {} });
  const refused = (err: MlflowError) => !err.retryable && /Expected `tracking\.mlflow\.parentRunId` to be a durable-train run of experiment/.test(err.message);
  await assert.rejects(mlflow.ensureRun({ ...start, runKey: 'file:///runs/c1', parentRunId: theirs.runId }), refused, 'a run of another experiment');
  await assert.rejects(mlflow.ensureRun({ ...start, runKey: 'file:///runs/c2', parentRunId: 'f'.repeat(32) }), refused, 'a run that does not exist');
  const child = await mlflow.ensureRun({ ...start, runKey: 'file:///runs/c3', parentRunId: ours.runId });
  assert.equal((await mlflow.getRun(child.runId)).tags['mlflow.parentRunId'], ours.runId);
});

test('a server that is down is a retryable error; a bad URI is not', async () => {
  const down = new MlflowClient('http://127.0.0.1:9', { timeoutMs: 2000 });
  await assert.rejects(down.experimentId('x'), (err: MlflowError) => err.retryable === true);
  assert.throws(() => new MlflowClient('http://user:secret@127.0.0.1:5000'), (err: MlflowError) => !err.retryable && !err.message.includes('secret'));
  assert.throws(() => new MlflowClient('file:///etc/passwd'), /http\(s\)/);
});
