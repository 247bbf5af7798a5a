/**
 * Versioning workflow code for runs in flight: histories recorded BEFORE a patched change
 * (test/fixtures/versioning/, kept apart from test/fixtures/histories/, which
 * scripts/record-histories.ts wipes and re-records) replay against today's code, and a new run
 * (real dev server, scripted activities) takes the patched path. Removing a patch guard (calling
 * only the new code) fails the replay here.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Worker } from '@temporalio/worker';
import { trainModel } from '../../src/workflows';
import { INPUT_BOUNDS_PATCH, PBT_BOUNDS_PATCH, RESUME_NOT_SHORTER_PATCH, SEARCH_NO_DRAIN_PATCH, SEARCH_OWNER_PATCH, SEARCH_SINGLE_UPSERT_PATCH, SINGLE_UPSERT_PATCH, TRAIN_MODEL_REPORT_PATCH } from '../../src/workflows/patches';
import { workflowBundle } from '../helpers/temporal';
import { historyFromJson, historyToJson } from '../history-json';
import { Harness, trainInput } from './harness';

const DIR = path.join(__dirname, '../fixtures/versioning');
const WORKFLOWS = path.join(__dirname, '../../src/workflows');
interface Fixture {
  readonly file: string;
  readonly workflowId: string;
  readonly patch: string;
  readonly recordedAt: string;
  readonly description: string;
}
const fixtures = JSON.parse(fs.readFileSync(path.join(DIR, 'index.json'), 'utf8')) as Fixture[];

interface JsonEvent {
  readonly eventType: string;
  readonly markerRecordedEventAttributes?: { markerName?: string; details?: Record<string, { payloads?: Array<{ data?: string }> }> };
  readonly upsertWorkflowSearchAttributesEventAttributes?: { searchAttributes?: { indexedFields?: Record<string, unknown> } };
  readonly activityTaskScheduledEventAttributes?: { activityType?: { name?: string } };
}
const UPSERT = 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES';

/** The patch ids in a history's patch markers (`core_patch`, id in the JSON payload of `patch-data`). */
function patchIds(events: readonly JsonEvent[]): string[] {
  return events
    .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')
    .map((e) => {
      const data = e.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.[0]?.data ?? '';
      return (JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as { id: string }).id;
    });
}

