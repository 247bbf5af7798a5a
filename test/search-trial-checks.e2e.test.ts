/**
 * A search's trial asks the worker nothing its search already asked (src/workflows/search-trial-checks.ts),
 * on a real dev server and worker with real training: each one-epoch trial of a random search
 * records no describeWorker or checkUris local activity and no patch marker, upserts its search
 * attributes once, and exports in its epoch activity (no finalizeRun); only the best
 * trial has a learning curve, drawn by the search at its end; a two-epoch
 * trial exports with its second epoch; a standalone trainModel still checks and finalizes apart; `searchTrial` from anyone but the
 * trial's own search fails InvalidConfig naming it, before any activity.
 *
 *   DT_TEST_TEMPORAL_ADDRESS=$(cat /work/wt/SERVER_ADDRESS) node --import tsx --test test/search-trial-checks.e2e.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import type { SearchResult, TrainModelResult } from '../src/workflows';
import { EPOCH_ACTIVITY_PATCH, SINGLE_UPSERT_PATCH, URI_CHECK_PATCH } from '../src/workflows/patches';
import { LEARNING_CURVE_PNG, LEARNING_CURVE_SVG, joinUri } from '../src/checkpoints/layout';
import { invalidConfigFailure, uniqueId, useStackAndWorker } from './helpers/temporal';
import { tinyInput } from './e2e-support';
import type { HistoryEvent } from './search-e2e-support';

const BASE = tinyInput({ stepsPerEpoch: 2, maxEpochs: 1 });

/** The local activities (by type) and patch ids a history recorded, its activities (by type) and its search-attribute upserts. */
function markersOf(events: HistoryEvent[]): { localActivities: string[]; patches: string[]; activities: string[]; upserts: number } {
  const localActivities: string[] = [];
  const patches: string[] = [];
  for (const e of events) {
    const details = e.markerRecordedEventAttributes?.details;
    if (!details) continue;
    const text = (key: string) => Buffer.from(details[key]?.payloads?.[0]?.data ?? []).toString('utf8');
    if (details.data) localActivities.push((JSON.parse(text('data')) as { activity_type: string }).activity_type);
    if (details['patch-data']) patches.push((JSON.parse(text('patch-data')) as { id: string }).id);
  }
  const activities = events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
  // The run's own upserts (DurableTrain*), not the TemporalChangeVersion one each patch adds.
  const upserts = events.filter((e) => Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}).some((k) => k.startsWith('DurableTrain'))).length;
  return { localActivities, patches, activities, upserts };
}

