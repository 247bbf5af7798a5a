/** Text rendering of a run's progress for the CLI: a bar, the epoch/step counters, metrics, ETA. */
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
