/** One-shot text for `status` and the finished lines: the live view's renderers at full width. */
import type { RetrainScheduleRow } from '../schedules';
import type { RetrainProgress, RetrainResult } from '../workflows/retrain-model';
import type { TrainProgress } from '../workflows/train-model';
import { duration, significant } from './human';
import { renderRetrainLines, renderSearchLines, renderTrainLine } from './live-view';

export function renderProgress(p: TrainProgress): string {
  return renderTrainLine({ progress: p, inEpoch: null }, Infinity);
}

/** A retrain: its phase, the champion it started from, and (while training) the training run's progress line. */
export function renderRetrainProgress(r: RetrainProgress, train: TrainProgress | undefined): string {
  return renderRetrainLines(r, train ? { progress: train, inEpoch: null } : null, Infinity).join('\n');
}

export function renderRetrainResult(workflowId: string, r: RetrainResult): string {
  return `Retrain ${workflowId} finished: ${r.promoted ? 'promoted' : 'rejected'} (${r.reason}); champion ${r.champion.modelUri}; decision ${r.decision.decisionUri}`;
}

/** A hyperparameterSearch's leaderboard query, read loosely (only the fields shown here are relied on). */
export function renderSearchProgress(board: unknown): string {
  return renderSearchLines(board, new Map(), Infinity, 0).join('\n');
}

export function renderScheduleRow(r: RetrainScheduleRow): string {
  const next = r.nextActionTimes[0] ?? '-';
  const last = r.recentRuns[r.recentRuns.length - 1]?.workflowId ?? '-';
  return `${r.scheduleId}\t${r.paused ? 'paused' : 'active'}\tnext ${next}\tlast ${last}${r.note ? `\t${r.note}` : ''}`;
}

/** A row of `list` (its --json form keeps every digit). */
export interface ListRow {
  readonly workflowId: string;
  readonly type: string;
  readonly status: string;
  readonly trainStatus: unknown;
  readonly epoch: unknown;
  readonly bestMetric: unknown;
  readonly startTime: string;
  readonly closeTime: string | null;
}

/** `list` for people: the best metric to 4 significant digits, how long the run took (or has been going). */
export function renderListRow(r: ListRow, nowMs: number): string {
  const best = typeof r.bestMetric === 'number' ? significant(r.bestMetric) : String(r.bestMetric ?? '-');
  const started = Date.parse(r.startTime);
  const time = r.closeTime ? `took ${duration((Date.parse(r.closeTime) - started) / 1000)}` : `started ${duration((nowMs - started) / 1000)} ago`;
  return `${r.workflowId}\t${r.type}\t${r.status}\t${String(r.trainStatus ?? '-')}\tepoch ${String(r.epoch ?? '-')}\tbest ${best}\t${time}`;
}
