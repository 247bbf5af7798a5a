/**
 * What `watch` shows, as pure functions of a snapshot and a width: a trainModel line (with the step
 * inside the running epoch, steps/s and ETAs from the training activity's heartbeat), a retrain's
 * phase above its training line, a search's summary above its leaderboard. Every line fits the width.
 */
import type { Leaderboard } from '../workflows/search/state';
import type { RetrainProgress } from '../workflows/retrain-model';
import type { TrainProgress } from '../workflows/train-model';
import { fitSegments, seg, truncate, type Segment } from './fit';
import { duration, fixedMetric, rate, significant } from './human';

/** Where the running trainUntilStep activity is, from its last heartbeat (see heartbeat.ts). */
export interface InEpoch {
  readonly step: number;
  readonly targetStep: number;
  readonly checkpointStep: number;
  /** Measured between heartbeats; null until two heartbeats of one attempt were seen. */
  readonly stepsPerSecond: number | null;
}

export interface TrainView {
  readonly progress: TrainProgress;
  readonly inEpoch: InEpoch | null;
}

function bar(fraction: number, width: number): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

/**
 * The numbers a train line shows. Its epoch is the one being worked on: while training or
 * evaluating that is the one after the last recorded; a heartbeat of an epoch already recorded is ignored.
 */
export function trainFigures(v: TrainView): {
  epoch: number; step: number; status: string; stepsPerSecond: number | null; epochEta: number | null; runEta: number | null;
} {
  const p = v.progress;
  const active = p.status === 'training' || p.status === 'evaluating';
  const live = p.status === 'training' && v.inEpoch && v.inEpoch.targetStep > p.step && v.inEpoch.step >= p.step ? v.inEpoch : null;
  const epoch = live ? Math.min(p.maxEpochs, Math.ceil(live.targetStep / p.stepsPerEpoch)) : active ? Math.min(p.maxEpochs, p.epoch + 1) : p.epoch;
  const step = live ? live.step : p.step;
  const fromHistory = p.secondsPerEpoch !== null && p.secondsPerEpoch > 0 ? p.stepsPerEpoch / p.secondsPerEpoch : null;
  const stepsPerSecond = active ? (live?.stepsPerSecond ?? fromHistory) : null;
  const perEpoch = p.secondsPerEpoch ?? (stepsPerSecond ? p.stepsPerEpoch / stepsPerSecond : null);
  const epochEta = live && stepsPerSecond ? (live.targetStep - live.step) / stepsPerSecond : null;
  // The rest of this epoch (all of it when no heartbeat came yet), then whole epochs at the run's
  // mean pace; early stopping may end the run sooner.
  const thisEpoch = live ? epochEta : p.status === 'training' ? perEpoch : 0;
  const runEta = active && perEpoch !== null && thisEpoch !== null ? thisEpoch + (p.maxEpochs - epoch) * perEpoch : null;
  return { epoch, step, status: p.status, stepsPerSecond, epochEta, runEta };
}

function trainSegments(v: TrainView): Segment[] {
  const p = v.progress;
  const f = trainFigures(v);
  const out: Segment[] = [
    seg(7, 1, bar(p.totalSteps > 0 ? f.step / p.totalSteps : 0, 24), bar(p.totalSteps > 0 ? f.step / p.totalSteps : 0, 10)),
    seg(0, 1, `epoch ${f.epoch}/${p.maxEpochs}`),
    seg(1, 1, `step ${f.step}/${p.totalSteps}`),
    seg(2, 1, f.status),
  ];
  if (p.stopRequested && p.status === 'training') out.push(seg(2, 1, '(stopping)'));
  else if (p.pauseRequested && p.status === 'training') out.push(seg(2, 1, '(pausing)'));
  if (f.stepsPerSecond !== null) out.push(seg(4, 2, `${rate(f.stepsPerSecond)} steps/s`));
  if (f.epochEta !== null) out.push(seg(6, 2, `epoch ETA ${duration(f.epochEta)}`));
  if (f.runEta !== null) out.push(seg(3, 2, `run ETA ${duration(f.runEta)}`, `ETA ${duration(f.runEta)}`));
  if (p.latest) {
    Object.entries(p.latest.metrics).forEach(([k, value], i) => out.push(seg(8 + i, 2, `${k} ${fixedMetric(value)}`)));
  } else {
    out.push(seg(8, 2, 'no epoch finished yet'));
  }
  if (p.best) {
    const value = fixedMetric(p.best.value);
    out.push(seg(5, 2, `best ${p.best.metric} ${value} @ epoch ${p.best.epoch}`, `best ${p.best.metric} ${value}`, `best ${value}`));
  }
  out.push(seg(40, 2, `lr ${fixedMetric(p.learningRate)}`));
  return out;
}

