/** The durable-train CLI, run as a user runs it (bin/durable-train.js), against a real dev server. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { mnistInput, ROOT, startStack, startWorker, tempDir, uniqueId, type InProcessWorker, type Stack } from './helpers/temporal';

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/durable-train.js'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('durable-train CLI', () => {
  let stack: Stack;
  let worker: InProcessWorker;
  let env: Record<string, string>;

  before(async () => {
    stack = await startStack();
    worker = await startWorker(stack.address);
    env = { TEMPORAL_ADDRESS: stack.address, DT_TASK_QUEUE: worker.taskQueue };
  });
  after(async () => {
    await worker?.stop();
    await stack?.close();
  });

  test('train --wait follows the run to the end; watch shows epochs, steps and metrics', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'run.json');
    fs.writeFileSync(file, JSON.stringify(mnistInput({ maxEpochs: 3 })));
    const workflowId = uniqueId('cli');
    const started = await cli(['train', file, '--workflow-id', workflowId], env);
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, new RegExp(`Started ${workflowId}`));

    const watched = await cli(['watch', workflowId, '--interval', '0.2'], env);
    assert.equal(watched.code, 0, watched.stderr);
    assert.match(watched.stdout, /epoch 3\/3 step 120\/120/);
    assert.match(watched.stdout, /val_accuracy \d\.\d{4}/);
    assert.match(watched.stdout, /finished: completed/);

    const status = await cli(['status', workflowId, '--json'], env);
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
    const result = await cli(['train', file, '--workflow-id', workflowId], env);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: Invalid trainModel input`));
    assert.match(result.stderr, /Expected `stepsPerEpoch` to be a whole number from 1 and up, got `0` \(number\)/);
    const status = await cli(['status', workflowId], env);
    assert.equal(status.code, 3, 'no workflow may exist');
  });

  test('usage errors exit 2', async () => {
    const result = await cli(['frobnicate'], env);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /Unknown command `frobnicate`/);
  });
});
