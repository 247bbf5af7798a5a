/**
 * Every input in examples/ is started as a user would, with the real Temporal CLI
 * (`temporal workflow start --type … --task-queue … --input-file examples/….json`) against a real
 * dev server and worker, and must complete (read back with `temporal workflow result`). An example
 * that reads data files has them written first by the commands the README gives for it.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
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
  { file: 'mnist-parquet-shards.json', type: 'trainModel', parse: parseTrainConfig },
  { file: 'mnist-png-shards.json', type: 'trainModel', parse: parseTrainConfig },
];

/** The README's commands that write an example's data (scripts run with tsx from the repository root), by example file. */
const EXAMPLE_DATA = '/tmp/durable-train-examples';
const DATA_COMMANDS: Readonly<Record<string, ReadonlyArray<readonly string[]>>> = {
  'mnist-parquet-shards.json': [
    ['scripts/make-tabular-shards.ts', '--out', `file://${EXAMPLE_DATA}/mnist-parquet/train`, '--split', 'train', '--format', 'parquet', '--rows-per-shard', '1700', '--limit-shards', '5'],
    ['scripts/make-tabular-shards.ts', '--out', `file://${EXAMPLE_DATA}/mnist-parquet/test`, '--split', 'test', '--format', 'parquet', '--rows-per-shard', '500', '--limit-shards', '3'],
  ],
  'mnist-png-shards.json': [
    ['scripts/make-image-shards.ts', '--out', `${EXAMPLE_DATA}/mnist-png/train`, '--count', '8500', '--per-shard', '1700'],
    ['scripts/make-image-shards.ts', '--out', `${EXAMPLE_DATA}/mnist-png/test`, '--from', '8500', '--count', '1500', '--per-shard', '500'],
  ],
};

describe('examples/*.json through the temporal CLI', () => {
  let stack: Stack;
  let worker: InProcessWorker;

  async function temporal(...args: string[]): Promise<string> {
    const { stdout } = await run(temporalCliPath(), [...args, '--address', stack.address], { timeout: 170_000 });
    return stdout;
  }

  before(async () => {
    // The examples name their data under /tmp/durable-train-examples: the worker allows it, as the README's worker command does.
    process.env.DT_ALLOWED_URIS = `${process.env.DT_ALLOWED_URIS},file://${EXAMPLE_DATA}`;
    if (Object.keys(DATA_COMMANDS).length > 0) {
      // Parquet is written by pyarrow, in the reference Python this script installs (or finds).
      const setup = spawnSync('bash', [path.join(ROOT, 'scripts/setup-bench-python.sh')], { encoding: 'utf8' });
      assert.equal(setup.status, 0, `scripts/setup-bench-python.sh: ${setup.stderr}`);
      process.env.DT_PYTHON ??= setup.stdout.trim();
    }
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
      for (const command of DATA_COMMANDS[example.file] ?? []) {
        await run(process.execPath, ['--import', 'tsx', ...command], { cwd: ROOT, timeout: 300_000 });
      }
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
