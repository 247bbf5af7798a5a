/**
 * Replays the histories of real trainModel, hyperparameterSearch and retrainModel runs (recorded
 * by scripts/record-histories.ts into test/fixtures/histories/) against the current workflow code:
 * any non-determinism, i.e. a change that would break runs already in flight, fails here. No
 * server needed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { historyFromJson } from './history-json';

const DIR = path.join(__dirname, 'fixtures/histories');
interface Fixture {
  readonly file: string;
  readonly workflowId: string;
  readonly runId: string;
  readonly description: string;
}
const fixtures = JSON.parse(fs.readFileSync(path.join(DIR, 'index.json'), 'utf8')) as Fixture[];
const load = (f: Fixture) => historyFromJson(JSON.parse(fs.readFileSync(path.join(DIR, f.file), 'utf8')));

describe('replay of recorded histories', () => {
  let workflowBundle: WorkflowBundleWithSourceMap;
  before(async () => {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: new DefaultLogger('WARN') });
  });

  test('the fixtures cover the representative runs', () => {
    assert.deepEqual(
      fs.readdirSync(DIR).filter((f) => f !== 'index.json').sort(),
      fixtures.map((f) => f.file).sort(),
      'every history file is in index.json',
    );
    const text = (name: string) => fs.readFileSync(path.join(DIR, name), 'utf8');
    const all = fixtures.map((f) => text(f.file)).join('\n');
    for (const event of [
      'EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED',
      'EVENT_TYPE_WORKFLOW_EXECUTION_FAILED',
      'EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW',
      'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED',
      'EVENT_TYPE_ACTIVITY_TASK_CANCELED',
      'EVENT_TYPE_MARKER_RECORDED',
      'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES',
      'EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED',
      'EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED',
    ]) {
      assert.ok(all.includes(event), `some fixture has ${event}`);
    }
    // Every workflow type, trainModel's `resume` path (a halving survivor reading its rung-1 epochs),
    // and both shapes of an epoch: two activities (runs before train-model-epoch-activity) and one.
    // The searches: a PBT exploit's copy, a promotion's archive and live edits (an Update); no drain:
    // a trial's trialEnded signal and a later run's fetchTrialOutcome.
    for (const name of ['"trainModel"', '"hyperparameterSearch"', '"retrainModel"', '"readRunRecords"', '"trainUntilStep"', '"evaluateCheckpoint"', '"trainEpoch"', '"copyTrialCheckpoint"', '"archiveTrialModel"', '"editSearch"', '"fetchTrialOutcome"', '"trialEnded"']) {
      assert.ok(all.includes(name), `some fixture has ${name}`);
    }
  });

  test(`every recorded history replays deterministically (${fixtures.length} histories)`, async () => {
    const histories = fixtures.map((f) => ({ workflowId: f.workflowId, history: load(f) }));
    const failures: string[] = [];
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowBundle }, histories)) {
      replayed++;
      if (r.error) failures.push(`${r.workflowId}/${r.runId}: ${r.error.name}: ${r.error.message}`);
    }
    assert.equal(replayed, fixtures.length);
    assert.deepEqual(failures, []);
  });

  // The negative control: replay really compares commands. Rename the first scheduled activity.
  test('a history whose commands differ from the code is caught as non-determinism', async () => {
    const fixture = fixtures.find((f) => f.file === 'normal.json')!;
    const json = JSON.parse(fs.readFileSync(path.join(DIR, fixture.file), 'utf8'));
    const scheduled = json.events.find((e: { eventType: string }) => e.eventType === 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED');
    scheduled.activityTaskScheduledEventAttributes.activityType.name = 'somethingElse';
    await assert.rejects(Worker.runReplayHistory({ workflowBundle }, historyFromJson(json), fixture.workflowId), DeterminismViolationError);
  });
});
