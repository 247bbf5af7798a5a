/**
 * Following a run of any of our workflow types: one snapshot (`status`), or a live view until it
 * ends (`watch`). The live view redraws in place on a terminal and fits its width; piped, it prints
 * one line (or block) per change. Inside an epoch it reads the training activity's heartbeat.
 */
import { WorkflowFailedError, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import { isObject } from '../config/validate';
import type { RetrainProgress, RetrainResult } from '../workflows/retrain-model';
import { EXIT } from './args';
import type { Io } from './context';
import { truncate } from './fit';
import { observeTrain, Observer, queryWithin } from './heartbeat';
import { LiveOutput } from './live-output';
import { renderRetrainLines, renderSearchLines, renderTrainLine, type TrainView } from './live-view';
import { renderRetrainResult } from './render';
import { forTerminal, jsonForTerminal } from './terminal';
import { rootCauseOfError, troubleDetails, troubleOf, troubleSummary, type Trouble } from './trouble';
import { WORKFLOW_TYPES } from '../workflow-types';

function finishedLine(workflowId: string, type: string, result: unknown): string {
  if (type === WORKFLOW_TYPES.retrain) return renderRetrainResult(workflowId, result as RetrainResult);
  const r = (isObject(result) ? result : {}) as { status?: unknown; modelUri?: unknown; best?: { modelUri?: unknown; metric?: unknown; value?: unknown } };
  if (type === WORKFLOW_TYPES.search && r.best) {
    return `Search ${forTerminal(workflowId)} finished: best ${forTerminal(r.best.metric)} ${forTerminal(r.best.value)}; model ${forTerminal(r.best.modelUri)}`;
  }
  return `Run ${forTerminal(workflowId)} finished: ${forTerminal(r.status ?? 'completed')}${r.modelUri ? `; model ${forTerminal(r.modelUri)}` : ''}`;
}

/** A train view as --json prints it: the progress query's answer plus where the running epoch is. */
const trainJson = (v: TrainView | undefined): unknown => (v ? { ...v.progress, inEpoch: v.inEpoch, ...(v.closed !== undefined && { closed: v.closed }) } : null);

/** Trouble as --json prints it (null when there is none). */
const troubleJson = (t: Trouble): unknown => (troubleSummary(t) === null ? null : t);

/** Trials shown under a search's summary on a terminal. */
const SEARCH_ROWS = 8;

export interface Frame {
  readonly lines: readonly string[];
  /** The --json form (its object; printed with jsonForTerminal). */
  readonly json: unknown;
}

/** A train run's lines: its progress line (or, with no answer, its trouble alone) and the trouble's details. */
function trainLines(workflowId: string, observed: { view: TrainView | undefined; trouble: Trouble }, width: number, indent = ''): string[] {
  const { view, trouble } = observed;
  const summary = troubleSummary(trouble);
  const head = view ? renderTrainLine({ ...view, trouble }, width - indent.length) : summary ? truncate(`${forTerminal(workflowId)}: ${summary}`, width - indent.length) : undefined;
  return [...(head !== undefined ? [`${indent}${head}`] : []), ...troubleDetails(trouble).map((l) => truncate(`${indent}${l}`, width))];
}

/**
 * What a workflow of any of our types looks like now, as lines that fit `width` and as JSON: a
 * train line (with the step inside the running epoch and any trouble), a retrain's phase above its
 * training run's line, a search's summary above (on a terminal) its trials.
 */
export async function observe(handle: WorkflowHandle, description: WorkflowExecutionDescription, observer: Observer, width: number, rows: number): Promise<Frame | undefined> {
  if (description.type === WORKFLOW_TYPES.retrain) {
    const own = await troubleOf(handle, description);
    if (own.noWorker?.what === 'workflow') return { lines: trainLines(handle.workflowId, { view: undefined, trouble: own }, width), json: { retrain: null, train: null, trouble: own } };
    const retrain = await queryWithin<RetrainProgress>(handle, 'retrainProgress');
    if (!retrain) return undefined;
    const child = retrain.phase === 'training' ? await observeTrain(handle.client.getHandle(retrain.trainWorkflowId), observer) : undefined;
    const lines = renderRetrainLines(retrain, null, width);
    // The training run's line (and its trouble) under the retrain's; the retrain's own trouble (its evaluation) after.
    const under = child ? trainLines(retrain.trainWorkflowId, child, width, '  ') : [];
    const ownLines = troubleSummary(own) ? trainLines(handle.workflowId, { view: undefined, trouble: own }, width, '  ') : [];
    return {
      lines: [lines[0]!, ...under, ...ownLines, ...lines.slice(1)],
      json: { retrain, train: trainJson(child?.view), trouble: troubleJson(child && troubleSummary(child.trouble) ? child.trouble : own) },
    };
  }
  if (description.type === WORKFLOW_TYPES.search) {
    const own = await troubleOf(handle, description);
    if (own.noWorker?.what === 'workflow') return { lines: trainLines(handle.workflowId, { view: undefined, trouble: own }, width), json: { trouble: own } };
    const board = await queryWithin<unknown>(handle, 'leaderboard');
    if (board === undefined) return undefined;
    const running = new Map<string, TrainView>();
    if (rows > 0) {
      // Each running trial's own progress and heartbeat (a search runs a few at a time).
      const trials = (isObject(board) && Array.isArray(board.trials) ? board.trials : []) as Array<{ status?: unknown; workflowId?: unknown }>;
      for (const t of trials) {
        if (t.status !== 'running' || typeof t.workflowId !== 'string') continue;
        const { view, trouble } = await observeTrain(handle.client.getHandle(t.workflowId), observer);
        if (view) running.set(t.workflowId, { ...view, trouble });
      }
    }
    return { lines: renderSearchLines(board, running, width, rows), json: board };
  }
  const observed = await observeTrain(handle, observer, description);
  const lines = trainLines(handle.workflowId, observed, width);
  return lines.length > 0 ? { lines, json: { ...(trainJson(observed.view) as object | null), trouble: troubleJson(observed.trouble) } } : undefined;
}

/** The root cause of a closed run's failure (null when it completed or the failure cannot be read). */
export async function failureOf(handle: WorkflowHandle): Promise<string | null> {
  return handle.result().then(
    () => null,
    (err: unknown) => (err instanceof WorkflowFailedError ? rootCauseOfError(err) : null),
  );
}

/** Follows a run: shows its progress whenever it changes; returns the exit code. */
export async function watch(handle: WorkflowHandle, io: Io, intervalMs: number, json: boolean): Promise<number> {
  const tty = io.tty && !json;
  const output = new LiveOutput({ out: io.out, tty });
  const observer = new Observer();
  for (;;) {
    const description = await handle.describe();
    const status = description.status.name;
    // One column spare: a line that fills the last column leaves some terminals wrapping the cursor.
    const width = tty ? Math.max(20, (io.columns?.() || 80) - 1) : Infinity;
    const frame = await observe(handle, description, observer, width, tty ? SEARCH_ROWS : 0);
    if (frame) output.show(json ? [jsonForTerminal(frame.json)] : frame.lines);
    if (status === 'CONTINUED_AS_NEW') {
      // Follow the chain: a handle without a run id points at its latest run.
      handle = handle.client.getHandle(handle.workflowId);
      continue;
    }
    if (status === 'COMPLETED') {
      const result = await handle.result();
      output.release();
      io.out(json ? jsonForTerminal(result) : finishedLine(handle.workflowId, description.type, result));
      return EXIT.ok;
    }
    if (status !== 'RUNNING') {
      output.release();
      const cause = await failureOf(handle);
      io.err(`Run ${forTerminal(handle.workflowId)} ended: ${status}${cause ? `\ncause: ${cause}` : ''}`);
      return EXIT.runFailed;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
