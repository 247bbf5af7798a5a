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
import { forTerminal as t } from './terminal';
import { troubleForms, troubleSummary, type Trouble } from './trouble';

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
  /** Why it is not moving (trouble.ts): shown instead of its pace and ETAs. */
  readonly trouble?: Trouble;
  /** The workflow closed other than by completing (`failed`, `terminated`, …): shown as its status. */
  readonly closed?: string;
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
  const active = v.closed === undefined && (p.status === 'training' || p.status === 'evaluating');
  // A run in trouble has no pace to speak of: no steps/s, no ETA (a frozen `ETA 1s` misleads).
  const troubled = v.trouble !== undefined && troubleSummary(v.trouble) !== null;
  const live = active && p.status === 'training' && v.inEpoch && v.inEpoch.targetStep > p.step && v.inEpoch.step >= p.step ? v.inEpoch : null;
  const epoch = live ? Math.min(p.maxEpochs, Math.ceil(live.targetStep / p.stepsPerEpoch)) : active ? Math.min(p.maxEpochs, p.epoch + 1) : p.epoch;
  const step = live ? live.step : p.step;
  const fromHistory = p.secondsPerEpoch !== null && p.secondsPerEpoch > 0 ? p.stepsPerEpoch / p.secondsPerEpoch : null;
  const stepsPerSecond = active && !troubled ? (live?.stepsPerSecond ?? fromHistory) : null;
  const perEpoch = p.secondsPerEpoch ?? (stepsPerSecond ? p.stepsPerEpoch / stepsPerSecond : null);
  const epochEta = live && stepsPerSecond ? (live.targetStep - live.step) / stepsPerSecond : null;
  // The rest of this epoch (all of it when no heartbeat came yet), then whole epochs at the run's
  // mean pace; early stopping may end the run sooner.
  const thisEpoch = live ? epochEta : p.status === 'training' ? perEpoch : 0;
  const runEta = active && !troubled && perEpoch !== null && thisEpoch !== null ? thisEpoch + (p.maxEpochs - epoch) * perEpoch : null;
  return { epoch, step, status: v.closed ?? p.status, stepsPerSecond, epochEta: troubled ? null : epochEta, runEta };
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
  const trouble = v.trouble ? troubleForms(v.trouble) : [];
  if (trouble.length > 0) out.push(seg(2, 2, ...trouble));
  if (p.stopRequested && p.status === 'training') out.push(seg(2, 1, '(stopping)'));
  else if (p.pauseRequested && p.status === 'training') out.push(seg(2, 1, '(pausing)'));
  if (f.stepsPerSecond !== null) out.push(seg(4, 2, `${rate(f.stepsPerSecond)} steps/s`));
  if (f.epochEta !== null) out.push(seg(6, 2, `epoch ETA ${duration(f.epochEta)}`));
  if (f.runEta !== null) out.push(seg(3, 2, `run ETA ${duration(f.runEta)}`, `ETA ${duration(f.runEta)}`));
  if (p.latest) {
    Object.entries(p.latest.metrics).forEach(([k, value], i) => out.push(seg(8 + i, 2, `${t(k, { max: 60 })} ${fixedMetric(value)}`)));
  } else {
    out.push(seg(8, 2, 'no epoch finished yet'));
  }
  if (p.best) {
    const value = fixedMetric(p.best.value);
    const metric = t(p.best.metric, { max: 60 });
    out.push(seg(5, 2, `best ${metric} ${value} @ epoch ${p.best.epoch}`, `best ${metric} ${value}`, `best ${value}`));
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
  const withMetric = (runId: string, metrics: Readonly<Record<string, number>> | undefined, metric: string): string[] => {
    const value = metrics?.[metric];
    return value === undefined ? [t(runId)] : [`${t(runId)} (${t(metric)} ${fixedMetric(value)})`, t(runId)];
  };
  const d = r.decision;
  let middle: string[];
  if (d?.challenger && (r.phase === 'promoted' || r.phase === 'rejected')) {
    // Decided: what was promoted over what (the champion read at the start is the old one now).
    const challenger = withMetric(d.challenger.runId, d.challenger.metrics, d.metric);
    const champion = d.champion ? withMetric(d.champion.runId, d.champion.metrics, d.metric) : null;
    middle = d.promoted
      ? champion
        ? [`${challenger[0]} over ${champion[0]}`, `${challenger[challenger.length - 1]} over ${champion[champion.length - 1]}`]
        : [`${challenger[0]}, the first champion`, challenger[challenger.length - 1]!]
      : champion
        ? [`${challenger[0]}; champion ${champion[0]} kept`, `${challenger[challenger.length - 1]}; kept ${champion[champion.length - 1]}`]
        : challenger;
  } else {
    middle = r.champion ? withMetric(r.champion.runId, r.champion.metrics, r.champion.metric).map((c) => `champion ${c}`) : ['no champion yet'];
  }
  const lines = [fitSegments([seg(0, 2, `retrain ${t(r.modelName)}: ${t(r.phase)}`), seg(1, 2, ...middle), seg(2, 2, `training run ${t(r.trainWorkflowId)}`)], width)];
  if (train) lines.push(`  ${renderTrainLine(train, width - 2)}`);
  if (d) lines.push(truncate(`  ${d.promoted ? 'promoted' : 'rejected'}: ${t(d.reason, { max: 500 })}`, width));
  return lines;
}

