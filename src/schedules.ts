/**
 * Retraining on a Temporal Schedule, from code: `createRetrainSchedule(client, {...})` and the
 * list/pause/unpause/trigger/delete helpers around `client.schedule`. Our CLI uses these too.
 *
 * Overlap policy: SKIP. Two retrains of one model never run at once, and a retrain that is due
 * while the previous one still runs is dropped rather than queued: a retrain trains on the data as
 * it is when it starts, so a queued one (BUFFER_ONE) would start right after the previous one on
 * almost the same data, and when retrains take longer than the period it would keep the GPU busy
 * back to back forever. The next slot picks up all the new data anyway. Beware that the SDK's
 * `ScheduleHandle.trigger()` defaults to ALLOW_ALL; `triggerRetrainSchedule` passes SKIP.
 * (The champion pointer's compare-and-swap keeps promotions correct even if two did overlap.)
 */
import { ScheduleOverlapPolicy, type Client, type ScheduleDescription, type ScheduleHandle, type ScheduleSummary } from '@temporalio/client';
import { msToNumber, type Duration } from '@temporalio/common';
import { parseRetrainConfig, type RetrainInput } from './config/retrain-config';
import { ConfigError, describe, type ConfigIssue } from './config/validate';
import { WORKFLOW_TYPES } from './workflow-types';

export const RETRAIN_WORKFLOW_TYPE = WORKFLOW_TYPES.retrain;
export const RETRAIN_OVERLAP_POLICY = ScheduleOverlapPolicy.SKIP;

export interface RetrainScheduleOptions {
  /** The schedule's id. */
  readonly scheduleId: string;
  /** The `retrainModel` input every run gets (validated here: a bad one creates nothing). */
  readonly input: RetrainInput;
  readonly taskQueue: string;
  /** Cron expressions, e.g. `0 3 * * *` (03:00 every day). */
  readonly cron?: readonly string[];
  /** Fixed intervals, e.g. `24h`. */
  readonly every?: readonly Duration[];
  /** Time zone for `cron`. @default 'UTC' */
  readonly timezone?: string;
  /** Base of the runs' workflow ids; Temporal appends `-<ISO time>`. @default scheduleId */
  readonly workflowId?: string;
  /** Create the schedule paused. @default false */
  readonly paused?: boolean;
  readonly note?: string;
}

/** A retraining schedule as the CLI lists it. */
export interface RetrainScheduleRow {
  readonly scheduleId: string;
  readonly paused: boolean;
  readonly note: string | null;
  readonly nextActionTimes: readonly string[];
  readonly recentRuns: ReadonlyArray<{ readonly workflowId: string; readonly runId: string; readonly scheduledAt: string }>;
}

// A cron expression as Temporal reads it (its CalendarSpec): 5 fields (minute hour day-of-month
// month day-of-week), 6 (… year) or 7 (second …  year), or one of the @-shorthands; an optional
// `CRON_TZ=<zone>` before and `# comment` after. Checked here so that a mistake gets a message naming
// the field, not the server's `CronString does not have 5-7 fields`.
const CRON_FIELDS: Record<number, ReadonlyArray<{ name: string; min: number; max: number; names?: readonly string[] }>> = (() => {
  const second = { name: 'second', min: 0, max: 59 };
  const minute = { name: 'minute', min: 0, max: 59 };
  const hour = { name: 'hour', min: 0, max: 23 };
  const dom = { name: 'day-of-month', min: 1, max: 31 };
  const month = { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] };
  const dow = { name: 'day-of-week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] };
  const year = { name: 'year', min: 1970, max: 2999 };
  return { 5: [minute, hour, dom, month, dow], 6: [minute, hour, dom, month, dow, year], 7: [second, minute, hour, dom, month, dow, year] };
})();
const CRON_SHORTHANDS = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];
const CRON_EXPECTED = "a cron expression of 5 fields (minute hour day-of-month month day-of-week, e.g. '0 3 * * *'), 6 or 7, or @daily, @hourly, @weekly, @monthly, @yearly, @every <duration>";

