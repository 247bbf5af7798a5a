/** What the hyperparameterSearch end-to-end tests read back from a real server: histories, children, results. */
import assert from 'node:assert/strict';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { SearchResult, TrainModelResult } from '../src/workflows';
import type { TrainEpochResult } from '../src/activities/training';
import type { TrainUntilStepResult } from '../src/training/protocol';
import { openStore } from '../src/checkpoints/open-store';
import { readSearchLog, type SearchLogRow } from '../src/checkpoints/search-log';

export type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** Histories of every run of a continue-as-new chain, oldest first (followed by run id, no visibility lag). */
export async function chainHistories(client: Client, workflowId: string, firstRunId: string): Promise<HistoryEvent[][]> {
  const out: HistoryEvent[][] = [];
  let runId: string | undefined = firstRunId;
  while (runId) {
    const events: HistoryEvent[] = (await client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
    out.push(events);
    runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return out;
}

/**
 * Child workflow ids started, and the most children ever running at once, replaying each run's
 * events in order. A child ends for the search when its run sees it end, or (a trial carried across
 * a continue-as-new without draining, patch search-no-drain) when a later run's fetchTrialOutcome
 * for it completes: the search counts it as running until then.
 */
export function childStats(runs: HistoryEvent[][]): { started: string[]; maxConcurrent: number; openAtEnd: number } {
  const started: string[] = [];
  const open = new Set<string>();
  let maxConcurrent = 0;
  for (const events of runs) {
    // fetchTrialOutcome activities of this run: scheduled event id -> the trial's workflow id.
    const fetching = new Map<string, string>();
    for (const e of events) {
      if (e.childWorkflowExecutionStartedEventAttributes) {
        const id = e.childWorkflowExecutionStartedEventAttributes.workflowExecution!.workflowId!;
        started.push(id);
        open.add(id);
        maxConcurrent = Math.max(maxConcurrent, open.size);
      }
      const ended =
        e.childWorkflowExecutionCompletedEventAttributes ??
        e.childWorkflowExecutionFailedEventAttributes ??
        e.childWorkflowExecutionCanceledEventAttributes ??
        e.childWorkflowExecutionTimedOutEventAttributes ??
        e.childWorkflowExecutionTerminatedEventAttributes;
      if (ended) open.delete(ended.workflowExecution!.workflowId!);
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled?.activityType?.name === 'fetchTrialOutcome') {
        const data = scheduled.input?.payloads?.[0]?.data;
        if (data) fetching.set(String(e.eventId), (JSON.parse(Buffer.from(data).toString('utf8')) as { workflowId: string }).workflowId);
      }
      const fetched = e.activityTaskCompletedEventAttributes;
      if (fetched) {
        const id = fetching.get(String(fetched.scheduledEventId));
        if (id !== undefined) open.delete(id);
      }
    }
  }
  return { started, maxConcurrent, openAtEnd: open.size };
}

/** Results of one activity type in a workflow's history, in completion order. */
export async function activityResults<T>(handle: WorkflowHandle, activityType: string): Promise<T[]> {
  const events = (await handle.fetchHistory()).events ?? [];
  const types = new Map<string, string>();
  const out: T[] = [];
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) types.set(String(e.eventId), scheduled.activityType!.name!);
    const completed = e.activityTaskCompletedEventAttributes;
    if (completed && types.get(String(completed.scheduledEventId)) === activityType) {
      out.push(defaultPayloadConverter.fromPayload<T>(completed.result!.payloads![0]!));
    }
  }
  return out;
}

export async function childResult(client: Client, workflowId: string): Promise<TrainModelResult> {
  return (await client.workflow.getHandle(workflowId).result()) as TrainModelResult;
}

/** The trial with the lowest val_loss, the lower trial number on ties. */
export function rankBest(trials: SearchResult['trials']): number {
  return [...trials].sort((a, b) => a.value! - b.value! || a.trial - b.trial)[0]!.trial;
}

export function assertBestIsBest(result: SearchResult): void {
  const completed = result.trials.filter((t) => t.status === 'completed');
  const min = Math.min(...completed.map((t) => t.value!));
  const first = completed.find((t) => t.value === min)!;
  assert.equal(result.best.trial, first.trial, 'the best trial has the lowest val_loss (first such on ties)');
  assert.equal(result.best.value, min);
}

/**
 * What each epoch activity (trainEpoch) of a trainModel run trained: its train result, or for an
 * epoch it found already recorded, none (0 steps run at that epoch's step).
 */
export async function epochTraining(handle: WorkflowHandle): Promise<Array<Pick<TrainUntilStepResult, 'step' | 'stepsRun' | 'resumedFromStep'>>> {
  const epochs = await activityResults<TrainEpochResult>(handle, 'trainEpoch');
  return epochs.map((e) => e.trained ?? { step: e.record.step, stepsRun: 0, resumedFromStep: e.record.step });
}
/** Every row of the search's log, read page by page from the store. */
export async function logRows(searchUri: string): Promise<SearchLogRow[]> {
  const store = openStore(searchUri);
  const rows: SearchLogRow[] = [];
  for (let fromSeq = 0; ; ) {
    const page = await readSearchLog(store, { fromSeq, maxRows: 3 });
    rows.push(...page.rows);
    if (page.end) return rows;
    fromSeq = page.nextSeq;
  }
}

