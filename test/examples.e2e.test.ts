/**
 * Every input in examples/ is started as a user would, with the real Temporal CLI
 * (`temporal workflow start --type … --task-queue … --input-file examples/….json`) against a real
 * dev server and worker, and must complete (read back with `temporal workflow result`).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { parseRetrainConfig } from '../src/config/retrain-config';
import { parseSearchConfig } from '../src/config/search-config';
import { parseTrainConfig } from '../src/config/train-config';
import { temporalCliPath } from '../src/dev-server';
import { ROOT, startStack, startWorker, uniqueId, type InProcessWorker, type Stack } from './helpers/temporal';

const run = promisify(execFile);

const EXAMPLES: ReadonlyArray<{ file: string; type: string; parse: (input: unknown) => unknown }> = [
  { file: 'mnist-mlp.json', type: 'trainModel', parse: parseTrainConfig },
  { file: 'mnist-cnn.json', type: 'trainModel', parse: parseTrainConfig },
  { file: 'mnist-grid-search.json', type: 'hyperparameterSearch', parse: parseSearchConfig },
  { file: 'mnist-retrain.json', type: 'retrainModel', parse: parseRetrainConfig },
];

describe('examples/*.json through the temporal CLI', () => {
  let stack: Stack;
  let worker: InProcessWorker;

  async function temporal(...args: string[]): Promise<string> {
    const { stdout } = await run(temporalCliPath(), [...args, '--address', stack.address], { timeout: 170_000 });
    return stdout;
  }

  before(async () => {
    stack = await startStack();
    worker = await startWorker(stack.address);
  });
  after(async () => {
    await worker?.stop();
    await stack?.close();
  });

  test('every example is listed here and valid', () => {
    const files = fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => f.endsWith('.json')).sort();
    assert.deepEqual(files, EXAMPLES.map((e) => e.file).sort(), 'a new example needs a case here');
    for (const e of EXAMPLES) e.parse(JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', e.file), 'utf8')));
  });

  for (const example of EXAMPLES) {
    test(`${example.file}: temporal workflow start --type ${example.type} … completes`, async () => {
      const workflowId = uniqueId(example.file.replace(/\.json$/, ''));
      await temporal(
        'workflow', 'start', '--type', example.type, '--task-queue', worker.taskQueue,
        '--workflow-id', workflowId, '--input-file', path.join(ROOT, 'examples', example.file),
      );
      const out = await temporal('workflow', 'result', '--workflow-id', workflowId, '-o', 'json');
      const parsed = JSON.parse(out) as { status: string; result: Record<string, any> };
      assert.equal(parsed.status, 'COMPLETED', out);
      const result = parsed.result;
      if (example.type === 'trainModel') {
        assert.match(result.modelUri, /\/model\/model\.json$/);
        assert.ok(result.finalMetrics.val_accuracy > 0.5, `val_accuracy ${result.finalMetrics.val_accuracy}`);
      } else if (example.type === 'hyperparameterSearch') {
        assert.equal(result.trials.length, 2);
        assert.ok([0.001, 0.003].includes(result.best.params['hyperparameters.learningRate']), JSON.stringify(result.best.params));
      } else {
        assert.equal(result.promoted, true, result.reason);
        assert.equal(result.decision.number, 1);
        assert.ok(result.decision.challenger.metrics.val_accuracy > 0.5);
      }
    });
  }
});