/** What is wrong with one cron expression (null when it is one Temporal accepts, as far as can be told here). */
export function cronProblem(cron: string): string | null {
  let text = cron.trim();
  const hash = text.indexOf('#');
  if (hash >= 0) text = text.slice(0, hash).trim();
  if (text.startsWith('CRON_TZ=')) text = text.slice(text.search(/\s|$/)).trim();
  if (text === '') return 'it is empty';
  if (text.startsWith('@')) {
    if (CRON_SHORTHANDS.includes(text.toLowerCase())) return null;
    // `@every <interval>[/<phase>]`
    const every = /^@every\s+([^\s/]+)(?:\/(\S+))?$/i.exec(text);
    if (every && durationProblem(every[1]!) === null && (every[2] === undefined || durationProblem(every[2]) === null)) return null;
    return `\`${text.split(/\s/)[0]}\` with what follows is not a shorthand Temporal knows`;
  }
  const fields = text.split(/\s+/);
  const spec = CRON_FIELDS[fields.length];
  if (!spec) return `it has ${fields.length} field${fields.length === 1 ? '' : 's'}`;
  for (const [i, field] of fields.entries()) {
    const f = spec[i]!;
    const value = (v: string): number | undefined => {
      const named = f.names?.indexOf(v.toLowerCase()) ?? -1;
      if (named >= 0) return named + f.min;
      return /^\d+$/.test(v) ? Number(v) : undefined;
    };
    const allowed = f.names ? `a number from ${f.min} to ${f.max} or a name (${f.names[0]!}…${f.names[f.names.length - 1]!})` : `a number from ${f.min} to ${f.max}`;
    const problem = `its ${f.name} field \`${field}\` is not ${allowed}, a range (a-b), a list (a,b), * or a step (*/n)`;
    if (!/^[0-9A-Za-z*?/,#-]+$/.test(field)) return problem;
    for (const item of field.split(',')) {
      const m = /^(\*|\?|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:\/(\d+))?$/.exec(item);
      // Other forms (L, W: Quartz's) are left to the server, whose refusal is shown then.
      if (!m) continue;
      const bounds = m[1] !== '*' && m[1] !== '?' ? m[1]!.split('-').map(value) : [];
      if (bounds.some((b) => b !== undefined && (b < f.min || b > f.max)) || (m[2] !== undefined && Number(m[2]) < 1)) return problem;
      if (bounds.length === 2 && bounds[0] !== undefined && bounds[1] !== undefined && bounds[1] < bounds[0]) return `its ${f.name} field \`${field}\` has a range that ends before it starts`;
      if (bounds.some((b) => b === undefined) && !/^[LW\d]+$/i.test(m[1]!)) return problem;
    }
  }
  return null;
}

/** What is wrong with an interval such as `24h` (null when it is a positive whole number of seconds or more). */
export function durationProblem(every: string): string | null {
  if (!/^\d+(\.\d+)?\s*(ms|s|m|h|d)$/.test(every)) return 'it is not a number followed by ms, s, m, h or d';
  let ms: number;
  try {
    ms = msToNumber(every as Duration);
  } catch {
    return 'it is not a duration';
  }
  return ms >= 1000 ? null : 'it is shorter than one second';
}

/** A time zone the Intl database knows (Temporal's is Go's: the same IANA names). */
export function timezoneProblem(timezone: string): string | null {
  try {
    new Intl.DateTimeFormat('en', { timeZone: timezone });
    return null;
  } catch {
    return 'it is not an IANA time zone such as UTC or Europe/Berlin';
  }
}

/** Every problem of a schedule's spec, by field (`cron`, `every`, `timezone`). */
export function scheduleSpecIssues(options: Pick<RetrainScheduleOptions, 'cron' | 'every' | 'timezone'>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  options.cron?.forEach((cron, i) => {
    const problem = typeof cron === 'string' ? cronProblem(cron) : 'it is not a string';
    if (problem) issues.push({ field: options.cron!.length > 1 ? `cron[${i}]` : 'cron', expected: `${CRON_EXPECTED} (${problem})`, received: describe(cron) });
  });
  options.every?.forEach((every, i) => {
    const problem = typeof every === 'number' ? (every >= 1000 ? null : 'it is shorter than one second') : durationProblem(String(every));
    if (problem) issues.push({ field: options.every!.length > 1 ? `every[${i}]` : 'every', expected: `a duration such as 24h, 30m or 1d (${problem})`, received: describe(every) });
  });
  if (options.timezone !== undefined) {
    const problem = timezoneProblem(options.timezone);
    if (problem) issues.push({ field: 'timezone', expected: `a time zone (${problem})`, received: describe(options.timezone) });
  }
  return issues;
}

/** Creates a schedule that starts `retrainModel` with `input`. Throws ConfigError for a bad input or spec. */
export async function createRetrainSchedule(client: Client, options: RetrainScheduleOptions): Promise<ScheduleHandle> {
  parseRetrainConfig(options.input);
  const issues = scheduleSpecIssues(options);
  if (issues.length > 0) throw new ConfigError(issues, 'Invalid schedule spec');
  return client.schedule.create({
    scheduleId: options.scheduleId,
    spec: {
      ...(options.cron?.length && { cronExpressions: [...options.cron] }),
      ...(options.every?.length && { intervals: options.every.map((every) => ({ every })) }),
      ...(options.timezone !== undefined && { timezone: options.timezone }),
    },
    action: {
      type: 'startWorkflow',
      workflowType: RETRAIN_WORKFLOW_TYPE,
      taskQueue: options.taskQueue,
      workflowId: options.workflowId ?? options.scheduleId,
      args: [options.input],
    },
    policies: { overlap: RETRAIN_OVERLAP_POLICY },
    state: { paused: options.paused ?? false, ...(options.note !== undefined && { note: options.note }) },
  });
}

function row(s: ScheduleSummary | (ScheduleDescription & { scheduleId: string })): RetrainScheduleRow {
  return {
    scheduleId: s.scheduleId,
    paused: s.state.paused,
    note: s.state.note || null,
    nextActionTimes: s.info.nextActionTimes.map((d) => d.toISOString()),
    recentRuns: s.info.recentActions.map((a) => ({
      workflowId: a.action.workflow.workflowId,
      runId: a.action.workflow.firstExecutionRunId,
      scheduledAt: a.scheduledAt.toISOString(),
    })),
  };
}

/** Every schedule whose action starts `retrainModel`. */
export async function listRetrainSchedules(client: Client): Promise<RetrainScheduleRow[]> {
  const rows: RetrainScheduleRow[] = [];
  for await (const s of client.schedule.list()) {
    if (s.action?.type === 'startWorkflow' && s.action.workflowType === RETRAIN_WORKFLOW_TYPE) rows.push(row(s));
  }
  return rows.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

type RawRange = { start?: number | null; end?: number | null; step?: number | null };
type RawCalendar = Partial<Record<'second' | 'minute' | 'hour' | 'dayOfMonth' | 'month' | 'year' | 'dayOfWeek', RawRange[] | null>>;

/** One calendar field as cron writes it: `*` for its whole range, else `a`, `a-b`, `a-b/n`, joined by commas. */
function cronField(ranges: RawRange[] | null | undefined, min: number, max: number | null): string {
  // The server omits zeros: no ranges is the field's default (0 for second/minute/hour, all for the rest).
  if (!ranges || ranges.length === 0) return max === null || min > 0 ? '*' : '0';
  const items = ranges.map((r) => {
    const start = r.start ?? 0;
    const end = Math.max(r.end ?? start, start);
    const step = r.step && r.step > 1 ? `/${r.step}` : '';
    if (start === min && (end === max || (max === null && end === 0)) && step === '') return '*';
    return `${start === end ? start : `${start}-${end}`}${step}`;
  });
  return items.join(',');
}

/**
 * A schedule's calendar as a cron expression (the server keeps `--cron` as structured calendars):
 * `minute hour day-of-month month day-of-week`, with the second first and the year last when set.
 */
export function calendarToCron(c: RawCalendar): string {
  const second = cronField(c.second, 0, 59);
  const year = cronField(c.year, 0, null);
  const five = [cronField(c.minute, 0, 59), cronField(c.hour, 0, 23), cronField(c.dayOfMonth, 1, 31), cronField(c.month, 1, 12), cronField(c.dayOfWeek, 0, 6)];
  if (second !== '0') return [second, ...five, year].join(' ');
  return year === '*' ? five.join(' ') : [...five, year].join(' ');
}

/** When a schedule runs, as given: cron expressions (from its calendars), intervals (`24h`), time zone. */
export interface RetrainScheduleSpec {
  readonly cron: readonly string[];
  readonly every: readonly string[];
  readonly timezone: string | null;
}

/** The current champion and the last decision, as the newest finished retrain of a schedule left them. */
export interface ScheduleChampion {
  /** The retrain this is read from. */
  readonly retrainWorkflowId: string;
  readonly champion: { readonly runId: string; readonly modelUri: string; readonly metric: string; readonly value: number | null; readonly promotedAt: string };
  readonly decision: { readonly number: number; readonly promoted: boolean; readonly reason: string; readonly challengerRunId: string; readonly decidedAt: string };
}

export interface RetrainScheduleDescription extends RetrainScheduleRow {
  readonly input: unknown;
  readonly spec: RetrainScheduleSpec;
  /** The newest retrain of this schedule still running, if one is. */
  readonly running: string | null;
  /** From the newest retrain that finished (null when none of the recent ones did). */
  readonly champion: ScheduleChampion | null;
}

const HOUR = 3600_000;
/** An interval as people write it: `24h`, `90m`, `45s`. */
function humanInterval(ms: number): string {
  if (ms % (24 * HOUR) === 0 && ms >= 48 * HOUR) return `${ms / (24 * HOUR)}d`;
  if (ms % HOUR === 0) return `${ms / HOUR}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

type RetrainOutcome = { promoted: boolean; reason: string; champion: RetrainScheduleChampionRecord; decision: { number: number; decidedAt: string; challenger: { runId: string } } };
type RetrainScheduleChampionRecord = { runId: string; modelUri: string; metric: string; metrics: Record<string, number>; promotedAt: string };

/** What the schedule's newest finished retrain says about the champion (reads the retrains' results: history, no worker needed). */
async function scheduleChampion(client: Client, runs: RetrainScheduleRow['recentRuns']): Promise<{ running: string | null; champion: ScheduleChampion | null }> {
  let running: string | null = null;
  for (const run of [...runs].reverse()) {
    const handle = client.workflow.getHandle(run.workflowId, run.runId);
    const status = (await handle.describe().catch(() => undefined))?.status.name;
    if (status === 'RUNNING') {
      running ??= run.workflowId;
      continue;
    }
    if (status !== 'COMPLETED') continue;
    const r = (await handle.result().catch(() => undefined)) as RetrainOutcome | undefined;
    if (!r?.champion || !r.decision) continue;
    return {
      running,
      champion: {
        retrainWorkflowId: run.workflowId,
        champion: { runId: r.champion.runId, modelUri: r.champion.modelUri, metric: r.champion.metric, value: r.champion.metrics?.[r.champion.metric] ?? null, promotedAt: r.champion.promotedAt },
        decision: { number: r.decision.number, promoted: r.promoted, reason: r.reason, challengerRunId: r.decision.challenger.runId, decidedAt: r.decision.decidedAt },
      },
    };
  }
  return { running, champion: null };
}

/** A schedule with its spec, its next fire times, its input and the champion its newest finished retrain left. */
export async function describeRetrainSchedule(client: Client, scheduleId: string): Promise<RetrainScheduleDescription> {
  const d = await client.schedule.getHandle(scheduleId).describe();
  const rawSpec = d.raw.schedule?.spec;
  const spec: RetrainScheduleSpec = {
    cron: (rawSpec?.structuredCalendar ?? []).map((c) => calendarToCron(c as RawCalendar)),
    every: d.spec.intervals?.map((i) => humanInterval(Number(i.every))) ?? [],
    timezone: d.spec.timezone || null,
  };
  const row0 = row({ ...d, scheduleId });
  return { ...row0, input: d.action.args?.[0] ?? null, spec, ...(await scheduleChampion(client, row0.recentRuns)) };
}

export function pauseRetrainSchedule(client: Client, scheduleId: string, note?: string): Promise<void> {
  return client.schedule.getHandle(scheduleId).pause(note);
}

export function unpauseRetrainSchedule(client: Client, scheduleId: string, note?: string): Promise<void> {
  return client.schedule.getHandle(scheduleId).unpause(note);
}

/** Starts a retrain now, unless one from this schedule is still running (SKIP, not the SDK's ALLOW_ALL). */
export function triggerRetrainSchedule(client: Client, scheduleId: string): Promise<void> {
  return client.schedule.getHandle(scheduleId).trigger(RETRAIN_OVERLAP_POLICY);
}

export function deleteRetrainSchedule(client: Client, scheduleId: string): Promise<void> {
  return client.schedule.getHandle(scheduleId).delete();
}
