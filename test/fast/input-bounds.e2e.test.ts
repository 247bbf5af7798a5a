/**
 * Inputs bounded by what a worker can hold (issue #20): the size walk that runs before any reader
 * recurses, on every workflow input and on the editSearch Update, the edits log and PBT bounds, and
 * a search whose 1 MB base is validated for 2,000 trials without a copy per trial. Pure checks, then
 * the real workflows on a dev server with scripted activities.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { temporalCliPath } from '../../src/dev-server';
import { inputSizeIssues, MAX_INPUT_BYTES, MAX_INPUT_DEPTH, MAX_UPDATE_BYTES } from '../../src/config/bounds';
import { parseSearchConfig } from '../../src/config/search-config';
import { hyperparameterSearch } from '../../src/workflows';
import { MAX_PARENT_INPUT_BYTES } from '../../src/workflows/input-bounds';
import { MAX_EDITS, validateEdit } from '../../src/workflows/search/edits';
import { MAX_PBT_REPORTS, pbtBoundIssues } from '../../src/workflows/search/pbt';
import type { SearchState } from '../../src/workflows/search/state';
import { tempDir } from '../helpers/temporal';
import { eventCounts, failureOf, Harness, trainInput } from './harness';

/** `{ config: { config: … } }` `levels` objects deep, built without recursion. */
function nested(levels: number): Record<string, unknown> {
  let v: Record<string, unknown> = { class_name: 'Dense' };
  for (let i = 1; i < levels; i++) v = { config: v };
  return v;
}

describe('inputSizeIssues (pure)', () => {
  test('an input within the bounds has no issue', () => {
    assert.deepEqual(inputSizeIssues(trainInput({ model: { topology: nested(MAX_INPUT_DEPTH - 2) } }), 'input'), []);
  });

  test('too deep: the deepest field within the bound is named, with expected and received', () => {
    const [issue, ...rest] = inputSizeIssues({ model: { topology: nested(5000) } }, 'input');
    assert.equal(rest.length, 0);
    assert.equal(issue!.field, 'model.topology.config.config….config');
    assert.match(issue!.expected, new RegExp(`at most ${MAX_INPUT_DEPTH} levels`));
  });

  test('a million levels: the walk keeps its own stack (no RangeError)', () => {
    assert.equal(inputSizeIssues(nested(1_000_000), 'input').length, 1);
  });

  test('too many bytes: strings, keys and wide arrays all count, and the walk stops at the bound', () => {
    assert.match(inputSizeIssues({ s: 'x'.repeat(MAX_INPUT_BYTES) }, 'input')[0]!.expected, new RegExp(`at most ${MAX_INPUT_BYTES} bytes`));
    assert.equal(inputSizeIssues({ [`k${'y'.repeat(MAX_INPUT_BYTES)}`]: 1 }, 'input').length, 1);
    assert.equal(inputSizeIssues(new Array(2 * MAX_INPUT_BYTES).fill(0), 'input').length, 1);
    assert.deepEqual(inputSizeIssues({ s: 'x'.repeat(MAX_INPUT_BYTES - 100) }, 'input'), []);
    assert.equal(inputSizeIssues({ s: 'x'.repeat(200) }, 'edit', { maxBytes: 100 })[0]!.field, 'edit');
    // The count is compact JSON's length: a value of exactly the bound passes, one byte more does not.
    const value = { a: [1, 'two', null, true, { b: [] }], c: {} };
    const bytes = JSON.stringify(value).length;
    assert.deepEqual(inputSizeIssues(value, 'input', { maxBytes: bytes }), []);
    assert.equal(inputSizeIssues(value, 'input', { maxBytes: bytes - 1 }).length, 1);
  });
});

