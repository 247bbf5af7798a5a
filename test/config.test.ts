/**
 * Input validation: malformed trainModel inputs each get the right field-level error (field,
 * expected, received) from parseTrainConfig, and a subset sent to the real workflow fails it
 * before any activity task is scheduled.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { parseTrainConfig } from '../src/config/train-config';
import { ConfigError, formatIssue, type ConfigIssue } from '../src/config/validate';
import { startStack, startWorker, uniqueId, type InProcessWorker, type Stack } from './helpers/temporal';
import { tinyInput } from './e2e-support';

const EventType = temporal.api.enums.v1.EventType;

/** A valid input with one field replaced (undefined deletes it); `path` is dotted. */
function withField(path: string, value: unknown): Record<string, unknown> {
  const input = structuredClone(tinyInput()) as Record<string, unknown>;
  const keys = path.split('.');
  let o = input as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) {
    o[k] ??= {};
    o = o[k] as Record<string, unknown>;
  }
  if (value === undefined) delete o[keys[keys.length - 1]!];
  else o[keys[keys.length - 1]!] = value;
  return input;
}

interface BadInput {
  readonly name: string;
  readonly input: unknown;
  readonly issue: ConfigIssue;
  /** Also sent through the real workflow (JSON-serializable and representative). */
  readonly e2e?: boolean;
}

const KNOWN_TOP = 'runId, model, data, hyperparameters, loss, stepsPerEpoch, maxEpochs, seed, checkpoint, earlyStopping, reduceLrOnPlateau, warmStartFrom, resume, tracking, continueAsNewEvery, historyLimit, timeouts';
const ID = "an id of 1 to 128 characters from [A-Za-z0-9._-], not starting with '.'";

