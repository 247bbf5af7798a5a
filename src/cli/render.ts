/** One-shot text: the finished lines, `list` rows, schedules. Every user-controlled string goes through forTerminal. */
import type { RetrainScheduleDescription, RetrainScheduleRow } from '../schedules';
import type { RetrainResult } from '../workflows/retrain-model';
import { duration, fixedMetric, significant } from './human';
import { forTerminal as t } from './terminal';

export function renderRetrainResult(workflowId: string, r: RetrainResult): string {
  const words = decisionWords(r.promoted, r.train.runId, r.decision.champion?.runId ?? (r.promoted ? null : r.champion.runId));
  return `Retrain ${t(workflowId)} finished: ${r.promoted ? 'promoted' : 'rejected'} (${t(r.reason, { max: 300 })}): ${words}; champion ${t(r.champion.modelUri)}; decision ${t(r.decision.decisionUri)}`;
}

export function renderScheduleRow(r: RetrainScheduleRow): string {
  const next = r.nextActionTimes[0] ?? '-';
  const last = r.recentRuns[r.recentRuns.length - 1]?.workflowId ?? '-';
  return `${t(r.scheduleId)}\t${r.paused ? 'paused' : 'active'}\tnext ${next}\tlast ${t(last)}${r.note ? `\t${t(r.note, { max: 200 })}` : ''}`;
}

/** `schedule describe`: when it runs, the next times, the champion and the last decision, the input. */
export function renderScheduleDescription(d: RetrainScheduleDescription, nextTimes = 5): string {
  const when = [
    ...d.spec.cron.map((c) => `cron ${t(c)}${d.spec.timezone ? ` (${t(d.spec.timezone)})` : ' (UTC)'}`),
    ...d.spec.every.map((e) => `every ${t(e)}`),
  ];
  const lines = [
    `schedule  ${t(d.scheduleId)}  ${d.paused ? 'paused' : 'active'}${d.note ? `  note: ${t(d.note, { max: 200 })}` : ''}`,
    `runs      ${when.length > 0 ? when.join('; ') : 'only when triggered (no cron or interval)'}`,
    `next      ${d.paused ? '(paused) ' : ''}${d.nextActionTimes.length > 0 ? d.nextActionTimes.slice(0, nextTimes).join('  ') : '-'}`,
  ];
  if (d.running) lines.push(`running   ${t(d.running)}`);
  const c = d.champion;
  if (c) {
    const value = c.champion.value === null ? '' : ` ${t(c.champion.metric)} ${fixedMetric(c.champion.value)}`;
    lines.push(`champion  ${t(c.champion.runId)}${value}  since ${c.champion.promotedAt}  model ${t(c.champion.modelUri)}`);
    lines.push(`decision  #${c.decision.number} ${c.decision.promoted ? 'promoted' : 'rejected'} ${t(c.decision.challengerRunId)} (retrain ${t(c.retrainWorkflowId)}, ${c.decision.decidedAt}): ${t(c.decision.reason, { max: 300 })}`);
  } else {
    lines.push(`champion  ${d.recentRuns.length === 0 ? 'none yet (no retrain has run)' : 'unknown (no recent retrain of this schedule finished)'}`);
  }
  lines.push(`input     ${t(JSON.stringify(d.input), { max: 2000 })}`);
  return lines.join('\n');
}

/** What a retrain decided, as `list` shows it. */
export interface ListRetrain {
  readonly promoted: boolean;
  readonly challenger: string;
  readonly champion: string | null;
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
  /** A finished retrain's decision (read from its result). */
  readonly retrain?: ListRetrain | null;
}

/** What a retrain's decision was, in words: `promoted B over A`, `rejected B (kept A)`. */
export function decisionWords(promoted: boolean, challenger: string, champion: string | null): string {
  if (promoted) return champion ? `promoted ${t(challenger)} over ${t(champion)}` : `promoted ${t(challenger)} (first champion)`;
  return `rejected ${t(challenger)}${champion ? `, kept ${t(champion)}` : ''}`;
}

/** `list` for people: the best metric to 4 significant digits, how long the run took (or has been going). */
export function renderListRow(r: ListRow, nowMs: number): string {
  const started = Date.parse(r.startTime);
  const time = r.closeTime ? `took ${duration((Date.parse(r.closeTime) - started) / 1000)}` : `started ${duration((nowMs - started) / 1000)} ago`;
  const head = `${t(r.workflowId)}\t${t(r.type)}\t${t(r.status)}\t${t(r.trainStatus ?? '-')}`;
  if (r.retrain) return `${head}\t${decisionWords(r.retrain.promoted, r.retrain.challenger, r.retrain.champion)}\t${time}`;
  const best = typeof r.bestMetric === 'number' ? significant(r.bestMetric) : t(r.bestMetric ?? '-');
  return `${head}\tepoch ${t(r.epoch ?? '-')}\tbest ${best}\t${time}`;
}
