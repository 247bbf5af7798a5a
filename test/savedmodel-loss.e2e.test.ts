/**
 * A run that would learn nothing does not complete: an export's loss is checked against the data's
 * targets before the first step (a regression CSV on a cross-entropy export fails non-retryably,
 * naming both), and the exporter's regression metrics (mae, mse, rmse) come out right.
 * Fixtures: test/fixtures/savedmodel/regression-* (regenerate.sh), a 4-8-1 linear-output model.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TrainModelResult } from '../src/workflows';
import { checkLossFitsTargets } from '../src/training/savedmodel/signatures';
import { tempDir, uniqueId, useStackAndWorker } from './helpers/temporal';

const fixture = (name: string) => pathToFileURL(path.resolve(__dirname, 'fixtures/savedmodel', name)).href;

/** 400 rows of 4 features and y = a linear function of them plus noise (seeded). */
function regressionCsv(dir: string): string {
  let s = 11;
  const r = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const rows = ['a,b,c,d,y'];
  for (let i = 0; i < 400; i++) {
    const [a, b, c, d] = [r(), r(), r(), r()];
    rows.push([a, b, c, d, 2 * a - b + 0.5 * c + 3 + 0.1 * r()].map((v) => v.toFixed(5)).join(','));
  }
  const file = path.join(dir, 'linear.csv');
  fs.writeFileSync(file, rows.join('\n') + '\n');
  return pathToFileURL(file).href;
}

function input(model: string, csv: string, dir: string): Record<string, unknown> {
  const params = { uri: csv, label: 'y', task: 'regression' };
  return {
    model: { kind: 'savedmodel', uri: fixture(model) },
    data: { train: { name: 'csv', split: 'train', params }, eval: { name: 'csv', split: 'test', params } },
    hyperparameters: { learningRate: 0.01, batchSize: 32 },
    stepsPerEpoch: 10,
    maxEpochs: 3,
    seed: 1,
    checkpoint: { uri: pathToFileURL(path.join(dir, 'runs')).href },
    timeouts: { heartbeatSeconds: 10 },
  };
}

test('the loss check, as a pure function: both directions, and the degenerate one-column softmax', () => {
  const at = 'file:///m';
  assert.throws(() => checkLossFitsTargets('categorical_crossentropy', { xShape: [4], yShape: [1], task: 'regression' }, 'data.train', at), /classification loss `categorical_crossentropy`, but data\.train is a regression task \(params\.task `regression`\)/);
  assert.throws(() => checkLossFitsTargets('categorical_crossentropy', { xShape: [4], yShape: [1] }, 'data.train', at), /needs one-hot targets over 2 or more classes, but data\.train has targets of shape \[1\]/);
  assert.throws(() => checkLossFitsTargets('mean_squared_error', { xShape: [4], yShape: [3], task: 'classification' }, 'data.eval', at), /regression loss `mean_squared_error`, but data\.eval is a classification task/);
  checkLossFitsTargets('categorical_crossentropy', { xShape: [784], yShape: [10] }, 'data.train', at);
  checkLossFitsTargets('sparse_categorical_crossentropy', { xShape: [4], yShape: [1], task: 'classification' }, 'data.train', at);
  checkLossFitsTargets('mean_squared_error', { xShape: [4], yShape: [1], task: 'regression' }, 'data.train', at);
  checkLossFitsTargets('binary_crossentropy', { xShape: [4], yShape: [1] }, 'data.train', at);
});

describe('export loss against the data, on a real worker', { timeout: 240_000 }, () => {
  const sw = useStackAndWorker();
  const dir = tempDir('dt-sm-loss-');
  const csv = regressionCsv(dir);

  test('a regression CSV on a cross-entropy export fails at once, non-retryably, naming the loss and the task', async () => {
    const started = Date.now();
    const handle = await sw.stack.client.workflow.start('trainModel', { taskQueue: sw.worker.taskQueue, workflowId: uniqueId('sm-xent'), args: [input('regression-crossentropy', csv, dir)] });
    const err = await handle.result().then(() => assert.fail('the run should fail'), (e: unknown) => e);
    const seconds = (Date.now() - started) / 1000;
    assert.ok(err instanceof WorkflowFailedError, String(err));
    let cause: unknown = err.cause;
    while (cause instanceof Error && !(cause instanceof ApplicationFailure) && cause.cause) cause = cause.cause;
    assert.ok(cause instanceof ApplicationFailure, String(cause));
    assert.equal(cause.nonRetryable, true, cause.message);
    assert.match(cause.message, /classification loss `categorical_crossentropy`, but data\.train is a regression task/);
    assert.ok(seconds < 30, `failed after ${seconds.toFixed(1)} s`);
    const history = await handle.fetchHistory();
    const attempts = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
    assert.ok(attempts.every((a) => a === 1), `no attempt was retried: ${attempts.join(',')}`);
  });

  test('a mean-squared-error export trains on it and reports mae, mse and rmse = sqrt(mse)', async () => {
    const result = (await sw.stack.client.workflow.execute('trainModel', { taskQueue: sw.worker.taskQueue, workflowId: uniqueId('sm-mse'), args: [input('regression-mse', csv, dir)] })) as TrainModelResult;
    assert.equal(result.status, 'completed');
    const m = result.history.at(-1)!.metrics;
    for (const k of ['val_loss', 'val_mae', 'val_mse', 'val_rmse']) assert.ok(Number.isFinite(m[k]), `${k} = ${m[k]}`);
    assert.ok(Math.abs(m.val_rmse! - Math.sqrt(m.val_mse!)) < 1e-6, `rmse ${m.val_rmse} vs sqrt(mse) ${Math.sqrt(m.val_mse!)}`);
    assert.ok(Math.abs(m.val_mse! - m.val_loss!) < 1e-4 * Math.max(1, m.val_loss!), `mse ${m.val_mse} is the loss ${m.val_loss}`);
    assert.ok(result.history.at(-1)!.metrics.val_loss! < result.history[0]!.metrics.val_loss!, 'it learned');
  });
});