const activitiesScheduled = (events: readonly JsonEvent[]): string[] =>
  events.filter((e) => e.eventType === 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED').map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? '');

/** What each patch's pre-patch fixture must show: the old branch, taken. */
const OLD_SHAPE: Readonly<Record<string, (events: readonly JsonEvent[]) => void>> = {
  // The best metric in an upsert of its own, right after the status/epoch upsert.
  [SINGLE_UPSERT_PATCH]: (events) => {
    const upserts = events.filter((e) => e.eventType === UPSERT);
    const bestOnly = upserts.filter((e) => Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}).join() === 'DurableTrainBestMetric');
    assert.ok(bestOnly.length > 0, 'the pre-patch history has best-metric-only upserts');
  },
  // A resume below its recorded epochs read them and finalized (the patched code fails instead).
  [RESUME_NOT_SHORTER_PATCH]: (events) => {
    assert.deepEqual(activitiesScheduled(events), ['readRunRecords', 'finalizeRun']);
    assert.ok(events.some((e) => e.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED'));
  },
  // An input past the nesting bound trained and completed (the patched code fails it at its start).
  [INPUT_BOUNDS_PATCH]: (events) => {
    assert.ok(activitiesScheduled(events).includes('trainEpoch'));
    assert.ok(events.some((e) => e.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED'));
  },
  // A PBT population × rounds past the bound started its trials (the patched code fails it at its start).
  [PBT_BOUNDS_PATCH]: (events) => {
    assert.ok(events.some((e) => e.eventType === 'EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED'));
  },
  // A search upserted its best metric on its own, beside the status/trials-finished upsert.
  [SEARCH_SINGLE_UPSERT_PATCH]: (events) => {
    const upserts = events.filter((e) => e.eventType === UPSERT);
    const bestOnly = upserts.filter((e) => Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}).join() === 'DurableTrainBestMetric');
    assert.ok(bestOnly.length > 0, 'the pre-patch search history has best-metric-only upserts');
  },
  // A search started its first trial with no claim of its folder before it.
  [SEARCH_NO_DRAIN_PATCH]: (events) => {
    // Drained: every trial the run started completed in it before it continued as new.
    const count = (type: string) => events.filter((e) => e.eventType === type).length;
    assert.ok(count('EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED') > 0);
    assert.equal(count('EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED'), count('EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED'));
    assert.equal(count('EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW'), 1);
  },
  [TRAIN_MODEL_REPORT_PATCH]: (events) => {
    assert.equal(events.some((e) => e.eventType === 'EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED'), false, 'no trialEnded signal');
    assert.ok(events.some((e) => e.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED'));
  },
  [SEARCH_OWNER_PATCH]: (events) => {
    assert.ok(events.some((e) => e.eventType === 'EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED'));
    assert.equal(activitiesScheduled(events).includes('claimSearchFolder'), false);
  },
};

describe('workflow versioning: patched changes and histories recorded before them', () => {
  test('every versioning fixture names a patch that is still in the workflow code', () => {
    const source = fs.readdirSync(WORKFLOWS, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => fs.readFileSync(path.join(WORKFLOWS, f), 'utf8'))
      .join('\n');
    assert.ok(fixtures.length > 0);
    assert.deepEqual(fs.readdirSync(DIR).filter((f) => f !== 'index.json').sort(), fixtures.map((f) => f.file).sort(), 'every file is in index.json');
    for (const patch of Object.keys(OLD_SHAPE)) assert.ok(fixtures.some((f) => f.patch === patch), `a fixture recorded before ${patch}`);
    for (const f of fixtures) {
      assert.ok(source.includes(`'${f.patch}'`), `${f.file}: patch ${f.patch} is gone from src/workflows: delete the fixture with it`);
    }
  });

  for (const f of fixtures) {
    test(`${f.file}, recorded before ${f.patch}, replays against the patched code`, async () => {
      const json = JSON.parse(fs.readFileSync(path.join(DIR, f.file), 'utf8')) as { events: JsonEvent[] };
      // The fixture really predates the change: no marker for it, and the old shape.
      assert.deepEqual(patchIds(json.events).filter((id) => id === f.patch), []);
      const oldShape = OLD_SHAPE[f.patch];
      assert.ok(oldShape, `${f.file}: say in OLD_SHAPE what the old branch of ${f.patch} looks like`);
      oldShape(json.events);

      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, historyFromJson(json), f.workflowId);
    });
  }

  describe('a run started after the change', () => {
    let h: Harness;
    before(async () => {
      h = await Harness.start();
    });
    after(async () => {
      await h?.close();
    });

    test(`records the ${SINGLE_UPSERT_PATCH} marker once and upserts once per publish; its history replays too`, () =>
      h.run({ evalMetrics: ({ epoch }) => ({ val_loss: 1 / epoch }) }, async ({ client, taskQueue, id }) => {
        const epochs = 4;
        const workflowId = id('versioning');
        const handle = await client.workflow.start(trainModel, { taskQueue, workflowId, args: [trainInput({ maxEpochs: epochs })] });
        assert.equal((await handle.result()).status, 'completed');
        const history = await handle.fetchHistory();
        const events = (JSON.parse(historyToJson(history)) as { events: JsonEvent[] }).events;
        // Once, whatever other patches a fresh run also records (each has a fixture of its own).
        assert.deepEqual(patchIds(events).filter((p) => p === SINGLE_UPSERT_PATCH), [SINGLE_UPSERT_PATCH]);
        // Publishes: 'training' and after-evaluation per epoch, then 'finalizing' and the outcome;
        // patched() itself adds its marker and one upsert of TemporalChangeVersion per run.
        const fields = (e: JsonEvent) => Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}).sort().join();
        const upserts = events.filter((e) => e.eventType === UPSERT).map(fields);
        assert.ok(upserts.includes('TemporalChangeVersion'));
        const ours = upserts.filter((f) => f.startsWith('DurableTrain'));
        assert.equal(ours.length, 2 * epochs + 2);
        assert.deepEqual(new Set(ours.slice(1)), new Set(['DurableTrainBestMetric,DurableTrainEpoch,DurableTrainStatus']), 'status, epoch and best metric in one upsert');
        const before = JSON.parse(fs.readFileSync(path.join(DIR, fixtures[0]!.file), 'utf8')) as { events: JsonEvent[] };
        console.log(`[versioning] ${epochs} epochs: ${events.length} events with the patch, ${before.events.length} in the pre-patch fixture`);
        await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, workflowId);
      }));
  });
});