/** One trainModel line: `[bar] epoch 2/3 step 97/120 training  12.5 steps/s  run ETA 4s  epoch ETA 2s  loss …  best …  lr …`. */
export function renderTrainLine(v: TrainView, width: number): string {
  return fitSegments(trainSegments(v), width);
}

/** A retrain: its phase and champion, then (while training) its training run's line, then the decision. */
export function renderRetrainLines(r: RetrainProgress, train: TrainView | null, width: number): string[] {
  const champion = r.champion
    ? [`champion ${r.champion.runId} (${r.champion.metric} ${fixedMetric(r.champion.metrics[r.champion.metric])})`, `champion ${r.champion.runId}`]
    : ['no champion yet'];
  const lines = [fitSegments([seg(0, 2, `retrain ${r.modelName}: ${r.phase}`), seg(1, 2, ...champion), seg(2, 2, `training run ${r.trainWorkflowId}`)], width)];
  if (train) lines.push(`  ${renderTrainLine(train, width - 2)}`);
  if (r.decision) lines.push(truncate(`  ${r.decision.promoted ? 'promoted' : 'rejected'}: ${r.decision.reason}`, width));
  return lines;
}

type LooseBoard = Partial<Omit<Leaderboard, 'trials'>> & { trials?: ReadonlyArray<Partial<Leaderboard['trials'][number]>> };

function params(p: unknown): string {
  if (typeof p !== 'object' || p === null) return '';
  return Object.entries(p)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? significant(v) : JSON.stringify(v)}`)
    .join(' ');
}

/**
 * A search: the summary line, then (when `rows` > 0) the best trials and the running ones, a
 * running trial with its training line. The board is read loosely: only the fields shown are relied on.
 */
export function renderSearchLines(board: unknown, running: ReadonlyMap<string, TrainView>, width: number, rows: number): string[] {
  const b = (typeof board === 'object' && board !== null ? board : {}) as LooseBoard;
  const trials = Array.isArray(b.trials) ? b.trials : [];
  const best = trials[0];
  const head: Segment[] = [
    seg(0, 2, `search ${String(b.status ?? '?')}`),
    seg(1, 2, `trials ${trials.length}`),
    seg(2, 2, `running ${String(b.running ?? '-')}`),
    seg(3, 2, `failed ${String(b.failed ?? 0)}`),
  ];
  if (best && typeof best.value === 'number') {
    head.push(seg(4, 2, `best ${String(b.metric)} ${fixedMetric(best.value)} (${String(best.id)})`, `best ${fixedMetric(best.value)}`));
  }
  if (Array.isArray(b.rungs) && b.rungs.length > 1) head.push(seg(5, 2, `rung ${String(b.rung)}/${b.rungs.length}`));
  const lines = [fitSegments(head, width)];
  if (rows <= 0) return lines;
  const ranked = trials.filter((t) => typeof t.value === 'number').slice(0, Math.max(1, rows - (b.running ?? 0)));
  const active = trials.filter((t) => t.status === 'running' && !ranked.includes(t));
  for (const t of [...ranked, ...active].slice(0, rows)) {
    const view = t.workflowId ? running.get(t.workflowId) : undefined;
    const row: Segment[] = [seg(0, 2, `  ${String(t.id)}`), seg(1, 2, String(t.status))];
    if (typeof t.value === 'number') row.push(seg(2, 2, `${String(b.metric)} ${fixedMetric(t.value)}`));
    if (view && t.status === 'running') row.push(seg(3, 2, renderTrainLine(view, Math.max(20, width - 30))));
    if (t.rung !== undefined && Array.isArray(b.rungs) && b.rungs.length > 1) row.push(seg(4, 2, `rung ${t.rung}`));
    row.push(seg(5, 2, params(t.params)));
    lines.push(fitSegments(row, width));
  }
  return lines;
}
