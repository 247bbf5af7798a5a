/**
 * Retraining on Temporal Schedules against a real dev server and worker: from code
 * (src/schedules.ts), from our CLI (`durable-train schedule …`) and from the real Temporal CLI
 * (`temporal schedule create …`, the README's line).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import type { ChampionRecord, DecisionRecord } from '../src/activities/champion';
import { RETRAIN_DECISION, joinUri } from '../src/checkpoints/layout';
import { temporalCliPath } from '../src/dev-server';
import { uniqueRetrainRunId } from '../src/config/retrain-config';
import {
  createRetrainSchedule,
  deleteRetrainSchedule,
  describeRetrainSchedule,
  listRetrainSchedules,
  pauseRetrainSchedule,
  triggerRetrainSchedule,
  unpauseRetrainSchedule,
} from '../src/schedules';
import type { RetrainResult } from '../src/workflows';
import { ROOT, runDurableTrain, tempDir, uniqueId, useStackAndWorker, waitFor } from './helpers/temporal';
import { tinyInput } from './e2e-support';

const execFileAsync = promisify(execFile);
const readJson = <T>(uri: string): T => JSON.parse(fs.readFileSync(fileURLToPath(uri), 'utf8')) as T;
/** Never fires during a test: 03:00 on 1 January. */
const YEARLY = '0 3 1 1 *';

const durableTrain = runDurableTrain;

/** Synthetic blobs; a `centresSeed` other than the eval set's 7 is corrupted data (wrong class centres). */
function blobsRetrain(modelName: string, centresSeed = 7): Record<string, unknown> {
  return {
    modelName,
    train: tinyInput({
      maxEpochs: 3,
      data: {
        train: { name: 'synthetic', params: { size: 256, noise: 1.5, seed: centresSeed } },
        eval: { name: 'synthetic', split: 'test', params: { size: 128, noise: 1.5, seed: 7 } },
      },
    }),
  };
}

/** Waits until the schedule has taken `n` actions and returns the n-th run's result. */
async function nthRun(client: Client, scheduleId: string, n: number): Promise<{ workflowId: string; result: RetrainResult }> {
  const workflowId = await waitFor(async () => (await describeRetrainSchedule(client, scheduleId)).recentRuns[n - 1]?.workflowId, 30_000, `run ${n} of ${scheduleId}`);
  return { workflowId, result: (await client.workflow.getHandle(workflowId).result()) as RetrainResult };
}

