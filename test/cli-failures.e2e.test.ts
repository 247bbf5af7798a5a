/**
 * Failures where people look: `train --wait`, `watch` and `status` against a real dev server and
 * real workers say why a run is not moving: the root cause of a failed run (and `status` exits 1),
 * a worker that stopped heartbeating (then the retried attempt and its cause), a task queue that
 * no worker polls. And terminal control characters in a workflow id are printed escaped.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import { mnistInput, ROOT, runDurableTrain, startWorkerProcess, tempDir, uniqueId, useStackAndWorker, waitFor, type WorkerProcess } from './helpers/temporal';

const cli = runDurableTrain;
const ESC = '\x1b';

/** Runs the CLI until its output matches `pattern` (then stops it) or `timeoutMs` passes; `output()` reads what it printed so far. */
function cliUntil(args: string[], env: Record<string, string>, pattern: RegExp, timeoutMs: number): Promise<{ matched: boolean; output: string; seconds: number }> & { output(): string } {
  const started = Date.now();
  let output = '';
  const done = new Promise<{ matched: boolean; output: string; seconds: number }>((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/durable-train.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let matched = false;
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    const onData = (d: Buffer) => {
      output += d;
      if (!matched && pattern.test(output)) {
        matched = true;
        child.kill('SIGTERM');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve({ matched, output, seconds: (Date.now() - started) / 1000 });
    });
  });
  return Object.assign(done, { output: () => output });
}