const badInputs: BadInput[] = [
  { name: 'input is null', input: null, issue: { field: 'input', expected: 'an object', received: '`null`' } },
  { name: 'input is an array', input: [tinyInput()], issue: { field: 'input', expected: 'an object', received: 'an array of 1' } },
  { name: 'model missing', input: withField('model', undefined), issue: { field: 'model', expected: 'an object', received: 'nothing (undefined)' }, e2e: true },
  {
    name: 'model has both name and topology',
    input: withField('model.topology', { class_name: 'Sequential', config: {} }),
    issue: { field: 'model', expected: 'either `name` (a registered model) or `topology`, not both', received: 'an object with keys [name, params, topology]' },
  },
  { name: 'model.name empty', input: withField('model.name', ''), issue: { field: 'model.name', expected: 'a non-empty string', received: '`""` (string)' } },
  { name: 'data.train missing', input: withField('data.train', undefined), issue: { field: 'data.train', expected: 'an object', received: 'nothing (undefined)' } },
  {
    name: 'data.eval.limit 0',
    input: withField('data.eval.limit', 0),
    issue: { field: 'data.eval.limit', expected: 'a whole number from 1 to 2147483647', received: '`0` (number)' },
  },
  {
    name: 'unknown optimizer',
    input: withField('hyperparameters.optimizer', 'adamw'),
    issue: { field: 'hyperparameters.optimizer', expected: 'one of `adam`, `sgd`, `momentum`, `rmsprop`', received: '`"adamw"` (string)' },
    e2e: true,
  },
  {
    name: 'learning rate 0',
    input: withField('hyperparameters.learningRate', 0),
    issue: { field: 'hyperparameters.learningRate', expected: 'a number greater than 0 and at most 1000', received: '`0` (number)' },
    e2e: true,
  },
  {
    name: 'learning rate as a string',
    input: withField('hyperparameters.learningRate', '0.01'),
    issue: { field: 'hyperparameters.learningRate', expected: 'a number greater than 0 and at most 1000', received: '`"0.01"` (string)' },
  },
  {
    name: 'fractional batch size',
    input: withField('hyperparameters.batchSize', 1.5),
    issue: { field: 'hyperparameters.batchSize', expected: 'a whole number from 1 to 65536', received: '`1.5` (number)' },
  },
  {
    name: 'typo in a hyperparameter name',
    input: withField('hyperparameters.learning_rate', 0.01),
    issue: { field: 'hyperparameters.learning_rate', expected: 'one of the known fields (optimizer, learningRate, batchSize, momentum)', received: 'an unknown field' },
  },
  {
    name: 'unknown loss',
    input: withField('loss', 'mse'),
    issue: { field: 'loss', expected: 'one of `categoricalCrossentropy`, `meanSquaredError`', received: '`"mse"` (string)' },
  },
  {
    name: 'negative stepsPerEpoch',
    input: withField('stepsPerEpoch', -5),
    issue: { field: 'stepsPerEpoch', expected: 'a whole number from 1 to 100000000', received: '`-5` (number)' },
  },
  { name: 'maxEpochs missing', input: withField('maxEpochs', undefined), issue: { field: 'maxEpochs', expected: 'a whole number from 1 to 1000000', received: 'nothing (undefined)' } },
  { name: 'seed 0', input: withField('seed', 0), issue: { field: 'seed', expected: 'a whole number from 1 to 2147483647', received: '`0` (number)' } },
  {
    name: 'checkpoint.uri not file:/// or gs://',
    input: withField('checkpoint.uri', 'http://example.com/runs'),
    issue: { field: 'checkpoint.uri', expected: 'a `file:///absolute/path` or `gs://bucket/prefix` URI', received: '`"http://example.com/runs"` (string)' },
    e2e: true,
  },
  {
    name: 'checkpoint.keepLast 0',
    input: withField('checkpoint.keepLast', 0),
    issue: { field: 'checkpoint.keepLast', expected: 'a whole number from 1 to 10000', received: '`0` (number)' },
  },
  {
    name: 'earlyStopping.patience negative',
    input: withField('earlyStopping', { patience: -1 }),
    issue: { field: 'earlyStopping.patience', expected: 'a whole number from 0 to 1000000', received: '`-1` (number)' },
    e2e: true,
  },
  {
    name: 'earlyStopping.mode unknown',
    input: withField('earlyStopping', { mode: 'down' }),
    issue: { field: 'earlyStopping.mode', expected: 'one of `min`, `max`, `auto`', received: '`"down"` (string)' },
  },
  {
    name: 'earlyStopping.restoreBestWeights not a boolean',
    input: withField('earlyStopping', { restoreBestWeights: 'yes' }),
    issue: { field: 'earlyStopping.restoreBestWeights', expected: 'true or false', received: '`"yes"` (string)' },
  },
  {
    name: 'earlyStopping.minDelta NaN',
    input: withField('earlyStopping', { minDelta: NaN }),
    issue: { field: 'earlyStopping.minDelta', expected: 'a number from 0 and up', received: '`NaN` (number)' },
  },
  {
    name: 'reduceLrOnPlateau.factor above 1',
    input: withField('reduceLrOnPlateau', { factor: 1.5 }),
    issue: { field: 'reduceLrOnPlateau.factor', expected: 'a number greater than 0 and less than 1', received: '`1.5` (number)' },
    e2e: true,
  },
  { name: 'runId climbing out of its prefix', input: withField('runId', '../etc'), issue: { field: 'runId', expected: ID, received: '`"../etc"` (string)' }, e2e: true },
  {
    name: 'unknown top-level field (Keras spelling)',
    input: withField('epochs', 10),
    issue: { field: 'epochs', expected: `one of the known fields (${KNOWN_TOP})`, received: 'an unknown field' },
    e2e: true,
  },
  {
    name: 'warmStartFrom not a URI',
    input: withField('warmStartFrom', 'model.json'),
    issue: { field: 'warmStartFrom', expected: 'a checkpoint URI (`file:///...` or `gs://...`)', received: '`"model.json"` (string)' },
  },
  {
    name: 'historyLimit too large',
    input: withField('historyLimit', 20000),
    issue: { field: 'historyLimit', expected: 'a whole number from 1 to 10000', received: '`20000` (number)' },
  },
  {
    name: 'continueAsNewEvery negative',
    input: withField('continueAsNewEvery', -1),
    issue: { field: 'continueAsNewEvery', expected: 'a whole number from 0 to 1000000', received: '`-1` (number)' },
  },
  {
    name: 'timeouts.heartbeatSeconds 0',
    input: withField('timeouts.heartbeatSeconds', 0),
    issue: { field: 'timeouts.heartbeatSeconds', expected: 'a number from 1 to 3600', received: '`0` (number)' },
  },
];