describe('retraining schedules', () => {
  const harness = useStackAndWorker();

  test('from code: create, list, pause, unpause; two triggers give one promotion and one rejection, metrics recorded; delete', async () => {
    const { client } = harness.stack;
    const scheduleId = uniqueId('nightly');
    const modelName = uniqueId('blobs');
    const handle = await createRetrainSchedule(client, { scheduleId, input: blobsRetrain(modelName), taskQueue: harness.worker.taskQueue, cron: [YEARLY] });
    try {
      await waitFor(async () => (await listRetrainSchedules(client)).some((s) => s.scheduleId === scheduleId), 30_000, 'the schedule in the list');
      await pauseRetrainSchedule(client, scheduleId, 'maintenance');
      const paused = await describeRetrainSchedule(client, scheduleId);
      assert.equal(paused.paused, true);
      assert.equal(paused.note, 'maintenance');
      await unpauseRetrainSchedule(client, scheduleId);
      assert.equal((await describeRetrainSchedule(client, scheduleId)).paused, false);
      assert.equal((await handle.describe()).policies.overlap, 'SKIP');

      // First trigger: no champion yet, so what it trains is promoted. A second trigger while it
      // runs is skipped by the overlap policy: two retrains of one model never run at once.
      await triggerRetrainSchedule(client, scheduleId);
      await triggerRetrainSchedule(client, scheduleId);
      const first = await nthRun(client, scheduleId, 1);
      assert.equal(first.result.promoted, true, first.result.reason);
      // The schedule handles a trigger asynchronously: wait until it has counted the second one as
      // skipped (on a loaded machine that can come after the first run's result), then check that
      // it started nothing.
      const afterFirst = await waitFor(async () => {
        const d = await handle.describe();
        return d.info.numActionsSkippedOverlap >= 1 && d;
      }, 30_000, 'the overlapping trigger counted as skipped');
      assert.equal(afterFirst.info.recentActions.length, 1, 'the overlapping trigger must not start a second retrain');
      // The schedule appended `-<ISO time>` to the workflow id: the run id is that, sanitized, plus a
      // hash of the exact ids (characters were replaced).
      assert.match(first.workflowId, new RegExp(`^${scheduleId}-\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$`));
      assert.equal(first.result.train.runId, uniqueRetrainRunId(modelName, first.workflowId));
      assert.ok(first.result.train.runId.startsWith(`${modelName}-${first.workflowId.replace(/:/g, '-')}-`));

      // The new data that arrives next is corrupted (wrong class centres): the challenger loses.
      await handle.update((s) => ({ ...s, action: { ...s.action, args: [blobsRetrain(modelName, 99)] } }));
      await triggerRetrainSchedule(client, scheduleId);
      const second = await nthRun(client, scheduleId, 2);
      assert.equal(second.result.promoted, false, second.result.reason);

      // One promotion, one rejection, both models' metrics on the same eval set, on disk.
      const pointer = readJson<ChampionRecord>(first.result.championUri);
      assert.equal(pointer.modelUri, first.result.train.modelUri, 'the champion is still the first model');
      assert.equal(pointer.retrain.workflowId, first.workflowId);
      const d1 = readJson<DecisionRecord>(first.result.decision.decisionUri);
      const d2 = readJson<DecisionRecord>(second.result.decision.decisionUri);
      assert.deepEqual([d1.number, d1.promoted, d2.number, d2.promoted], [1, true, 2, false]);
      assert.equal(d2.champion?.modelUri, first.result.train.modelUri);
      assert.equal(d2.champion?.metrics.val_loss, pointer.metrics.val_loss, 'the champion re-evaluated on the same eval set');
      assert.ok(d2.challenger.metrics.val_loss! > d2.champion!.metrics.val_loss!, d2.reason);
      assert.ok(typeof d2.challenger.metrics.val_accuracy === 'number');
      assert.deepEqual(readJson<DecisionRecord>(joinUri(second.result.train.runUri, RETRAIN_DECISION)), d2);
    } finally {
      await deleteRetrainSchedule(client, scheduleId).catch(() => undefined);
    }
    await assert.rejects(describeRetrainSchedule(client, scheduleId), ScheduleNotFoundError);
    await waitFor(async () => !(await listRetrainSchedules(client)).some((s) => s.scheduleId === scheduleId), 30_000, 'the schedule to leave the list');
  });

  test("the README's `temporal schedule create …` line, then our CLI: list, pause, unpause, trigger, delete", async () => {
    const scheduleId = uniqueId('mnist-nightly');
    // The README line, with this test's task queue and server.
    await execFileAsync(temporalCliPath(), [
      'schedule', 'create', '--schedule-id', scheduleId, '--cron', '0 3 * * *', '--overlap-policy', 'Skip',
      '--type', 'retrainModel', '--task-queue', harness.worker.taskQueue, '--workflow-id', scheduleId,
      '--input-file', path.join(ROOT, 'examples/mnist-retrain.json'), '--address', harness.stack.address,
    ]);
    try {
      const listed = await waitFor(async () => {
        const r = await durableTrain(['schedule', 'list', '--json'], harness.cliEnv);
        const rows = JSON.parse(r.stdout) as Array<{ scheduleId: string; paused: boolean; nextActionTimes: string[] }>;
        return rows.find((row) => row.scheduleId === scheduleId);
      }, 30_000, 'the schedule in `durable-train schedule list`');
      assert.equal(listed.paused, false);
      assert.match(listed.nextActionTimes[0]!, /T03:00:00/);

      assert.equal((await durableTrain(['schedule', 'pause', scheduleId, '--note', 'data late'], harness.cliEnv)).code, 0);
      const described = JSON.parse((await durableTrain(['schedule', 'describe', scheduleId, '--json'], harness.cliEnv)).stdout);
      assert.equal(described.paused, true);
      assert.equal(described.note, 'data late');
      assert.equal(described.input.modelName, 'mnist-mlp');
      assert.equal((await durableTrain(['schedule', 'unpause', scheduleId], harness.cliEnv)).code, 0);
      assert.match((await durableTrain(['schedule', 'list'], harness.cliEnv)).stdout, new RegExp(`${scheduleId}\\tactive\\tnext \\S+T03:00:00`));

      const triggered = await durableTrain(['schedule', 'trigger', scheduleId], harness.cliEnv);
      assert.equal(triggered.code, 0, triggered.stderr);
      const run = await nthRun(harness.stack.client, scheduleId, 1);
      assert.equal(run.result.promoted, true, run.result.reason);
      assert.equal(run.result.modelName, 'mnist-mlp');
      const shown = await durableTrain(['status', run.workflowId], harness.cliEnv);
      assert.match(shown.stdout, /\(retrainModel\): COMPLETED\nretrain mnist-mlp: promoted/);
    } finally {
      const deleted = await durableTrain(['schedule', 'delete', scheduleId], harness.cliEnv);
      assert.equal(deleted.code, 0, deleted.stderr);
    }
    const gone = await durableTrain(['schedule', 'describe', scheduleId], harness.cliEnv);
    assert.equal(gone.code, 3, 'a missing schedule exits 3');
  });

  test('our CLI: schedule create validates the file first, creates with overlap Skip, refuses a duplicate id', async () => {
    const dir = tempDir();
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ modelName: 'm', train: { ...tinyInput(), maxEpochs: 0 } }));
    const scheduleId = uniqueId('cli-sched');
    const refused = await durableTrain(['schedule', 'create', bad, '--schedule-id', scheduleId, '--every', '24h'], harness.cliEnv);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /bad\.json: Invalid retrainModel input:\n {2}- Expected `train\.maxEpochs` to be a whole number from 1 to 1000000, got `0` \(number\)/);
    await assert.rejects(describeRetrainSchedule(harness.stack.client, scheduleId), ScheduleNotFoundError);

    const good = path.join(dir, 'good.json');
    fs.writeFileSync(good, JSON.stringify(blobsRetrain(uniqueId('m'))));
    const created = await durableTrain(['schedule', 'create', good, '--schedule-id', scheduleId, '--every', '24h', '--paused'], harness.cliEnv);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, new RegExp(`Created schedule ${scheduleId} \\(every 24h\\)`));
    try {
      const { stdout } = await execFileAsync(temporalCliPath(), ['schedule', 'describe', '--schedule-id', scheduleId, '-o', 'json', '--address', harness.stack.address]);
      const d = JSON.parse(stdout);
      assert.equal(d.schedule.policies.overlapPolicy, 'SCHEDULE_OVERLAP_POLICY_SKIP');
      assert.equal(d.schedule.state.paused, true);
      const again = await durableTrain(['schedule', 'create', good, '--schedule-id', scheduleId, '--manual'], harness.cliEnv);
      assert.equal(again.code, 2);
      assert.match(again.stderr, /already exists/);
      const badEvery = await durableTrain(['schedule', 'create', good, '--schedule-id', `${scheduleId}-x`, '--every', 'nightly'], harness.cliEnv);
      assert.equal(badEvery.code, 2);
      assert.match(badEvery.stderr, /Expected `--every` to be a duration/);
    } finally {
      await deleteRetrainSchedule(harness.stack.client, scheduleId);
    }
  });
});
