/**
 * Input validation: malformed trainModel inputs each get the right field-level error (field,
 * expected, received) from parseTrainConfig, and a subset sent to the real workflow fails it
 * before any activity task is scheduled.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { temporal } from '@temporalio/proto';
import { parseTrainConfig } from '../src/config/train-config';
import { ConfigError, formatIssue, type ConfigIssue } from '../src/config/validate';
import { invalidConfigFailure, uniqueId, useStackAndWorker } from './helpers/temporal';
import { badInputs, ID, parserInputs, withField } from './bad-inputs';
import { tinyInput } from './e2e-support';

const EventType = temporal.api.enums.v1.EventType;

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

describe('parseTrainConfig: bounds, URI syntax and built-in params', () => {
  assert.ok(parserInputs.length >= 50);
  for (const bad of parserInputs) {
    test(bad.name, () => {
      const err = parseError(bad.input);
      assert.deepEqual(err.issues.map((i) => i.field), [bad.field], err.message);
      assert.ok(err.message.includes(`\`${bad.field}\``), err.message);
    });
  }

  test('well-formed URIs, params and bounds at their limits still parse', () => {
    const ok = [
      withField('checkpoint.uri', 'file:///tmp/runs/'),
      withField('checkpoint.uri', 'gs://my-bucket.example/a/b'),
      withField('checkpoint.uri', 'gs://abc'),
      withField('warmStartFrom', 'file:///tmp/r/checkpoints/000000000002'),
      withField('data.train', { name: 'csv', params: { uri: 'gs://bkt/data/x.csv', label: 'y' } }),
      withField('model', { name: 'cnn', params: { filters: [4], denseUnits: [8], imageShape: [28, 28, 1] } }),
      withField('model', { topology: { class_name: 'Sequential', config: { layers: [] } } }),
      withField('model.params.hiddenUnits', [2 ** 24]),
      { ...withField('stepsPerEpoch', 1e8), maxEpochs: 100 },
      withField('checkpoint.everySteps', 40),
      withField('data.eval', { name: 'mnist', split: 'test', limit: 2 ** 31 - 1 }),
      withField('earlyStopping', { monitor: 'val_accuracy', patience: 1e6 }),
    ];
    for (const input of ok) assert.doesNotThrow(() => parseTrainConfig(input), JSON.stringify(input).slice(0, 200));
  });
});

describe('trainModel rejects malformed input before scheduling any activity', () => {
  const harness = useStackAndWorker();

  async function expectInvalid(input: unknown, expected: ConfigIssue, workflowId = uniqueId('bad')): Promise<void> {
    const handle = await harness.stack.client.workflow.start('trainModel', { taskQueue: harness.worker.taskQueue, workflowId, args: [input] });
    const failure = await invalidConfigFailure(handle);
    assert.ok(failure.message.includes(formatIssue(expected)), failure.message);
    assert.deepEqual(failure.details, [[expected]], 'the issues travel as failure details');
    const types = ((await handle.fetchHistory()).events ?? []).map((e) => e.eventType);
    assert.ok(types.includes(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED));
    assert.ok(!types.includes(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), `no activity may be scheduled: ${types.join(', ')}`);
  }

  test('control: a valid input does schedule activities (so the check below can fail)', async () => {
    const handle = await harness.stack.client.workflow.start('trainModel', { taskQueue: harness.worker.taskQueue, workflowId: uniqueId('ok'), args: [tinyInput({ maxEpochs: 1 })] });
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
      expected: "one of the worker's datasets (csv, jsonl, mnist, sharded, synthetic)",
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