describe('edits log and PBT state bounds (pure)', () => {
  const config = parseSearchConfig({ base: trainInput(), strategy: 'random', maxTrials: 2, space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.1] } } });
  const state = (edits: number): SearchState =>
    ({ status: 'searching', trials: [], edits: Array.from({ length: edits }, (_, i) => ({ number: i + 1, edit: { op: 'maxParallel', value: 2 }, changes: ['x'], at: 0 })), maxParallel: 1, trialLimit: 2 }) as unknown as SearchState;
  const refusal = (edit: unknown, s: SearchState): string => {
    try {
      validateEdit(edit, config, s);
    } catch (err) {
      assert.equal((err as { type?: string }).type, 'InvalidEdit');
      assert.equal((err as { nonRetryable?: boolean }).nonRetryable, true);
      return (err as Error).message;
    }
    return assert.fail(`${JSON.stringify(edit).slice(0, 80)} was accepted`);
  };

  test('an edit past MAX_UPDATE_BYTES or nested too deep is refused before it is read', () => {
    assert.match(refusal({ op: 'addTrials', trials: [{ 'hyperparameters.learningRate': 'x'.repeat(MAX_UPDATE_BYTES) }] }, state(0)), /`edit`.*at most 65536 bytes/);
    assert.match(refusal({ op: 'addTrials', trials: [nested(5000)] }, state(0)), /`trials\[0\]\.config\.config….config`.*levels/);
  });

  test(`the ${MAX_EDITS + 1}th edit is refused, naming the bound`, () => {
    validateEdit({ op: 'maxParallel', value: 3 }, config, state(MAX_EDITS - 1));
    assert.match(refusal({ op: 'maxParallel', value: 3 }, state(MAX_EDITS)), new RegExp(`at most ${MAX_EDITS} edits`));
  });

  test('a PBT population × rounds past MAX_PBT_REPORTS fails its start, naming roundEpochs and the fewest epochs that fit', () => {
    const pbt = { strategy: 'pbt' as const, base: { maxEpochs: 1000 } };
    assert.deepEqual(pbtBoundIssues({ ...pbt, roundEpochs: 10 }, 50), []);
    const [issue] = pbtBoundIssues({ ...pbt, roundEpochs: 1 }, 2000);
    assert.equal(issue!.field, 'roundEpochs');
    assert.match(issue!.expected, new RegExp(`within ${MAX_PBT_REPORTS}.*at least 500`));
    assert.match(issue!.received, /1000 rounds/);
  });
});

