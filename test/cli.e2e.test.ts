/** The durable-train CLI, run as a user runs it (bin/durable-train.js), against a real dev server. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { uniqueRetrainRunId } from '../src/config/retrain-config';
import { mnistInput, runDurableTrain, tempDir, uniqueId, useStackAndWorker, waitFor } from './helpers/temporal';
import { tinyInput } from './e2e-support';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

const cli = runDurableTrain;

describe('durable-train CLI', () => {
  const harness = useStackAndWorker();

  test('train --wait follows the run to the end; watch shows epochs, steps and metrics', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'run.json');
    fs.writeFileSync(file, JSON.stringify(mnistInput({ maxEpochs: 3 })));
    const workflowId = uniqueId('cli');
    const started = await cli(['train', file, '--workflow-id', workflowId, '--json'], harness.cliEnv);
    assert.equal(started.code, 0, started.stderr);
    // `runId` means the run folder everywhere else: Temporal's run id is `temporalRunId`.
    const start = JSON.parse(started.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(start).sort(), ['taskQueue', 'temporalRunId', 'type', 'workflowId']);
    assert.equal(start.workflowId, workflowId);
    assert.equal(start.type, 'trainModel');
    assert.match(String(start.temporalRunId), /^[0-9a-f-]{36}$/);

    const watched = await cli(['watch', workflowId, '--interval', '0.2'], harness.cliEnv);
    assert.equal(watched.code, 0, watched.stderr);
    assert.match(watched.stdout, /epoch 3\/3 step 120\/120/);
    assert.match(watched.stdout, /val_accuracy \d\.\d{4}/);
    assert.match(watched.stdout, /finished: completed/);

    const status = await cli(['status', workflowId, '--json'], harness.cliEnv);
    assert.equal(status.code, 0, status.stderr);
    const parsed = JSON.parse(status.stdout);
    assert.equal(parsed.status, 'COMPLETED');
    assert.equal(parsed.progress.epoch, 3);
  });

  test('a bad config file names the file and the field, exits 2 and starts nothing', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, JSON.stringify(mnistInput({ stepsPerEpoch: 0 })));
    const workflowId = uniqueId('cli-bad');
    const result = await cli(['train', file, '--workflow-id', workflowId], harness.cliEnv);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: Invalid trainModel input`));
    assert.match(result.stderr, /Expected `stepsPerEpoch` to be a whole number from 1 to 100000000, got `0` \(number\)/);
    const status = await cli(['status', workflowId], harness.cliEnv);
    assert.equal(status.code, 3, 'no workflow may exist');
  });

  test('retrain: watch follows a running retrain (phase, training progress, decision); status --json', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'retrain.json');
    const modelName = uniqueId('cli-model');
    fs.writeFileSync(file, JSON.stringify({ modelName, train: mnistInput({ maxEpochs: 2 }) }));
    const workflowId = uniqueId('cli-retrain');
    const started = await cli(['retrain', file, '--workflow-id', workflowId], harness.cliEnv);
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, new RegExp(`Started ${workflowId} \\(retrainModel\\)`));

    const watched = await cli(['watch', workflowId, '--interval', '0.2'], harness.cliEnv);
    assert.equal(watched.code, 0, watched.stderr);
    assert.match(watched.stdout, new RegExp(`retrain ${modelName}: training  no champion yet  training run ${modelName}-${workflowId}`));
    assert.match(watched.stdout, /\n  \[[#.]+\] epoch \d\/2 step \d+\/80 /, 'the training run\'s progress is shown under the retrain');
    assert.match(watched.stdout, /finished: promoted \(no champion yet/);
    assert.match(watched.stdout, /decision file:\/\/\S+\/champions\/cli-model-\S+\/decisions\/000001\.json/);

    const status = await cli(['status', workflowId, '--json'], harness.cliEnv);
    assert.equal(status.code, 0, status.stderr);
    const parsed = JSON.parse(status.stdout);
    assert.equal(parsed.type, 'retrainModel');
    assert.equal(parsed.status, 'COMPLETED');
    assert.equal(parsed.progress.retrain.phase, 'promoted');
    assert.equal(parsed.progress.retrain.decision.number, 1);

    // `list` shows retrains beside training runs, with the decision as their status.
    const row = await waitFor(async () => {
      const listed = await cli(['list', '--json', '--limit', '100'], harness.cliEnv);
      return (JSON.parse(listed.stdout) as Array<Record<string, unknown>>).find((r) => r.workflowId === workflowId);
    }, 30_000, 'the retrain in `list`');
    assert.equal(row.type, 'retrainModel');
    assert.equal(row.trainStatus, 'promoted');
  });

  test('retrain: a bad config file names the file and the nested field, exits 2 and starts nothing', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'bad-retrain.json');
    fs.writeFileSync(file, JSON.stringify({ modelName: 'a/b', train: mnistInput({ stepsPerEpoch: 0 }), minImprovement: 'big' }));
    const workflowId = uniqueId('cli-bad-retrain');
    const result = await cli(['retrain', file, '--workflow-id', workflowId], harness.cliEnv);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`${escape(file)}: Invalid retrainModel input`));
    assert.match(result.stderr, /Expected `train\.stepsPerEpoch` to be a whole number from 1 to 100000000, got `0` \(number\)/);
    assert.match(result.stderr, /Expected `modelName` to be an id of 1 to 128 characters .*, got `"a\/b"` \(string\)/);
    assert.match(result.stderr, /Expected `minImprovement` to be a number from 0 and up, got `"big"` \(string\)/);
    assert.equal((await cli(['status', workflowId], harness.cliEnv)).code, 3, 'no workflow may exist');
  });

  test('search: starts hyperparameterSearch with the file as is and follows it; a non-object file exits 2', async () => {
    const dir = tempDir();
    const bad = path.join(dir, 'bad-search.json');
    fs.writeFileSync(bad, '[1, 2]');
    const refused = await cli(['search', bad], harness.cliEnv);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, new RegExp(`${escape(bad)}: Expected the file to hold a hyperparameterSearch input \\(a JSON object\\), got an array of 2`));

    const file = path.join(dir, 'search.json');
    const search = {
      base: tinyInput({ maxEpochs: 2 }),
      space: { 'hyperparameters.learningRate': [0.003, 0.03] },
      strategy: 'grid',
      maxParallel: 2,
      metric: 'val_loss',
      mode: 'min',
    };
    fs.writeFileSync(file, JSON.stringify(search));
    const workflowId = uniqueId('cli-search');
    const result = await cli(['search', file, '--workflow-id', workflowId, '--wait'], harness.cliEnv);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout, new RegExp(`Started ${workflowId} \\(hyperparameterSearch\\)`));
    assert.match(result.stdout, /Search \S+ finished: best val_loss \d/);
    const status = JSON.parse((await cli(['status', workflowId, '--json'], harness.cliEnv)).stdout);
    assert.equal(status.type, 'hyperparameterSearch');
  });

  test('pause and stop on a retrain reach its training run', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'retrain-long.json');
    const modelName = uniqueId('cli-ctl');
    fs.writeFileSync(file, JSON.stringify({ modelName, train: tinyInput({ maxEpochs: 400 }) }));
    const workflowId = uniqueId('cli-retrain-ctl');
    assert.equal((await cli(['retrain', file, '--workflow-id', workflowId], harness.cliEnv)).code, 0);
    // The training run's id: readable, plus a hash of the exact ids (src/config/retrain-config.ts).
    const child = harness.stack.client.workflow.getHandle(uniqueRetrainRunId(modelName, workflowId));
    await waitFor(async () => ((await child.query<{ epoch: number }>('progress')).epoch >= 1), 60_000, 'training to start');
    assert.equal((await cli(['pause', workflowId], harness.cliEnv)).code, 0);
    await waitFor(async () => (await child.query<{ status: string }>('progress')).status === 'paused', 30_000, 'the training run to pause');
    const shown = await cli(['status', workflowId], harness.cliEnv);
    assert.match(shown.stdout, /retrain \S+: training .*\n  \[[#.]+\] epoch \d+\/400 .* paused/s);
    assert.equal((await cli(['stop', workflowId], harness.cliEnv)).code, 0);
    const watched = await cli(['watch', workflowId, '--interval', '0.2'], harness.cliEnv);
    assert.equal(watched.code, 0, watched.stderr);
    assert.match(watched.stdout, /finished: promoted/);
  });

  test('usage errors exit 2', async () => {
    const result = await cli(['frobnicate'], harness.cliEnv);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /Unknown command `frobnicate`/);
    const flag = await cli(['status', 'some-id', '--frobnicate'], harness.cliEnv);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /Unknown option '--frobnicate'/);
    const valueless = await cli(['watch', 'some-id', '--interval'], harness.cliEnv);
    assert.equal(valueless.code, 2);
    assert.match(valueless.stderr, /--interval/);
    const limit = await cli(['list', '--limit', 'lots'], harness.cliEnv);
    assert.equal(limit.code, 2);
    assert.match(limit.stderr, /Expected `--limit` to be a whole number from 1 and up, got lots/);
  });

  test('--help and help print the usage and exit 0; no command prints it and exits 2', async () => {
    for (const args of [['--help'], ['-h'], ['help'], ['train', '--help']]) {
      const result = await cli(args, harness.cliEnv);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stdout, /^Usage: durable-train <command>/);
      assert.match(result.stdout, /schedule create <retrain\.json>/);
    }
    assert.equal((await cli([], harness.cliEnv)).code, 2);
  });
});
