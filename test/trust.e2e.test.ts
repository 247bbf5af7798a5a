/**
 * The trust boundary on a real dev server and worker: every URI field of trainModel, retrainModel
 * and hyperparameterSearch inputs that points outside the worker's allow-list fails the workflow
 * with InvalidConfig (non-retryable, naming the field, the URI and the allowed prefixes) before any
 * activity task or child workflow; and the trainer's and activities' own store guard refuses the
 * same URIs when the workflow check is bypassed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { TrainerError } from '../src/training/trainer-client';
import { parseTrainConfig } from '../src/config/train-config';
import { historyEventTypes, mnistInput, startStack, startWorker, tempDir, uniqueId, type InProcessWorker, type Stack } from './helpers/temporal';

const csv = (uri: string) => ({ name: 'csv', params: { uri, label: 'zz' } });

describe('the allow-list at workflow start', { timeout: 180_000 }, () => {
  let stack: Stack;
  let worker: InProcessWorker;
  const dir = tempDir('dt-trust-e2e-');
  fs.symlinkSync('/etc', path.join(dir, 'etc-link'));
  fs.symlinkSync('/proc/self/environ', path.join(dir, 'environ.csv'));

  before(async () => {
    stack = await startStack();
    worker = await startWorker(stack.address);
  });
  after(async () => {
    await worker?.stop();
    await stack?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function refused(type: string, input: Record<string, unknown>, patterns: RegExp[]): Promise<{ id: string; seconds: number }> {
    const id = uniqueId('refused');
    const started = Date.now();
    const handle = await stack.client.workflow.start(type, { taskQueue: worker.taskQueue, workflowId: id, args: [input] });
    const err = await handle.result().then(
      () => assert.fail(`${type} should have failed`),
      (e: unknown) => e,
    );
    const seconds = (Date.now() - started) / 1000;
    assert.ok(err instanceof WorkflowFailedError, String(err));
    const cause = err.cause;
    assert.ok(cause instanceof ApplicationFailure, String(cause));
    assert.equal(cause.type, 'InvalidConfig');
    assert.equal(cause.nonRetryable, true);
    for (const p of patterns) assert.match(cause.message, p);
    // Refused by the worker's allow-list, or earlier by the input parser's URI syntax check.
    assert.match(cause.message, /allowed prefixes \(file:\/\/\/|normalised file:\/\/\/ or gs:\/\/ URI|`file:\/\/\/absolute\/path` or `gs:\/\/bucket\/prefix` URI:/);
    const events = await historyEventTypes(handle);
    assert.ok(!events.includes('EVENT_TYPE_ACTIVITY_TASK_SCHEDULED'), `no activity task: ${events.join(' ')}`);
    assert.ok(!events.includes('EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED'), 'no child workflow');
    assert.ok(seconds < 10, `failed after ${seconds.toFixed(1)} s`);
    return { id, seconds };
  }

  test('checkpoint.uri = file:///../../etc never writes under /etc', async () => {
    const { id } = await refused('trainModel', mnistInput({ checkpoint: { uri: 'file:///../../etc' } }), [/`checkpoint\.uri`/, /`\.\.` segment/, /file:\/\/\/\.\.\/\.\.\/etc/]);
    assert.equal(fs.existsSync(path.join('/etc', id)), false);
  });

  test('a csv at file:///proc/self/environ is refused', async () => {
    await refused('trainModel', mnistInput({ data: { train: csv('file:///proc/self/environ'), eval: { name: 'mnist', split: 'test' } } }), [
      /`data\.train\.params\.uri`/,
      /file:\/\/\/proc\/self\/environ/,
    ]);
  });

  test('a symlink in an allowed folder that leads outside is refused, for data and for checkpoints', async () => {
    await refused('trainModel', mnistInput({ data: { train: { name: 'mnist', split: 'train' }, eval: csv(`${pathToFileURL(dir).href}/environ.csv`) } }), [
      /`data\.eval\.params\.uri`/,
      /which resolves to `file:\/\/\/proc\//,
    ]);
    await refused('trainModel', mnistInput({ checkpoint: { uri: `${pathToFileURL(dir).href}/etc-link` } }), [/`checkpoint\.uri`/, /which resolves to `file:\/\/\/etc\//]);
  });

  test('a query or fragment does not alias the run folder', async () => {
    const root = pathToFileURL(dir).href;
    await refused('trainModel', mnistInput({ checkpoint: { uri: `${root}/r?x` } }), [/`checkpoint\.uri`/, /query/]);
    await refused('trainModel', mnistInput({ checkpoint: { uri: `${root}/r#` } }), [/`checkpoint\.uri`/, /fragment/]);
    await refused('trainModel', mnistInput({ checkpoint: { uri: `${root}/%2Fetc` } }), [/`checkpoint\.uri`/, /percent-escapes|encoded path separator/]);
  });

  test('model.uri, warmStartFrom, and several fields at once', async () => {
    await refused('trainModel', mnistInput({ model: { kind: 'savedmodel', uri: 'file:///usr/lib' } }), [/`model\.uri`/, /file:\/\/\/usr\/lib/]);
    await refused('trainModel', mnistInput({ warmStartFrom: 'file:///etc/ssl', data: { train: csv('file:///etc/hostname'), eval: { name: 'mnist', split: 'test' } } }), [
      /`data\.train\.params\.uri`/,
      /`warmStartFrom`/,
    ]);
  });

  test('retrainModel: championRoot and the training input', async () => {
    await refused('retrainModel', { modelName: uniqueId('m'), train: mnistInput(), championRoot: 'file:///etc/champions' }, [/`championRoot`/]);
    await refused('retrainModel', { modelName: uniqueId('m'), train: mnistInput({ checkpoint: { uri: 'file:///var' } }) }, [/`train\.checkpoint\.uri`/]);
  });

  test('hyperparameterSearch: a trial data URI, named once under the first trial', async () => {
    const base = mnistInput({ data: { train: csv('file:///proc/self/environ'), eval: { name: 'mnist', split: 'test' } } });
    await refused('hyperparameterSearch', { base, space: { 'hyperparameters.learningRate': [0.01, 0.02] } }, [/`trial-1: data\.train\.params\.uri`/]);
    await refused('hyperparameterSearch', { base: mnistInput({ checkpoint: { uri: 'file:///etc' } }), space: { 'hyperparameters.learningRate': [0.01] } }, [/`base\.checkpoint\.uri`/]);
  });

  test('defence in depth: the trainer and the activities refuse outside URIs themselves', async () => {
    const config = parseTrainConfig(mnistInput({ data: { train: csv('file:///proc/self/environ'), eval: { name: 'mnist', split: 'test' } } }));
    const run = `${pathToFileURL(dir).href}/direct`;
    const viaTrainer = (body: Parameters<typeof worker.plugin.trainer.request>[0]) => worker.plugin.trainer.request(body).then(
      () => assert.fail('the trainer should refuse'),
      (e: unknown) => e,
    );
    const data = await viaTrainer({ type: 'train', request: { runUri: run, config, targetStep: 1, learningRate: 0.001 } });
    assert.ok(data instanceof TrainerError && data.nonRetryable && data.name === 'UriRefused', String(data));
    assert.match((data as Error).message, /file:\/\/\/proc\/self\/environ/);
    const ckpt = await viaTrainer({ type: 'evaluate', request: { runUri: 'file:///etc', config, step: 1 } });
    assert.ok(ckpt instanceof TrainerError && ckpt.nonRetryable && ckpt.name === 'UriRefused', String(ckpt));
    await assert.rejects(worker.plugin.activities.readRunRecords({ runUri: 'file:///etc' }), (e: unknown) => e instanceof ApplicationFailure && e.nonRetryable && e.type === 'UriRefused');
    assert.equal(fs.existsSync(path.join(dir, 'direct')), false);
  });
});
