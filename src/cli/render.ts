/** Text rendering of a run's progress for the CLI: a bar, the epoch/step counters, metrics, ETA. */
import type { RetrainScheduleRow } from '../schedules';
import type { RetrainProgress, RetrainResult } from '../workflows/retrain-model';
import type { TrainProgress } from '../workflows/train-model';

function bar(fraction: number, width = 24): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}

function fmt(v: number | undefined): string {
  return v === undefined ? '-' : Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : v.toFixed(4);
}

export function renderProgress(p: TrainProgress): string {
  const fraction = p.totalSteps > 0 ? p.step / p.totalSteps : 0;
  const metrics = p.latest
    ? Object.entries(p.latest.metrics).map(([k, v]) => `${k} ${fmt(v)}`).join('  ')
    : 'no epoch finished yet';
  const best = p.best ? `best ${p.best.metric} ${fmt(p.best.value)} @ epoch ${p.best.epoch}` : '';
  const eta = p.secondsPerEpoch !== null && p.status === 'training' ? `  ETA ${duration((p.maxEpochs - p.epoch) * p.secondsPerEpoch)}` : '';
  return `${bar(fraction)} epoch ${p.epoch}/${p.maxEpochs} step ${p.step}/${p.totalSteps} ${p.status}  ${metrics}  ${best}  lr ${fmt(p.learningRate)}${eta}`.trimEnd();
}

/** A retrain: its phase, the champion it started from, and (while training) the training run's progress line. */
export function renderRetrainProgress(r: RetrainProgress, train: TrainProgress | undefined): string {
  const champion = r.champion
    ? `champion ${r.champion.runId} (${r.champion.metric} ${fmt(r.champion.metrics[r.champion.metric])})`
    : 'no champion yet';
  const head = `retrain ${r.modelName}: ${r.phase}  ${champion}  training run ${r.trainWorkflowId}`;
  const decision = r.decision ? `\n  ${r.decision.promoted ? 'promoted' : 'rejected'}: ${r.decision.reason}` : '';
  return `${head}${train ? `\n  ${renderProgress(train)}` : ''}${decision}`;
}

export function renderRetrainResult(workflowId: string, r: RetrainResult): string {
  return `Retrain ${workflowId} finished: ${r.promoted ? 'promoted' : 'rejected'} (${r.reason}); champion ${r.champion.modelUri}; decision ${r.decision.decisionUri}`;
}

/** A hyperparameterSearch's leaderboard query, read loosely (only the fields shown here are relied on). */
export function renderSearchProgress(board: unknown): string {
  const b = (typeof board === 'object' && board !== null ? board : {}) as {
    status?: unknown; metric?: unknown; running?: unknown; failed?: unknown; trials?: Array<{ id?: unknown; value?: unknown; status?: unknown }>;
  };
  const trials = Array.isArray(b.trials) ? b.trials : [];
  const best = trials[0];
  const bestText = best && typeof best.value === 'number' ? `  best ${String(b.metric)} ${fmt(best.value)} (${String(best.id)})` : '';
  return `search ${String(b.status ?? '?')}  trials ${trials.length}  running ${String(b.running ?? '-')}  failed ${String(b.failed ?? 0)}${bestText}`;
}

export function renderScheduleRow(r: RetrainScheduleRow): string {
  const next = r.nextActionTimes[0] ?? '-';
  const last = r.recentRuns[r.recentRuns.length - 1]?.workflowId ?? '-';
  return `${r.scheduleId}\t${r.paused ? 'paused' : 'active'}\tnext ${next}\tlast ${last}${r.note ? `\t${r.note}` : ''}`;
}
