/**
 * Runs started on a worker whose trainer is already warm replay on a fresh worker. With a warm
 * trainer the first workflow task's describeWorker local activity answers within a millisecond;
 * when trainers were started at worker start, a history recorded that way once failed to replay
 * on another worker (nondeterminism at the dt-check-uris patch: src/worker.ts). This records
 * such runs (the second and third on one worker) and replays each with a new workflow bundle.
 *
 *   node --import tsx --test test/warm-worker-replay.e2e.test.ts
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import { tinyInput } from './e2e-support';
import { uniqueId, useStackAndWorker } from './helpers/temporal';

const { EventType } = temporal.api.enums.v1;
const harness = useStackAndWorker();

test('runs on a warm worker: every history replays on a fresh worker', async (t) => {
  const input = tinyInput({ stepsPerEpoch: 5, maxEpochs: 2 });
  const run = async (): Promise<{ id: string; ms: number }> => {
    const id = uniqueId('warm');
    const from = Date.now();
    await (await harness.stack.client.workflow.start('trainModel', { taskQueue: harness.worker.taskQueue, workflowId: id, args: [input] })).result();
    return { id, ms: Date.now() - from };
  };
  const cold = await run(); // loads TensorFlow in the trainer
  const warm = [await run(), await run()];
  t.diagnostic(`cold run ${cold.ms} ms, warm runs ${warm.map((r) => r.ms).join(', ')} ms`);
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: new DefaultLogger('WARN') });
  for (const { id } of [cold, ...warm]) {
    const history = await harness.stack.client.workflow.getHandle(id).fetchHistory();
    const types = (history.events ?? []).map((e) => e.eventType);
    assert.ok(types.includes(EventType.EVENT_TYPE_MARKER_RECORDED), `${id}: its local activities and patches are markers`);
    await Worker.runReplayHistory({ workflowBundle }, history, id);
  }
});