type LooseBoard = Partial<Omit<Leaderboard, 'trials'>> & { trials?: ReadonlyArray<Partial<Leaderboard['trials'][number]>> };

function params(p: unknown): string {
  if (typeof p !== 'object' || p === null) return '';
  return Object.entries(p)
    .map(([k, v]) => `${t(k, { max: 60 })}=${typeof v === 'number' ? significant(v) : t(JSON.stringify(v) ?? String(v), { max: 120 })}`)
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
    seg(0, 2, `search ${t(b.status ?? '?')}`),
    // A search that stores its rows lists only its best few and live trials: its count is `trialCount`.
    seg(1, 2, `trials ${typeof b.trialCount === 'number' ? b.trialCount : trials.length}`),
    seg(2, 2, `running ${t(b.running ?? '-')}`),
    seg(3, 2, `failed ${t(b.failed ?? 0)}`),
  ];
  if (best && typeof best.value === 'number') {
    head.push(seg(4, 2, `best ${t(b.metric)} ${fixedMetric(best.value)} (${t(best.id)})`, `best ${fixedMetric(best.value)}`));
  }
  if (Array.isArray(b.rungs) && b.rungs.length > 1) head.push(seg(5, 2, `rung ${t(b.rung)}/${b.rungs.length}`));
  const lines = [fitSegments(head, width)];
  if (rows <= 0) return lines;
  const ranked = trials.filter((t) => typeof t.value === 'number').slice(0, Math.max(1, rows - (b.running ?? 0)));
  const active = trials.filter((t) => t.status === 'running' && !ranked.includes(t));
  for (const trial of [...ranked, ...active].slice(0, rows)) {
    const view = trial.workflowId ? running.get(trial.workflowId) : undefined;
    const row: Segment[] = [seg(0, 2, `  ${t(trial.id)}`), seg(1, 2, t(trial.status))];
    if (typeof trial.value === 'number') row.push(seg(2, 2, `${t(b.metric)} ${fixedMetric(trial.value)}`));
    if (view && trial.status === 'running') row.push(seg(3, 2, renderTrainLine(view, Math.max(20, width - 30))));
    if (trial.rung !== undefined && Array.isArray(b.rungs) && b.rungs.length > 1) row.push(seg(4, 2, `rung ${t(trial.rung)}`));
    row.push(seg(5, 2, params(trial.params)));
    lines.push(fitSegments(row, width));
  }
  return lines;
}