function parseError(input: unknown): ConfigError {
  try {
    parseTrainConfig(input);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('parseTrainConfig should have rejected the input');
}

describe('parseTrainConfig: field-level errors', () => {
  test('the valid base input parses', () => {
    assert.equal(parseTrainConfig(tinyInput()).maxEpochs, 20);
  });

  assert.ok(badInputs.length >= 20);
  for (const bad of badInputs) {
    test(bad.name, () => {
      const err = parseError(bad.input);
      assert.deepEqual(err.issues, [bad.issue], 'exactly this one issue');
      assert.ok(err.message.includes(formatIssue(bad.issue)), `message names field, expected and received: ${err.message}`);
      assert.ok(err.message.includes(`\`${bad.issue.field}\``));
    });
  }

  test('every bad field of one input is reported at once', () => {
    const input = { ...withField('stepsPerEpoch', 0), loss: 'hinge', hyperparameters: { batchSize: -1 } };
    const err = parseError(input);
    assert.deepEqual(err.issues.map((i) => i.field).sort(), ['hyperparameters.batchSize', 'loss', 'stepsPerEpoch']);
  });
});

describe('trainModel rejects malformed input before scheduling any activity', () => {
  let stack: Stack;
  let worker: InProcessWorker;
  before(async () => {
    stack = await startStack();
    worker = await startWorker(stack.address);
  });
  after(async () => {
    await worker?.stop();
    await stack?.close();
  });

  async function expectInvalid(input: unknown, expected: ConfigIssue, workflowId = uniqueId('bad')): Promise<void> {
    const handle = await stack.client.workflow.start('trainModel', { taskQueue: worker.taskQueue, workflowId, args: [input] });
    const err = await handle.result().then(
      () => assert.fail('the workflow should have failed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError);
    assert.ok(err.cause instanceof ApplicationFailure, `cause: ${String(err.cause)}`);
    assert.equal(err.cause.type, 'InvalidConfig');
    assert.equal(err.cause.nonRetryable, true);
    assert.ok(err.cause.message.includes(formatIssue(expected)), err.cause.message);
    assert.deepEqual(err.cause.details, [[expected]], 'the issues travel as failure details');
    const types = ((await handle.fetchHistory()).events ?? []).map((e) => e.eventType);
    assert.ok(types.includes(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED));
    assert.ok(!types.includes(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), `no activity may be scheduled: ${types.join(', ')}`);
  }

  test('control: a valid input does schedule activities (so the check below can fail)', async () => {
    const handle = await stack.client.workflow.start('trainModel', { taskQueue: worker.taskQueue, workflowId: uniqueId('ok'), args: [tinyInput({ maxEpochs: 1 })] });
    await handle.result();
    const types = ((await handle.fetchHistory()).events ?? []).map((e) => e.eventType);
    assert.ok(types.includes(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED));
  });

  const e2e = badInputs.filter((b) => b.e2e);
  assert.ok(e2e.length >= 5);
  for (const bad of e2e) {
    test(bad.name, () => expectInvalid(bad.input, bad.issue));
  }

  test('unknown dataset (checked on the worker by a local activity)', () =>
    expectInvalid(withField('data.eval.name', 'imagenet'), {
      field: 'data.eval.name',
      expected: "one of the worker's datasets (csv, jsonl, mnist, synthetic)",
      received: '`"imagenet"` (string)',
    }));

  test('a workflow id that cannot be a run id', () => {
    const workflowId = `bad id/${uniqueId('x')}`;
    return expectInvalid(tinyInput(), { field: 'runId (defaults to the workflow id)', expected: ID, received: `\`${JSON.stringify(workflowId)}\` (string)` }, workflowId);
  });
});

test('tracking.mlflow: an http(s) URL without credentials, a bounded experiment name, no unknown fields', () => {
  const base = { model: { name: 'mlp' }, data: { train: { name: 'mnist' }, eval: { name: 'mnist' } }, stepsPerEpoch: 1, maxEpochs: 1 };
  assert.deepEqual(parseTrainConfig({ ...base, tracking: { mlflow: { uri: 'http://127.0.0.1:5000', experiment: 'x' } } }).tracking, { mlflow: { uri: 'http://127.0.0.1:5000', experiment: 'x' } });
  for (const [tracking, field] of [
    [{ mlflow: { uri: 'http://user:secret@host' } }, 'tracking.mlflow.uri'],
    [{ mlflow: { uri: 'file:///etc/passwd' } }, 'tracking.mlflow.uri'],
    [{ mlflow: { uri: 'http://host/?x=1' } }, 'tracking.mlflow.uri'],
    [{ mlflow: { experiment: 'e'.repeat(501) } }, 'tracking.mlflow.experiment'],
    [{ mlflow: { parentRunId: '../x' } }, 'tracking.mlflow.parentRunId'],
    [{ wandb: {} }, 'tracking.wandb'],
  ] as const) {
    assert.throws(() => parseTrainConfig({ ...base, tracking }), (err: Error) => err.message.includes(`\`${field}\``) && !err.message.includes('secret@'), field);
  }
});