describe('a search trial skips the checks its search made', () => {
  const env = useStackAndWorker();

  test("a random search's one-epoch trials: no local activity, no patch marker, one upsert; a standalone run still checks", async () => {
    const { client } = env.stack;
    const taskQueue = env.worker.taskQueue;
    const input = { base: BASE, strategy: 'random', maxTrials: 3, maxParallel: 2, seed: 1, space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.1] } } };
    const search = await client.workflow.start('hyperparameterSearch', { taskQueue, workflowId: uniqueId('checked-search'), args: [input] });
    const result = (await search.result()) as SearchResult;
    assert.equal(result.trials.length, 3);
    for (const trial of result.trials) {
      assert.equal(trial.status, 'completed');
      const handle = client.workflow.getHandle(trial.workflowId!);
      const events = (await handle.fetchHistory()).events ?? [];
      const m = markersOf(events);
      assert.deepEqual(m.localActivities, [], `${trial.id}: no describeWorker or checkUris`);
      // Patches older than searchTrial are taken without asking (a marker and a TemporalChangeVersion upsert each).
      assert.deepEqual(m.patches.filter((p) => [URI_CHECK_PATCH, SINGLE_UPSERT_PATCH, EPOCH_ACTIVITY_PATCH].includes(p)), [], `${trial.id}: no marker of a patch older than searchTrial`);
      assert.equal(m.upserts, 1, `${trial.id}: one search-attribute upsert`);
      assert.deepEqual(m.activities, ['trainEpoch'], `${trial.id}: the epoch activity exports, no finalizeRun`);
      const child = (await handle.result()) as TrainModelResult;
      assert.equal(child.status, 'completed');
      assert.equal(child.modelStep, 2);
      assert.ok(fs.existsSync(fileURLToPath(child.modelUri)), `${trial.id}: its model is exported`);
      const jsonl = fs.readFileSync(fileURLToPath(child.metricsUri), 'utf8').trim().split('\n');
      assert.deepEqual(jsonl.map((l) => (JSON.parse(l) as { epoch: number }).epoch), [1], `${trial.id}: metrics.jsonl has its epoch`);
      assert.ok(child.backend.length > 0, `${trial.id}: the backend from its trained epoch, got ${JSON.stringify(child.backend)}`);
      const attrs = (await handle.describe()).searchAttributes as Record<string, unknown[]>;
      assert.deepEqual(attrs.DurableTrainStatus, ['completed'], `${trial.id}: its status is published at its end`);
      // A learning curve only where a person looks: the search's best trial.
      const best = trial.id === result.best?.id;
      for (const name of [LEARNING_CURVE_SVG, LEARNING_CURVE_PNG]) {
        assert.equal(fs.existsSync(fileURLToPath(joinUri(trial.runUri, name))), best, `${trial.id} (${best ? 'the best' : 'not the best'}): ${name}`);
      }
    }

    const standalone = await client.workflow.start('trainModel', { taskQueue, workflowId: uniqueId('standalone'), args: [BASE] });
    await standalone.result();
    const m = markersOf((await standalone.fetchHistory()).events ?? []);
    assert.deepEqual(m.localActivities, ['describeWorker', 'checkUris'], 'a run of its own checks on the worker');
    assert.deepEqual(m.activities, ['trainEpoch', 'finalizeRun'], 'and finalizes in an activity of its own');
  });

  test('a two-epoch trial exports its second epoch with it, the same model a finalizeRun exports', async () => {
    const { client } = env.stack;
    const taskQueue = env.worker.taskQueue;
    const base: Record<string, unknown> = { ...BASE, maxEpochs: 2 };
    const input = { base, strategy: 'random', maxTrials: 1, maxParallel: 1, seed: 2, space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.1] } } };
    const result = (await (await client.workflow.start('hyperparameterSearch', { taskQueue, workflowId: uniqueId('two-epochs'), args: [input] })).result()) as SearchResult;
    const trial = result.trials[0]!;
    const handle = client.workflow.getHandle(trial.workflowId!);
    const m = markersOf((await handle.fetchHistory()).events ?? []);
    assert.deepEqual(m.activities, ['trainEpoch', 'trainEpoch']);
    assert.equal(m.upserts, 2, 'one after the first epoch (more to train), one at the end');
    const child = (await handle.result()) as TrainModelResult;
    assert.equal(child.modelStep, 4);
    // The same trial as a run of its own (same input but its folder): finalizeRun exports the same weights.
    const alone = (await (await client.workflow.start('trainModel', { taskQueue, workflowId: uniqueId('alone'), args: [{ ...base, hyperparameters: { ...(base.hyperparameters as object), learningRate: child.learningRate } }] })).result()) as TrainModelResult;
    const weights = (r: TrainModelResult) => fs.readFileSync(fileURLToPath(r.modelUri).replace(/model\.json$/, 'weights.bin'));
    assert.ok(weights(child).equals(weights(alone)), 'bit for bit the same exported weights');
  });

  test('searchTrial on a run no search started fails InvalidConfig naming it, before any activity', async () => {
    const handle = await env.stack.client.workflow.start('trainModel', {
      taskQueue: env.worker.taskQueue,
      workflowId: uniqueId('forged'),
      args: [{ ...BASE, runId: 'forged', checkpoint: { uri: 'file:///tmp/dt-forged-root' }, searchTrial: { mlflow: false } }],
    });
    const failure = await invalidConfigFailure(handle);
    assert.match(failure.message, /searchTrial/);
    const events = (await handle.fetchHistory()).events ?? [];
    assert.equal(events.filter((e) => e.activityTaskScheduledEventAttributes || e.markerRecordedEventAttributes).length, 0, 'nothing scheduled, nothing asked');
  });
});