describe('workflows refuse oversized inputs at once', () => {
  let h: Harness;
  before(async () => {
    h = await Harness.start();
  });
  after(async () => {
    await h?.close();
  });

  // Node's JSON.stringify overflows its own stack near 5,000 levels, so the deep input is written as
  // text and started through the temporal CLI, as the issue did (JSON.parse does not recurse).
  const deepTopology = `{"class_name":"Sequential","config":${'{"config":'.repeat(4999)}{"class_name":"Dense"}${'}'.repeat(4999)}}`;
  const deep = JSON.stringify(trainInput({ model: { topology: '@TOPOLOGY@' } })).replace('"@TOPOLOGY@"', deepTopology);
  const cases = [
    { type: 'trainModel', input: deep, field: /`model\.topology\.config\.config….config`/ },
    { type: 'retrainModel', input: `{"modelName":"m","train":${deep}}`, field: /`train\.model\.topology\.config….config`/ },
    { type: 'hyperparameterSearch', input: `{"base":${deep},"space":{"seed":[1,2]}}`, field: /`base\.model\.topology\.config….config`/ },
  ] as const;
  const dir = tempDir('dt-bounds-');
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const c of cases) {
    test(`${c.type}: a topology 5,000 levels deep fails InvalidConfig naming the field, within 10 s, before any activity`, () =>
      h.run({ evalMetrics: () => ({ val_loss: 1 }) }, async ({ client, taskQueue, mock, id }) => {
        const workflowId = id(`deep-${c.type}`);
        const file = path.join(dir, `${workflowId}.json`);
        fs.writeFileSync(file, c.input);
        const started = Date.now();
        await promisify(execFile)(temporalCliPath(), ['workflow', 'start', '--type', c.type, '--task-queue', taskQueue, '--workflow-id', workflowId, '--input-file', file, '--address', h.stack.address]);
        const handle = client.workflow.getHandle(workflowId);
        const failure = await failureOf(handle);
        assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
        assert.equal(failure.type, 'InvalidConfig');
        assert.equal(failure.nonRetryable, true);
        assert.match(failure.message, c.field);
        assert.match(failure.message, new RegExp(`at most ${MAX_INPUT_DEPTH} levels`));
        assert.deepEqual(mock.calls, []);
        assert.equal((await eventCounts(handle)).get('EVENT_TYPE_WORKFLOW_TASK_FAILED'), undefined);
      }));
  }

  test('a search input too large to leave room for its trials\' inputs fails InvalidConfig naming the bound', () =>
    h.run({ evalMetrics: () => ({ val_loss: 1 }) }, async ({ client, taskQueue, mock, id }) => {
      const base = trainInput({ model: { topology: { class_name: 'Sequential', config: { layers: [], note: 'n'.repeat(MAX_PARENT_INPUT_BYTES) } } } });
      assert.ok(JSON.stringify(base).length < MAX_INPUT_BYTES);
      const handle = await client.workflow.start(hyperparameterSearch, { taskQueue, workflowId: id('big-base'), args: [{ base, space: { seed: [1, 2] } }] });
      const failure = await failureOf(handle);
      assert.equal(failure.type, 'InvalidConfig');
      assert.match(failure.message, new RegExp(`\`input\` to be at most ${MAX_PARENT_INPUT_BYTES} bytes`));
      assert.deepEqual(mock.calls, []);
    }));

  test('a search with a 1 MB base and 2,000 trials is validated within 10 s and a bounded memory (no copy of the base per trial)', () =>
    h.run({ evalMetrics: () => ({ val_loss: 1 }) }, async ({ client, taskQueue, mock, id }) => {
      // A 1 MB topology (the layer list, valid in shape) and a dataset the worker does not have: the
      // search validates all 2,000 trials, then fails on the registry check naming the field.
      const layers = Array.from({ length: 10_000 }, (_, i) => ({ class_name: 'Dense', config: { units: 1, name: `d${i}`, padding: 'p'.repeat(30) } }));
      const base = trainInput({ model: { topology: { class_name: 'Sequential', config: { layers } } }, data: { train: { name: 'no-such-data' }, eval: { name: 'synthetic' } } });
      const bytes = JSON.stringify(base).length;
      assert.ok(bytes > 900_000 && bytes < MAX_INPUT_BYTES, `base is ${bytes} bytes`);
      const seeds = Array.from({ length: 2000 }, (_, i) => i + 1);
      global.gc?.();
      const rssBefore = process.memoryUsage().rss;
      let rssPeak = rssBefore;
      const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 50);
      const started = Date.now();
      try {
        const handle = await client.workflow.start(hyperparameterSearch, { taskQueue, workflowId: id('big-search'), args: [{ base, space: { seed: seeds } }] });
        const failure = await failureOf(handle);
        const seconds = (Date.now() - started) / 1000;
        assert.equal(failure.type, 'InvalidConfig');
        assert.match(failure.message, /trial-1: data\.train\.name/);
        assert.deepEqual(mock.calls.map((call) => call.name), ['describeWorker']);
        const grownMb = (rssPeak - rssBefore) / 2 ** 20;
        console.log(`# 1 MB base × 2,000 trials: FAILED in ${seconds.toFixed(1)} s, worker RSS ${(rssBefore / 2 ** 20).toFixed(0)} MB -> peak ${(rssPeak / 2 ** 20).toFixed(0)} MB`);
        assert.ok(seconds < 10, `took ${seconds} s`);
        // A copy per trial was 2,000 × 1 MB parsed (several GB); one base is a few MB in each of client, server payload and sandbox.
        assert.ok(grownMb < 400, `the worker's RSS grew by ${grownMb.toFixed(0)} MB`);
      } finally {
        clearInterval(sampler);
      }
    }));
});
