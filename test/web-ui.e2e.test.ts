/**
 * The Temporal Web UI that `npm run server` serves: a running trainModel is found there by its
 * DurableTrainStatus search attribute, in headless Chromium (Debian's package, installed by
 * scripts/setup-chromium.sh when missing).
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { DevServer, freePort } from '../src/dev-server';
import { ROOT, startWorker, tempDir, uniqueId, waitFor, type InProcessWorker } from './helpers/temporal';

const chromium = execFileSync('bash', [path.join(ROOT, 'scripts/setup-chromium.sh')], { encoding: 'utf8' }).trim();
let server: DevServer;
let connection: Connection;
let client: Client;
let worker: InProcessWorker;
let handle: WorkflowHandle;
const shots = tempDir('dt-ui-');

/** What Chromium renders at `url` once the page's scripts settled (DOM or a screenshot). */
function browse(url: string, mode: 'dom' | 'png'): Promise<string> {
  const args = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--virtual-time-budget=15000', `--user-data-dir=${path.join(shots, 'profile')}`];
  const png = path.join(shots, 'runs.png');
  args.push(...(mode === 'dom' ? ['--dump-dom'] : ['--window-size=1400,700', `--screenshot=${png}`]), url);
  return new Promise((resolve, reject) =>
    execFile(chromium, args, { timeout: 90_000, maxBuffer: 64 << 20 }, (err, stdout) => (err ? reject(err) : resolve(mode === 'dom' ? stdout : png))),
  );
}

before(async () => {
  assert.ok(chromium, 'headless Chromium is needed: scripts/setup-chromium.sh could not install it (see its message above)');
  server = await DevServer.start({ uiPort: await freePort() });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  worker = await startWorker(server.address, { taskQueue: uniqueId('ui') });
  // Long enough to still be training while the browser looks (it is terminated after).
  handle = await client.workflow.start('trainModel', {
    taskQueue: worker.taskQueue,
    workflowId: uniqueId('ui-run'),
    args: [{
      model: { name: 'mlp', params: { hiddenUnits: [8] } },
      data: { train: { name: 'synthetic', params: { size: 256 } }, eval: { name: 'synthetic', split: 'test', params: { size: 64 } } },
      stepsPerEpoch: 20,
      maxEpochs: 10_000,
      timeouts: { heartbeatSeconds: 10 },
    }],
  });
});

after(async () => {
  await handle?.terminate('test over').catch(() => undefined);
  await worker?.stop();
  await connection?.close();
  await server?.stop();
  fs.rmSync(shots, { recursive: true, force: true });
});

test('the Web UI lists the running trainModel under DurableTrainStatus="training", and not under "completed"', async () => {
  await waitFor(async () => {
    const page = client.workflow.list({ query: `WorkflowId="${handle.workflowId}" AND DurableTrainStatus="training"` });
    for await (const w of page) return w.workflowId === handle.workflowId;
    return false;
  }, 60_000, 'the run to be visible as training');
  const list = (status: string) => `${server.uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(`DurableTrainStatus="${status}"`)}`;
  const training = await browse(list('training'), 'dom');
  assert.ok(training.includes(handle.workflowId), 'the training run is listed');
  assert.ok(training.includes('trainModel'), 'with its workflow type');
  const completed = await browse(list('completed'), 'dom');
  assert.ok(completed.length > 10_000, 'the completed list rendered');
  assert.ok(!completed.includes(handle.workflowId), 'a training run is not listed as completed');
  const png = await browse(list('training'), 'png');
  assert.ok(fs.statSync(png).size > 10_000, 'a screenshot was taken');
  if (process.env.DT_UI_SCREENSHOT) fs.copyFileSync(png, process.env.DT_UI_SCREENSHOT);
});
