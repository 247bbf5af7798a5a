/** Following a run of any of our workflow types: one snapshot, or every change until it ends. */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { isObject } from '../config/validate';
import type { RetrainProgress, RetrainResult } from '../workflows/retrain-model';
import type { TrainProgress } from '../workflows/train-model';
import { EXIT } from './args';
import type { Io } from './context';
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

/** Follows a run: prints a line whenever progress changes; returns the exit code. */
export async function watch(handle: WorkflowHandle, io: Io, intervalMs: number, json: boolean): Promise<number> {
  let lastShown = '';
  for (;;) {
    const description = await handle.describe();
    const status = description.status.name;
    const line = await snapshot(handle, description.type, json);
    if (line !== undefined && line !== lastShown) {
      io.out(line);
      lastShown = line;
    }
    if (status === 'CONTINUED_AS_NEW') {
      // Follow the chain: a handle without a run id points at its latest run.
      handle = handle.client.getHandle(handle.workflowId);
      continue;
    }
    if (status === 'COMPLETED') {
      const result = await handle.result();
      io.out(json ? JSON.stringify(result) : finishedLine(handle.workflowId, description.type, result));
      return EXIT.ok;
    }
    if (status !== 'RUNNING') {
      io.err(`Run ${handle.workflowId} ended: ${status}`);
      await handle.result().catch((err: unknown) => {
        if (err instanceof WorkflowFailedError) io.err(String(err.cause?.message ?? err.message));
      });
      return EXIT.runFailed;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