describe('durable-train shows failures where people look', () => {
  const harness = useStackAndWorker();

  test('a failed run: --wait and status print its root cause; status exits 1 and never says training', async () => {
    const dir = tempDir();
    const missing = pathToFileURL(path.join(dir, 'no-such-data.csv')).href;
    const file = path.join(dir, 'run.json');
    fs.writeFileSync(file, JSON.stringify(mnistInput({ data: { train: { name: 'csv', params: { uri: missing, label: 'y' } }, eval: { name: 'mnist', split: 'test', limit: 100 } } })));
    const workflowId = uniqueId('cli-fails');
    const waited = await cli(['train', file, '--workflow-id', workflowId, '--wait'], harness.cliEnv);
    console.log(waited.stdout, waited.stderr);
    assert.equal(waited.code, 1, waited.stderr);
    assert.match(waited.stderr, new RegExp(`Run ${workflowId} ended: FAILED\\ncause: \\S*: Dataset csv: no file at ${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    assert.doesNotMatch(waited.stderr, /^Activity task failed$/m, 'the root cause, not the wrapper');

    const status = await cli(['status', workflowId], harness.cliEnv);
    console.log(status.stdout);
    assert.equal(status.code, 1, 'status of a failed run exits 1');
    assert.match(status.stdout, new RegExp(`^${workflowId} \\(trainModel\\): FAILED\\n`));
    assert.match(status.stdout, / failed /, 'the train line says failed');
    assert.doesNotMatch(status.stdout, /training/, 'a failed run is never shown as training');
    assert.match(status.stdout, /\ncause: \S*: Dataset csv: no file at /);
    const json = await cli(['status', workflowId, '--json'], harness.cliEnv);
    assert.equal(json.code, 1);
    assert.match(JSON.parse(json.stdout).failure, /Dataset csv: no file at /);
  });

  test('a run on a task queue no worker polls is reported as such, within seconds (no query left hanging)', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'run.json');
    fs.writeFileSync(file, JSON.stringify(mnistInput()));
    const workflowId = uniqueId('cli-unpolled');
    const taskQueue = uniqueId('nobody-polls');
    try {
      const waited = await cliUntil(['train', file, '--workflow-id', workflowId, '--task-queue', taskQueue, '--wait'], harness.cliEnv, /no worker polls task queue/, 30_000);
      console.log(waited.output);
      assert.ok(waited.matched, `train --wait must say no worker polls ${taskQueue}, got: ${waited.output}`);
      assert.ok(waited.seconds < 15, `said after ${waited.seconds} s`);
      assert.match(waited.output, new RegExp(`${workflowId}: no worker polls task queue ${taskQueue}\\n  start a worker on task queue ${taskQueue}`));

      const started = Date.now();
      const status = await cli(['status', workflowId], harness.cliEnv);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`RUNNING\\n${workflowId}: no worker polls task queue ${taskQueue}`));
      assert.ok(Date.now() - started < 10_000, 'status does not wait for a query nobody answers');
    } finally {
      await harness.stack.client.workflow.getHandle(workflowId).terminate('test over').catch(() => undefined);
    }
  });

  test('a killed worker: watch and status say no heartbeat came, then the retried attempt and its cause', { timeout: 240_000 }, async () => {
    const taskQueue = uniqueId('cli-killed');
    const workers: WorkerProcess[] = [];
    const workflowId = uniqueId('cli-killed-run');
    try {
      const worker = startWorkerProcess({ TEMPORAL_ADDRESS: harness.stack.address, DT_TASK_QUEUE: taskQueue, DT_CHECKPOINT_URI: pathToFileURL(tempDir('dt-runs-')).href });
      workers.push(worker);
      // Slow epochs with a short heartbeat timeout: the kill lands mid-epoch, and the silence is soon longer than the timeout.
      const input = mnistInput({ model: { name: 'mlp', params: { hiddenUnits: [512, 512] } }, stepsPerEpoch: 2000, maxEpochs: 2, timeouts: { heartbeatSeconds: 3 } });
      const handle = await harness.stack.client.workflow.start('trainModel', { taskQueue, workflowId, args: [input] });
      await waitFor(async () => (await handle.describe()).raw.pendingActivities?.some((a) => a.activityType?.name === 'trainEpoch' && a.heartbeatDetails), 120_000, 'a heartbeat mid-epoch');
      const env = { ...harness.cliEnv, DT_TASK_QUEUE: taskQueue };
      const before = await cli(['status', workflowId], env);
      assert.match(before.stdout, /training/);
      assert.doesNotMatch(before.stdout, /no heartbeat|retrying/, 'a healthy run shows no trouble');

      // Watching when the worker dies (SIGKILL: no goodbye, its heartbeats just stop).
      const watching = cliUntil(['watch', workflowId, '--interval', '0.5'], env, /waiting for a worker: no heartbeat for \d+ s/, 120_000);
      await waitFor(async () => / step [1-9]\d*\/4000 training/.test(watching.output()), 60_000, 'watch to show the run training');
      await worker.kill();
      const watched = await watching;
      console.log(watched.output);
      assert.ok(watched.matched, `watch must say the heartbeat stopped, got: ${watched.output}`);
      const silentLine = watched.output.split('\n').find((l) => /no heartbeat/.test(l)) ?? '';
      assert.match(silentLine, /epoch 1\/2 step \d+\/4000 training {2}waiting for a worker: no heartbeat for \d+ s \(timeout 3 s\)/, 'the last progress stays, marked');
      assert.doesNotMatch(silentLine, /ETA|steps\/s/, 'no pace or ETA while no worker trains');

      // The server times the attempt out: the next one waits, and the failure of the last is shown.
      const retried = await waitFor(async () => {
        const s = await cli(['status', workflowId], env);
        return /attempt 1 of trainEpoch failed: /.test(s.stdout) && s;
      }, 60_000, 'status to show the timed-out attempt');
      console.log(retried.stdout);
      assert.equal(retried.code, 0);
      assert.match(retried.stdout, /\n {2}attempt 1 of trainEpoch failed: heartbeat timeout/);
      const json = JSON.parse((await cli(['status', workflowId, '--json'], env)).stdout);
      assert.equal(json.progress.trouble.retrying.attempt, 2);
      assert.equal(json.progress.trouble.retrying.activity, 'trainEpoch');
    } finally {
      await harness.stack.client.workflow.getHandle(workflowId).terminate('test over').catch(() => undefined);
      for (const w of workers) await w.stop();
    }
  });

  test('terminal control characters in a workflow id are printed escaped by list and status', async () => {
    const workflowId = `${uniqueId('cli-esc')}-\x1b[31mred\x1b]0;pwned\x07\u009b2J\u202e`;
    const taskQueue = uniqueId('nobody-esc');
    await harness.stack.client.workflow.start('trainModel', { taskQueue, workflowId, args: [mnistInput()] });
    try {
      const listed = await waitFor(async () => {
        const r = await cli(['list', '--query', `TaskQueue="${taskQueue}"`], harness.cliEnv);
        return r.stdout.includes('cli-esc') && r;
      }, 30_000, 'the run in `list`');
      console.log(JSON.stringify(listed.stdout));
      assert.ok(!listed.stdout.includes(ESC) && !listed.stdout.includes('\u009b') && !listed.stdout.includes('\u202e') && !listed.stdout.includes('\x07'), 'no control character reaches the terminal');
      assert.ok(listed.stdout.includes('-\\u001b[31mred\\u001b]0;pwned\\u0007\\u009b2J\\u202e\t'), 'the id, escaped');
      const json = await cli(['list', '--json', '--query', `TaskQueue="${taskQueue}"`], harness.cliEnv);
      assert.ok(!json.stdout.includes(ESC) && !json.stdout.includes('\u009b') && !json.stdout.includes('\u202e'));
      assert.equal(JSON.parse(json.stdout)[0].workflowId, workflowId, 'the JSON still means the same id');
      const status = await cli(['status', workflowId], harness.cliEnv);
      assert.ok(!status.stdout.includes(ESC) && !status.stdout.includes('\u009b'), JSON.stringify(status.stdout));
      const missing = await cli(['status', `${workflowId}-gone`], harness.cliEnv);
      assert.equal(missing.code, 3);
      assert.ok(!missing.stderr.includes(ESC), JSON.stringify(missing.stderr));
    } finally {
      await harness.stack.client.workflow.getHandle(workflowId).terminate('test over').catch(() => undefined);
    }
  });
});
