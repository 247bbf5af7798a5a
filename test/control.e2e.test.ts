/**
 * Signals (stop, pause, resume), the progress query and the search attributes, from the client
 * and from the real `temporal` CLI, against a real dev server and worker.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { temporalCliPath } from '../src/dev-server';
import { SEARCH_ATTRIBUTES } from '../src/workflows/search-attributes';
import { pauseSignal, progressQuery, resumeSignal, stopSignal, type TrainProgress, type TrainModelResult } from '../src/workflows';
import { startStack, startWorker, uniqueId, waitFor, type InProcessWorker, type Stack } from './helpers/temporal';
import { checkpointWeights, modelWeights, tinyInput } from './e2e-support';

const run = promisify(execFile);
const EventType = temporal.api.enums.v1.EventType;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('control: signals, queries and search attributes', () => {
  let stack: Stack;
  let worker: InProcessWorker;

  /** Runs the real `temporal` CLI against this file's server; returns stdout. */
  async function cli(...args: string[]): Promise<string> {
    const { stdout } = await run(temporalCliPath(), [...args, '--address', stack.address], { timeout: 30_000 });
    return stdout;
  }
  async function cliProgress(workflowId: string): Promise<TrainProgress> {
    const out = await cli('workflow', 'query', '--workflow-id', workflowId, '--type', 'progress', '-o', 'json');
    const parsed = JSON.parse(out) as { queryResult: [TrainProgress] };
    return parsed.queryResult[0];
  }
  const progress = (h: WorkflowHandle) => h.query(progressQuery);
  const longRun = () => tinyInput({ maxEpochs: 400 });

  /** While paused, the run must not advance: same epoch and step over `ms`, status 'paused' throughout. */
  async function assertHeld(read: () => Promise<TrainProgress>, ms: number): Promise<TrainProgress> {
    const first = await read();
    assert.equal(first.status, 'paused');
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      await sleep(300);
      const now = await read();
      assert.equal(now.status, 'paused');
      assert.equal(now.epoch, first.epoch, 'a paused run must not advance epochs');
      assert.equal(now.step, first.step);
    }
    return first;
  }

  before(async () => {
    stack = await startStack();
    worker = await startWorker(stack.address);
  });
  after(async () => {
    await worker?.stop();
    await stack?.close();
  });

  test('from the client: pause holds the run, resume continues it, stop ends it with a model', async () => {
    const handle = await stack.client.workflow.start('trainModel', { taskQueue: worker.taskQueue, workflowId: uniqueId('ctl'), args: [longRun()] });
    await waitFor(async () => (await progress(handle)).epoch >= 3, 60_000, 'epoch 3');

    await handle.signal(pauseSignal);
    assert.equal((await progress(handle)).pauseRequested, true, 'the pause is acknowledged at once');
    await waitFor(async () => (await progress(handle)).status === 'paused', 30_000, 'status paused');
    const held = await assertHeld(() => progress(handle), 2500);
    // The search attribute says so too.
    const described = await handle.describe();
    assert.equal(described.typedSearchAttributes.get(SEARCH_ATTRIBUTES.status), 'paused');
    assert.equal(described.typedSearchAttributes.get(SEARCH_ATTRIBUTES.epoch), held.epoch);

    await handle.signal(resumeSignal);
    assert.equal((await progress(handle)).pauseRequested, false);
    await waitFor(async () => (await progress(handle)).epoch >= held.epoch + 3, 60_000, 'training to continue after resume');
    assert.notEqual((await progress(handle)).status, 'paused');

    // Stop while paused: the paused run ends at once, with the last completed epoch as its model.
    await handle.signal(pauseSignal);
    await waitFor(async () => (await progress(handle)).status === 'paused', 30_000, 'status paused again');
    const before = await progress(handle);
    await handle.signal(stopSignal);
    const result = (await handle.result()) as TrainModelResult;
    assert.equal(result.status, 'stopped');
    assert.equal(result.epochs, before.epoch);
    assert.equal(result.modelStep, result.step);
    assert.ok(fs.existsSync(fileURLToPath(result.modelUri)));
    assert.ok(modelWeights(result).equals(checkpointWeights(result.runUri, result.step)));
    assert.equal((await progress(handle)).status, 'stopped');
  });

  test('stop while training: the training activity is cancelled and the run ends stopped with the last epoch as its model', async () => {
    const stepsPerEpoch = 4000; // several seconds per epoch here; heartbeats every <= 1.6 s carry the cancellation
    const handle = await stack.client.workflow.start('trainModel', {
      taskQueue: worker.taskQueue,
      workflowId: uniqueId('stop'),
      args: [tinyInput({ maxEpochs: 5, stepsPerEpoch, timeouts: { heartbeatSeconds: 2 } })],
    });
    await waitFor(async () => (await progress(handle)).epoch >= 1, 60_000, 'epoch 1');
    await waitFor(async () => (await progress(handle)).status === 'training', 60_000, 'training of epoch 2');
    await sleep(1000);
    const signalled = Date.now();
    await handle.signal(stopSignal);
    const result = (await handle.result()) as TrainModelResult;
    const seconds = (Date.now() - signalled) / 1000;
    assert.equal(result.status, 'stopped');
    assert.equal(result.epochs, 1, 'the interrupted epoch 2 is not counted');
    assert.equal(result.step, stepsPerEpoch);
    assert.equal(result.modelStep, stepsPerEpoch);
    assert.ok(modelWeights(result).equals(checkpointWeights(result.runUri, stepsPerEpoch)));
    assert.ok(seconds < 4, `stopped ${seconds} s after the signal, before epoch 2 could finish`);
    const types = ((await handle.fetchHistory()).events ?? []).map((e) => e.eventType);
    assert.ok(types.includes(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED), 'cancel requested');
    assert.ok(types.includes(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED), 'the training activity ended cancelled');
  });

  test('from the temporal CLI: pause, query, resume, stop; search attributes in `workflow list`', async () => {
    const workflowId = uniqueId('cli');
    const handle = await stack.client.workflow.start('trainModel', { taskQueue: worker.taskQueue, workflowId, args: [longRun()] });
    await waitFor(async () => (await cliProgress(workflowId)).epoch >= 2, 60_000, 'epoch 2 (CLI query)');

    await cli('workflow', 'signal', '--workflow-id', workflowId, '--name', 'pause');
    await waitFor(async () => (await cliProgress(workflowId)).status === 'paused', 30_000, 'status paused (CLI query)');
    const held = await assertHeld(() => cliProgress(workflowId), 2500);
    assert.equal(held.runId, workflowId);
    assert.equal(held.maxEpochs, 400);

    const pausedList = await cli('workflow', 'list', '--query', `WorkflowId="${workflowId}" AND DurableTrainStatus="paused"`, '-o', 'json');
    assert.match(pausedList, new RegExp(workflowId));

    await cli('workflow', 'signal', '--workflow-id', workflowId, '--name', 'resume');
    await waitFor(async () => (await cliProgress(workflowId)).epoch >= held.epoch + 3, 60_000, 'training to continue after CLI resume');

    await cli('workflow', 'signal', '--workflow-id', workflowId, '--name', 'stop');
    const result = (await handle.result()) as TrainModelResult;
    assert.equal(result.status, 'stopped');
    assert.ok(result.epochs > held.epoch && result.epochs < 400);
    assert.equal((await cliProgress(workflowId)).status, 'stopped');

    // A run that completes, for the `completed` search.
    const doneId = uniqueId('done');
    const done = await stack.client.workflow.start('trainModel', { taskQueue: worker.taskQueue, workflowId: doneId, args: [tinyInput({ maxEpochs: 3 })] });
    assert.equal(((await done.result()) as TrainModelResult).status, 'completed');

    const listed = await waitFor(async () => {
      const out = await cli('workflow', 'list', '--query', 'DurableTrainStatus="completed"', '-o', 'json');
      return out.includes(doneId) && !out.includes(workflowId) ? out : undefined;
    }, 20_000, 'the completed run in `temporal workflow list --query DurableTrainStatus="completed"`');
    assert.match(listed, new RegExp(doneId));
    const byEpoch = await waitFor(async () => {
      const out = await cli('workflow', 'list', '--query', `DurableTrainStatus="stopped" AND DurableTrainEpoch=${result.epochs}`, '-o', 'json');
      return out.includes(workflowId) ? out : undefined;
    }, 20_000, 'the stopped run by status and epoch');
    assert.match(byEpoch, new RegExp(workflowId));

    // The client's list sees the same.
    const ids: string[] = [];
    await waitFor(async () => {
      ids.length = 0;
      for await (const w of stack.client.workflow.list({ query: `DurableTrainStatus="completed" AND DurableTrainEpoch=3` })) ids.push(w.workflowId);
      return ids.includes(doneId);
    }, 20_000, 'client list');
    assert.ok(!ids.includes(workflowId));
  });
});
