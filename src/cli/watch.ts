/**
 * Following a run of any of our workflow types: one snapshot (`status`), or a live view until it
 * ends (`watch`). The live view redraws in place on a terminal and fits its width; piped, it prints
 * one line (or block) per change. Inside an epoch it reads the training activity's heartbeat.
 */
import { WorkflowFailedError, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import { isObject } from '../config/validate';
import type { RetrainProgress, RetrainResult } from '../workflows/retrain-model';
import type { TrainProgress } from '../workflows/train-model';
import { EXIT } from './args';
import type { Io } from './context';
import { observeTrain, StepRate } from './heartbeat';
import { LiveOutput } from './live-output';
import { renderRetrainLines, renderSearchLines, renderTrainLine, type TrainView } from './live-view';
import { renderProgress, renderRetrainProgress, renderRetrainResult, renderSearchProgress } from './render';

/** One line (or a few) describing where a workflow of any of our types is. */
export async function snapshot(handle: WorkflowHandle, type: string, json: boolean): Promise<string | undefined> {
  if (type === 'retrainModel') {
    const retrain = await handle.query<RetrainProgress>('retrainProgress').catch(() => undefined);
    if (!retrain) return undefined;
    const train =
      retrain.phase === 'training'
        ? await handle.client.getHandle(retrain.trainWorkflowId).query<TrainProgress>('progress').catch(() => undefined)
        : undefined;
    return json ? JSON.stringify({ retrain, train: train ?? null }) : renderRetrainProgress(retrain, train);
  }
  if (type === 'hyperparameterSearch') {
    const board = await handle.query<unknown>('leaderboard').catch(() => undefined);
    if (board === undefined) return undefined;
    return json ? JSON.stringify(board) : renderSearchProgress(board);
  }
  const progress = await handle.query<TrainProgress>('progress').catch(() => undefined);
  if (!progress) return undefined;
  return json ? JSON.stringify(progress) : renderProgress(progress);
}

function finishedLine(workflowId: string, type: string, result: unknown): string {
  if (type === 'retrainModel') return renderRetrainResult(workflowId, result as RetrainResult);
  const r = (isObject(result) ? result : {}) as { status?: unknown; modelUri?: unknown; best?: { modelUri?: unknown; metric?: unknown; value?: unknown } };
  if (type === 'hyperparameterSearch' && r.best) {
    return `Search ${workflowId} finished: best ${String(r.best.metric)} ${String(r.best.value)}; model ${String(r.best.modelUri)}`;
  }
  return `Run ${workflowId} finished: ${String(r.status ?? 'completed')}${r.modelUri ? `; model ${String(r.modelUri)}` : ''}`;
}

/** A train view as --json prints it: the progress query's answer plus where the running epoch is. */
const trainJson = (v: TrainView | undefined): unknown => (v ? { ...v.progress, inEpoch: v.inEpoch } : null);

/** Trials shown under a search's summary on a terminal. */
const SEARCH_ROWS = 8;

interface Frame {
  readonly lines: readonly string[];
  readonly json: string;
}

async function observe(handle: WorkflowHandle, description: WorkflowExecutionDescription, rates: StepRate, width: number, tty: boolean): Promise<Frame | undefined> {
  if (description.type === 'retrainModel') {
    const retrain = await handle.query<RetrainProgress>('retrainProgress').catch(() => undefined);
    if (!retrain) return undefined;
    const train = retrain.phase === 'training' ? await observeTrain(handle.client.getHandle(retrain.trainWorkflowId), rates) : undefined;
    return { lines: renderRetrainLines(retrain, train ?? null, width), json: JSON.stringify({ retrain, train: trainJson(train) }) };
  }
  if (description.type === 'hyperparameterSearch') {
    const board = await handle.query<unknown>('leaderboard').catch(() => undefined);
    if (board === undefined) return undefined;
    const running = new Map<string, TrainView>();
    if (tty) {
      // Each running trial's own progress and heartbeat (a search runs a few at a time).
      const trials = (isObject(board) && Array.isArray(board.trials) ? board.trials : []) as Array<{ status?: unknown; workflowId?: unknown }>;
      for (const t of trials) {
        if (t.status !== 'running' || typeof t.workflowId !== 'string') continue;
        const view = await observeTrain(handle.client.getHandle(t.workflowId), rates);
        if (view) running.set(t.workflowId, view);
      }
    }
    return { lines: renderSearchLines(board, running, width, tty ? SEARCH_ROWS : 0), json: JSON.stringify(board) };
  }
  const train = await observeTrain(handle, rates, description);
  return train && { lines: [renderTrainLine(train, width)], json: JSON.stringify(trainJson(train)) };
}

/** Follows a run: shows its progress whenever it changes; returns the exit code. */
export async function watch(handle: WorkflowHandle, io: Io, intervalMs: number, json: boolean): Promise<number> {
  const tty = io.tty && !json;
  const output = new LiveOutput({ out: io.out, tty });
  const rates = new StepRate();
  for (;;) {
    const description = await handle.describe();
    const status = description.status.name;
    // One column spare: a line that fills the last column leaves some terminals wrapping the cursor.
    const width = tty ? Math.max(20, (io.columns?.() || 80) - 1) : Infinity;
    const frame = await observe(handle, description, rates, width, tty);
    if (frame) output.show(json ? [frame.json] : frame.lines);
    if (status === 'CONTINUED_AS_NEW') {
      // Follow the chain: a handle without a run id points at its latest run.
      handle = handle.client.getHandle(handle.workflowId);
      continue;
    }
    if (status === 'COMPLETED') {
      const result = await handle.result();
      output.release();
      io.out(json ? JSON.stringify(result) : finishedLine(handle.workflowId, description.type, result));
      return EXIT.ok;
    }
    if (status !== 'RUNNING') {
      output.release();
      io.err(`Run ${handle.workflowId} ended: ${status}`);
      await handle.result().catch((err: unknown) => {
        if (err instanceof WorkflowFailedError) io.err(String(err.cause?.message ?? err.message));
      });
      return EXIT.runFailed;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
